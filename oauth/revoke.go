package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// TokenVerifier verifies an access token, revocation included. *Verifier
// satisfies it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (authn.Claims, error)
}

var _ TokenVerifier = (*authn.Verifier)(nil)

// Revoker is RFC 7009 token revocation of Verdict's own tokens. It is safe
// for concurrent use; the zero Revoker is not usable: use NewRevoker.
type Revoker struct {
	families
	verifier TokenVerifier
}

// NewRevoker returns a Revoker that recognises access tokens with verifier
// and refresh tokens in st; revoked access tokens are recorded in rev and
// dropped from forget (the Verifier). now is the clock (nil means
// time.Now). It fails on an invalid config or a nil dependency.
func NewRevoker(cfg RefreshConfig, verifier TokenVerifier, st RefreshStore, rev RevocationStore, forget JTIForgetter, now func() time.Time) (*Revoker, error) {
	f, err := newFamilies(cfg, st, rev, forget, now)
	if err != nil {
		return nil, err
	}
	if verifier == nil {
		return nil, errors.New("revoke: nil token verifier")
	}
	return &Revoker{families: f, verifier: verifier}, nil
}

// Revoke revokes token on behalf of the authenticated client. A refresh
// token of one of the client's families revokes the family and every
// access token issued from it, whichever member of the family it is (the
// client owns them all). A valid access token of Verdict's issued to the
// client is revoked until its exp and forgotten by the Verifier; the
// family it came from, if any, stays. hint (token_type_hint) is ignored:
// the token's form tells the two kinds apart.
//
// As RFC 7009 §2.2 asks, a token that is unknown, malformed, expired,
// already revoked, of an external issuer or of another client gives nil
// and changes nothing: the caller cannot tell these apart, nor learn
// whether another client's token exists. An empty token gives an
// *OAuthError invalid_request. A store or verifier failure (the token
// could not be checked or recorded) is a plain error: the HTTP layer
// answers 503 and the client retries.
func (rv *Revoker) Revoke(ctx context.Context, client Client, token, hint string) error {
	if token == "" {
		return oauthErr(OAuthInvalidRequest, "token is required")
	}
	if family, ok := parseRefreshToken(token); ok {
		return rv.revokeRefresh(ctx, client, family)
	}
	return rv.revokeAccess(ctx, client, token)
}

func (rv *Revoker) revokeRefresh(ctx context.Context, client Client, family string) error {
	fam, err := rv.st.Family(ctx, family)
	if errors.Is(err, ErrUnknownFamily) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke: read family: %w", err)
	}
	if fam.ClientID != client.ID {
		return nil
	}
	fam, err = rv.revoke(ctx, family)
	if errors.Is(err, ErrUnknownFamily) {
		return nil
	}
	if err != nil {
		return err
	}
	rv.log.LogAttrs(ctx, slog.LevelInfo, "token revoked", slog.Bool("audit", true), requestIDAttr(ctx),
		slog.String("client_id", client.ID), slog.String("family", family),
		slog.Int("access_tokens", len(fam.AccessJTIs)))
	return nil
}

func (rv *Revoker) revokeAccess(ctx context.Context, client Client, token string) error {
	return rv.revokeAccessOf(ctx, &client.ID, token)
}

// RevokeHeld revokes one of Verdict's own access tokens on behalf of
// whoever holds it: the token is the credential (a console signing out
// ends the token it was given). Invalid, expired or foreign tokens change
// nothing and give nil, as in Revoke.
func (rv *Revoker) RevokeHeld(ctx context.Context, token string) error {
	return rv.revokeAccessOf(ctx, nil, token)
}

// revokeAccessOf revokes token if it is a valid access token of
// Verdict's, issued to *clientID when clientID is set.
func (rv *Revoker) revokeAccessOf(ctx context.Context, clientID *string, token string) error {
	claims, err := rv.verifier.Verify(ctx, token)
	if errors.Is(err, authn.ErrInvalidToken) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	jti, holder := claims.JTI(), claimString(claims, "client_id")
	if claims.Issuer() != rv.cfg.Issuer || jti == "" || (clientID != nil && holder != *clientID) {
		return nil
	}
	exp := claims.Expiry()
	if exp.IsZero() {
		exp = rv.clock().Add(rv.cfg.AccessTokenTTL)
	}
	if err := rv.rev.Revoke(ctx, jti, exp.Add(revocationMargin)); err != nil {
		return fmt.Errorf("revoke: record access token: %w", err)
	}
	rv.forget.ForgetJTI(jti)
	rv.log.LogAttrs(ctx, slog.LevelInfo, "token revoked", slog.Bool("audit", true), requestIDAttr(ctx),
		slog.String("client_id", holder), slog.String("jti", jti))
	return nil
}

// IntrospectResponse is the RFC 7662 §2.2 answer. An inactive token is
// {"active":false} and nothing else.
type IntrospectResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	ExpiresAt int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	// TokenType is "Bearer" for an access token and "refresh_token" for a
	// refresh token.
	TokenType string `json:"token_type,omitempty"`
}

// Introspector is RFC 7662 token introspection of Verdict's own tokens.
// Who may introspect is the HTTP layer's decision. It is safe for
// concurrent use; the zero Introspector is not usable: use
// NewIntrospector.
type Introspector struct {
	cfg      RefreshConfig
	verifier TokenVerifier
	st       RefreshStore
	log      *slog.Logger
	now      func() time.Time
}

// NewIntrospector returns an Introspector that checks access tokens with
// verifier and refresh tokens in st. now is the clock (nil means
// time.Now). It fails on an invalid config or a nil dependency.
func NewIntrospector(cfg RefreshConfig, verifier TokenVerifier, st RefreshStore, now func() time.Time) (*Introspector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if verifier == nil || st == nil {
		return nil, errors.New("introspect: nil token verifier or refresh store")
	}
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Introspector{cfg: cfg, verifier: verifier, st: st, log: log, now: now}, nil
}

// Introspect describes token. A valid access token of Verdict's (not
// revoked) gives active, scope, client_id, sub, exp, iat, iss, aud, jti and
// token_type Bearer; the current refresh token of a live family gives
// active, client_id, scope, exp and token_type refresh_token. Anything else
// (malformed, unknown, expired, revoked, a replaced refresh token, an
// external issuer's token) is inactive, and so is a token that could not
// be checked because the store or verifier failed (logged, fail closed).
func (i *Introspector) Introspect(ctx context.Context, token string) IntrospectResponse {
	if token == "" {
		return IntrospectResponse{}
	}
	if family, ok := parseRefreshToken(token); ok {
		return i.refresh(ctx, family, token)
	}
	return i.access(ctx, token)
}

func (i *Introspector) access(ctx context.Context, token string) IntrospectResponse {
	claims, err := i.verifier.Verify(ctx, token)
	if err != nil {
		if !errors.Is(err, authn.ErrInvalidToken) {
			i.log.LogAttrs(ctx, slog.LevelWarn, "introspection failed", slog.String("error", err.Error()))
		}
		return IntrospectResponse{}
	}
	clientID := claimString(claims, "client_id")
	if claims.Issuer() != i.cfg.Issuer || clientID == "" || claims.JTI() == "" {
		return IntrospectResponse{}
	}
	resp := IntrospectResponse{
		Active:    true,
		Scope:     strings.Join(claims.Scopes(), " "),
		ClientID:  clientID,
		Subject:   claims.Subject(),
		ExpiresAt: claims.Expiry().Unix(),
		Issuer:    claims.Issuer(),
		Audience:  claims.Audience(),
		JTI:       claims.JTI(),
		TokenType: "Bearer",
	}
	if iat, ok, valid := claims.NumericDate("iat"); ok && valid {
		resp.IssuedAt = iat.Unix()
	}
	return resp
}

func (i *Introspector) refresh(ctx context.Context, family, token string) IntrospectResponse {
	fam, err := i.st.Family(ctx, family)
	if err != nil {
		if !errors.Is(err, ErrUnknownFamily) {
			i.log.LogAttrs(ctx, slog.LevelWarn, "introspection failed", slog.String("error", err.Error()))
		}
		return IntrospectResponse{}
	}
	now := i.now().UTC().Round(0)
	if fam.Revoked || !now.Before(fam.ExpiresAt) || !hashEqual(refreshHash(token), fam.TokenHash) {
		return IntrospectResponse{}
	}
	return IntrospectResponse{
		Active:    true,
		Scope:     strings.Join(fam.Scopes, " "),
		ClientID:  fam.ClientID,
		ExpiresAt: fam.ExpiresAt.Unix(),
		TokenType: GrantRefreshToken,
	}
}

// claimString returns a string claim, or "" if absent or not a string.
func claimString(c authn.Claims, name string) string {
	s, _ := c[name].(string)
	return s
}
