package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// Errors of the refresh-token store; the wiring maps the store package's
// ErrNotFound and ErrConflict to them.
var (
	// ErrUnknownFamily means no refresh-token family has that id.
	ErrUnknownFamily = errors.New("unknown refresh token family")
	// ErrFamilyConflict means a family write lost: CreateFamily found the
	// id taken, or Rotate found the family revoked or its current token
	// already replaced.
	ErrFamilyConflict = errors.New("refresh token family conflict")
	// ErrRefreshRace is wrapped by the invalid_grant *OAuthError of a
	// refresh that lost a race with a concurrent refresh of the same
	// token. It is not a failed client authentication: the client proved
	// who it is, and only its timing was off.
	ErrRefreshRace = errors.New("refresh token was rotated by a concurrent refresh")
)

// Limits and defaults of refresh tokens.
const (
	// DefaultRefreshReuseGrace is RefreshConfig.ReuseGrace by default.
	DefaultRefreshReuseGrace = 2 * time.Second
	// MaxRefreshReuseGrace bounds RefreshConfig.ReuseGrace (Okta's limit
	// too): a longer grace would hide a replay for too long.
	MaxRefreshReuseGrace = time.Minute
	// refreshFamilyLen and refreshSecretLen are the random bytes of the two
	// parts of a refresh token: "<family>.<secret>", each base64url.
	refreshFamilyLen = 16
	refreshSecretLen = 32
	// maxRefreshTokenLen bounds what is decoded (22 + 1 + 43 characters).
	maxRefreshTokenLen = 66
	// revocationMargin is added to an access token's exp when its jti is
	// revoked: the Verifier accepts a token until exp plus its clock skew,
	// which VerifierConfig.Validate bounds to 5m.
	revocationMargin = 5 * time.Minute
)

// RefreshToken is the current member of a refresh-token family: the chain
// of refresh tokens one grant produced, each replacing the last. It
// mirrors store.RefreshToken field for field so that the wiring can
// convert between the two. Only a hash of the token is kept.
type RefreshToken struct {
	// Family identifies the chain; it is the first part of every token in
	// it.
	Family string
	// TokenHash is SHA-256 of the whole refresh token valid now.
	TokenHash []byte
	// PrevHash is SHA-256 of the token TokenHash replaced (empty before the
	// first rotation); the store's Rotate sets it.
	PrevHash []byte
	// RotatedAt is when the family was last rotated; zero before the first
	// rotation.
	RotatedAt time.Time
	// ClientID is the client the family was issued to; only it may use or
	// revoke the family.
	ClientID string
	// Subject is the sub of the access tokens issued from the family.
	Subject string
	// Scopes are the scopes granted when the family started; a refresh
	// may ask for fewer, never more.
	Scopes []string
	// ExpiresAt is when the family ends, however often it is rotated.
	ExpiresAt time.Time
	// AccessJTIs are the jti of every access token issued from the family,
	// so that revoking the family revokes them too.
	AccessJTIs []string
	// Revoked families refresh nothing.
	Revoked bool
	// Claims are the extra claims (such as act) every access token of the
	// family carries.
	Claims map[string]any
}

// RefreshStore is the durable storage of refresh-token families, shared by
// every replica.
type RefreshStore interface {
	// CreateFamily stores the first token of a new family; an error
	// wrapping ErrFamilyConflict if the family exists.
	CreateFamily(ctx context.Context, t RefreshToken) error
	// Rotate replaces the family's record with next if the family is not
	// revoked and its current hash is oldHash, atomically: of concurrent
	// rotations of one token exactly one succeeds and the others get an
	// error wrapping ErrFamilyConflict, as does a revoked family or a
	// different current hash. The record written has PrevHash oldHash,
	// whatever next.PrevHash says.
	Rotate(ctx context.Context, family string, oldHash []byte, next RefreshToken) error
	// Family returns a family; an error wrapping ErrUnknownFamily if none.
	Family(ctx context.Context, family string) (RefreshToken, error)
	// RevokeFamily marks the family revoked (again, if it already is) and
	// returns it with its AccessJTIs; an error wrapping ErrUnknownFamily if
	// none.
	RevokeFamily(ctx context.Context, family string) (RefreshToken, error)
}

// RevocationStore records revoked access-token ids, shared by every
// replica; the RevocationChecker of the Verifiers reads the same records.
type RevocationStore interface {
	// Revoke records jti as revoked until exp.
	Revoke(ctx context.Context, jti string, exp time.Time) error
}

// JTIForgetter drops this replica's cached verifications of a revoked
// jti. *Verifier satisfies it.
type JTIForgetter interface {
	ForgetJTI(jti string)
}

// AccessIssuer signs access tokens. *TokenIssuer satisfies it.
type AccessIssuer interface {
	Issue(clientID, subject string, scopes []string, extra map[string]any) (AccessToken, error)
}

var (
	_ JTIForgetter = (*authn.Verifier)(nil)
	_ AccessIssuer = (*TokenIssuer)(nil)
)

// RefreshConfig configures refresh-token families and the revocation and
// introspection of Verdict's own tokens. A zero field means its default,
// except Issuer, which is required, and ReuseGrace, where zero turns the
// grace off.
type RefreshConfig struct {
	// Issuer is the iss of Verdict's own access tokens
	// (IssuerConfig.Issuer). Only tokens of this issuer are revoked or
	// introspected as active; those of trusted external issuers are not.
	Issuer string `yaml:"issuer"`
	// RefreshTTL is the lifetime of a refresh-token family, counted from
	// its start and not extended by rotation. Default 24h.
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// AccessTokenTTL is the longest lifetime of an access token Verdict
	// issues (at least IssuerConfig.AccessTokenTTL). Revoking a family
	// revokes its access tokens for this long plus 5m of clock skew.
	// Default 5m.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// MaxRotations is the most access tokens one family issues; after that
	// a refresh fails with invalid_grant and the client starts again. It
	// bounds the family record (its list of access-token ids). Default
	// 10,000 (one refresh every 9s for 24h).
	MaxRotations int `yaml:"max_rotations"`
	// ReuseGrace is how long after a rotation the token it replaced is
	// answered invalid_grant without revoking the family: what a refresh
	// that lost a race with a concurrent refresh of the same token
	// presents. Within it a replay of that one token is refused but not
	// detected as reuse; any older token, or that one later, is reuse and
	// revokes the family. Zero turns the grace off (every late loser of a
	// race revokes the family). At most MaxRefreshReuseGrace;
	// DefaultRefreshConfig has DefaultRefreshReuseGrace.
	ReuseGrace time.Duration `yaml:"reuse_grace"`
	// Logger receives the audit events: "refresh token reuse detected" and
	// "token revoked". It never sees a token. nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultRefreshConfig returns the defaults (no issuer).
func DefaultRefreshConfig() RefreshConfig {
	return RefreshConfig{RefreshTTL: 24 * time.Hour, AccessTokenTTL: 5 * time.Minute, MaxRotations: 10_000, ReuseGrace: DefaultRefreshReuseGrace}
}

// withDefaults fills the zero fields with their defaults.
func (c RefreshConfig) withDefaults() RefreshConfig {
	d := DefaultRefreshConfig()
	if c.RefreshTTL == 0 {
		c.RefreshTTL = d.RefreshTTL
	}
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = d.AccessTokenTTL
	}
	if c.MaxRotations == 0 {
		c.MaxRotations = d.MaxRotations
	}
	return c
}

// Validate reports every problem in c (zero fields taken as their
// defaults), joined with errors.Join; nil if c is usable.
func (c RefreshConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		errs = append(errs, fmt.Errorf("refresh: issuer must be an http(s) URL, got %q", c.Issuer))
	}
	if c.RefreshTTL < 0 {
		errs = append(errs, fmt.Errorf("refresh: refresh_ttl %s is negative", c.RefreshTTL))
	}
	if c.AccessTokenTTL < 0 {
		errs = append(errs, fmt.Errorf("refresh: access_token_ttl %s is negative", c.AccessTokenTTL))
	}
	if c.MaxRotations < 0 {
		errs = append(errs, fmt.Errorf("refresh: max_rotations %d is negative", c.MaxRotations))
	}
	if c.ReuseGrace < 0 || c.ReuseGrace > MaxRefreshReuseGrace {
		errs = append(errs, fmt.Errorf("refresh: reuse_grace %s is outside 0s..%s (0 turns it off)", c.ReuseGrace, MaxRefreshReuseGrace))
	}
	return errors.Join(errs...)
}

// families is what the Refresher and the Revoker share: revoking a family
// with every access token issued from it.
type families struct {
	cfg    RefreshConfig
	st     RefreshStore
	rev    RevocationStore
	forget JTIForgetter
	log    *slog.Logger
	now    func() time.Time
}

func newFamilies(cfg RefreshConfig, st RefreshStore, rev RevocationStore, forget JTIForgetter, now func() time.Time) (families, error) {
	if err := cfg.Validate(); err != nil {
		return families{}, err
	}
	if st == nil || rev == nil || forget == nil {
		return families{}, errors.New("refresh: nil refresh store, revocation store or jti forgetter")
	}
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return families{cfg: cfg, st: st, rev: rev, forget: forget, log: log, now: now}, nil
}

// clock returns now as stored: UTC, without the monotonic reading.
func (f *families) clock() time.Time { return f.now().UTC().Round(0) }

// revoke revokes the family and every access token issued from it. Every
// jti is forgotten locally even if recording it fails; the first failure
// is returned (the family itself is revoked by then, and revoking it again
// retries the rest).
func (f *families) revoke(ctx context.Context, family string) (RefreshToken, error) {
	fam, err := f.st.RevokeFamily(ctx, family)
	if err != nil {
		return RefreshToken{}, fmt.Errorf("refresh: revoke family: %w", err)
	}
	// Every access token of the family was issued by now, so it expires
	// by now + AccessTokenTTL.
	until := f.clock().Add(f.cfg.AccessTokenTTL + revocationMargin)
	var first error
	failed := 0
	for _, jti := range fam.AccessJTIs {
		if err := f.rev.Revoke(ctx, jti, until); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
		f.forget.ForgetJTI(jti)
	}
	if first != nil {
		return fam, fmt.Errorf("refresh: revoke %d of %d access tokens of a family: %w", failed, len(fam.AccessJTIs), first)
	}
	return fam, nil
}

// Refresher starts refresh-token families and rotates them. A refresh
// token is "<family>.<secret>": 128 random bits naming the family and 256
// secret ones, each base64url; only SHA-256 of the whole token is stored.
// Every use rotates the token; presenting a replaced token of a family
// revokes the family and its access tokens. It is safe for concurrent use;
// the zero Refresher is not usable: use NewRefresher. The exception is the
// token a rotation replaced, within RefreshConfig.ReuseGrace of it: that is
// what the loser of two concurrent refreshes presents, and it is refused
// without revoking anything.
type Refresher struct {
	families
	issuer AccessIssuer
}

// NewRefresher returns a Refresher that issues access tokens with issuer
// and keeps families in st; revoking a family records its access tokens in
// rev and drops them from forget (the Verifier). now is the clock (nil
// means time.Now). It fails on an invalid config, a nil dependency, or a
// *TokenIssuer whose issuer or token lifetime cfg does not match.
func NewRefresher(cfg RefreshConfig, issuer AccessIssuer, st RefreshStore, rev RevocationStore, forget JTIForgetter, now func() time.Time) (*Refresher, error) {
	f, err := newFamilies(cfg, st, rev, forget, now)
	if err != nil {
		return nil, err
	}
	if issuer == nil {
		return nil, errors.New("refresh: nil access token issuer")
	}
	if ti, ok := issuer.(*TokenIssuer); ok {
		if ti.cfg.Issuer != f.cfg.Issuer {
			return nil, fmt.Errorf("refresh: issuer %q differs from the token issuer's %q", f.cfg.Issuer, ti.cfg.Issuer)
		}
		if ti.cfg.AccessTokenTTL > f.cfg.AccessTokenTTL {
			return nil, fmt.Errorf("refresh: access_token_ttl %s is shorter than the token issuer's %s", f.cfg.AccessTokenTTL, ti.cfg.AccessTokenTTL)
		}
	}
	return &Refresher{families: f, issuer: issuer}, nil
}

// Start issues an access token for subject on behalf of clientID with
// scopes, and the first refresh token of a new family, which ends
// RefreshTTL from now. It is for grants that may issue a refresh token
// (token exchange, never client_credentials); the caller has checked that
// the client may use the refresh_token grant. Non-empty extra gives
// extra claims are kept with the family and carried by every access token
// it issues; a signing or store failure a plain
// error, and then neither token is handed out.
func (r *Refresher) Start(ctx context.Context, clientID, subject string, scopes []string, extra map[string]any) (AccessToken, string, error) {
	token, family, err := newRefreshToken()
	if err != nil {
		return AccessToken{}, "", err
	}
	at, err := r.startFamily(ctx, token, family, clientID, subject, scopes, extra)
	if err != nil {
		return AccessToken{}, "", err
	}
	return at, token, nil
}

// RevokeFamily revokes a refresh family and every access token issued
// from it; an unknown family is not an error (nothing to revoke).
func (r *Refresher) RevokeFamily(ctx context.Context, family string) error {
	_, err := r.revoke(ctx, family)
	if errors.Is(err, ErrUnknownFamily) {
		return nil
	}
	return err
}

// startFamily is Start with the family's first token chosen by the caller
// (newRefreshToken), so that the family id can be recorded elsewhere first.
func (r *Refresher) startFamily(ctx context.Context, token, family, clientID, subject string, scopes []string, extra map[string]any) (AccessToken, error) {
	if clientID == "" {
		return AccessToken{}, errors.New("refresh: start: empty client id")
	}
	scopes = slices.Clone(scopes)
	at, err := r.issuer.Issue(clientID, subject, scopes, extra)
	if err != nil {
		return AccessToken{}, err
	}
	err = r.st.CreateFamily(ctx, RefreshToken{
		Family:     family,
		TokenHash:  refreshHash(token),
		ClientID:   clientID,
		Subject:    subject,
		Scopes:     scopes,
		ExpiresAt:  r.clock().Add(r.cfg.RefreshTTL),
		AccessJTIs: []string{at.JTI},
		Claims:     extra,
	})
	if err != nil {
		return AccessToken{}, fmt.Errorf("refresh: start family: %w", err)
	}
	return at, nil
}

// Refresh is the refresh_token grant: it checks refreshToken for client
// and returns a new access token and the family's next refresh token
// (refreshToken stops working). scope is the space-separated scope
// parameter: empty asks for every scope of the family the client still
// has; otherwise each must be among the family's and the client's scopes.
//
// Protocol failures are *OAuthError: unauthorized_client if the client may
// not use the grant; invalid_grant if the token is malformed, unknown,
// another client's, revoked, expired, at MaxRotations, or lost a race with
// a concurrent refresh of the same token (it reached the store after the
// winner, or it is the token the winner replaced, presented within
// ReuseGrace of the rotation: the family is left alone and the error
// wraps ErrRefreshRace); invalid_scope for a scope beyond the family's or
// the client's. Any other token of the family that has already been
// replaced is taken as stolen: the family and its access tokens are
// revoked, the "refresh token reuse detected" audit event is logged
// (with the request id WithRequestID put in ctx) and the answer is
// invalid_grant "refresh token reuse detected". That includes a made-up
// secret under a real family id (only the family's own, authenticated
// client can cause it). A store or signing failure is a plain error,
// which the HTTP layer turns into a 5xx.
func (r *Refresher) Refresh(ctx context.Context, client Client, refreshToken, scope string) (AccessToken, string, error) {
	fail := func(code, desc string) (AccessToken, string, error) {
		return AccessToken{}, "", oauthErr(code, desc)
	}
	if !slices.Contains(client.Grants, GrantRefreshToken) {
		return fail(OAuthUnauthorizedClient, "this client may not use grant_type "+GrantRefreshToken)
	}
	family, ok := parseRefreshToken(refreshToken)
	if !ok {
		return fail(OAuthInvalidGrant, "refresh token is invalid")
	}
	fam, err := r.st.Family(ctx, family)
	if errors.Is(err, ErrUnknownFamily) {
		return fail(OAuthInvalidGrant, "refresh token is invalid")
	}
	if err != nil {
		return AccessToken{}, "", fmt.Errorf("refresh: read family: %w", err)
	}
	// Another client's token is answered as an unknown one, and does not
	// touch the family: a client cannot revoke families it does not own.
	if fam.ClientID != client.ID {
		return fail(OAuthInvalidGrant, "refresh token is invalid")
	}
	if fam.Revoked {
		return fail(OAuthInvalidGrant, "refresh token is revoked")
	}
	if !r.clock().Before(fam.ExpiresAt) {
		return fail(OAuthInvalidGrant, "refresh token has expired")
	}
	hash := refreshHash(refreshToken)
	if !hashEqual(hash, fam.TokenHash) {
		if r.justReplaced(fam, hash) {
			return AccessToken{}, "", raceLost()
		}
		return AccessToken{}, "", r.reuseDetected(ctx, client.ID, family)
	}
	if len(fam.AccessJTIs) >= r.cfg.MaxRotations {
		return fail(OAuthInvalidGrant, "refresh token has been used too often; authenticate again")
	}
	scopes, err := refreshScopes(fam.Scopes, client.Scopes, strings.Fields(scope))
	if err != nil {
		return AccessToken{}, "", err
	}

	next, err := nextRefreshToken(family)
	if err != nil {
		return AccessToken{}, "", err
	}
	at, err := r.issuer.Issue(fam.ClientID, fam.Subject, scopes, fam.Claims)
	if err != nil {
		return AccessToken{}, "", err
	}
	rec := fam
	rec.TokenHash = refreshHash(next)
	rec.RotatedAt = r.clock()
	rec.Scopes = slices.Clone(fam.Scopes)
	rec.AccessJTIs = append(slices.Clone(fam.AccessJTIs), at.JTI)
	rec.Revoked = false
	// The access token is signed before the rotation so that its jti is in
	// the record the rotation writes; if the rotation loses, it is dropped
	// unseen.
	err = r.st.Rotate(ctx, family, fam.TokenHash, rec)
	if errors.Is(err, ErrFamilyConflict) {
		return AccessToken{}, "", raceLost()
	}
	if err != nil {
		return AccessToken{}, "", fmt.Errorf("refresh: rotate: %w", err)
	}
	return at, next, nil
}

// raceLost is the answer to a refresh that lost a race with a concurrent
// refresh of the same token.
func raceLost() error {
	return &OAuthError{Code: OAuthInvalidGrant, Description: "refresh token is no longer valid", cause: ErrRefreshRace}
}

// justReplaced reports whether hash is of the token the family's last
// rotation replaced, presented less than ReuseGrace after it: the loser of
// a race with a concurrent refresh, which read the family after the
// winner's rotation.
func (r *Refresher) justReplaced(fam RefreshToken, hash []byte) bool {
	if r.cfg.ReuseGrace <= 0 || len(fam.PrevHash) == 0 || fam.RotatedAt.IsZero() || !hashEqual(hash, fam.PrevHash) {
		return false
	}
	return r.clock().Sub(fam.RotatedAt) < r.cfg.ReuseGrace
}

// reuseDetected revokes a family one of whose replaced tokens was
// presented, logs the audit event and returns the answer: invalid_grant,
// or the store's error if the family or some of its access tokens could
// not be revoked (a 5xx; the outcome in the log says so).
func (r *Refresher) reuseDetected(ctx context.Context, clientID, family string) error {
	fam, err := r.revoke(ctx, family)
	outcome := "family revoked"
	if err != nil {
		outcome = "revocation failed"
	}
	attrs := []slog.Attr{slog.Bool("audit", true), requestIDAttr(ctx),
		slog.String("client_id", clientID), slog.String("family", family),
		slog.Int("access_tokens", len(fam.AccessJTIs)), slog.String("outcome", outcome)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	r.log.LogAttrs(ctx, slog.LevelWarn, "refresh token reuse detected", attrs...)
	if err != nil {
		return err
	}
	return oauthErr(OAuthInvalidGrant, "refresh token reuse detected")
}

// refreshScopes returns the scopes of a refreshed access token: requested
// (deduplicated) if each is among the family's and the client's, or, if
// none are requested, the family's that the client still has.
func refreshScopes(family, client, requested []string) ([]string, error) {
	if len(requested) == 0 {
		var out []string
		for _, s := range family {
			if slices.Contains(client, s) {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, oauthErr(OAuthInvalidScope, "the client no longer has any scope of this refresh token")
		}
		return out, nil
	}
	requested = dedupe(requested)
	var missing []string
	for _, s := range requested {
		if !slices.Contains(family, s) || !slices.Contains(client, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, oauthErr(OAuthInvalidScope, "scope "+strings.Join(missing, " ")+" was not granted to this refresh token")
	}
	return requested, nil
}

// newRefreshToken returns the first token of a new family, and the family.
func newRefreshToken() (token, family string, err error) {
	var b [refreshFamilyLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("refresh: random family: %w", err)
	}
	family = b64.EncodeToString(b[:])
	token, err = nextRefreshToken(family)
	return token, family, err
}

// nextRefreshToken returns a new token of family.
func nextRefreshToken(family string) (string, error) {
	var b [refreshSecretLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("refresh: random secret: %w", err)
	}
	return family + "." + b64.EncodeToString(b[:]), nil
}

// parseRefreshToken returns the family of a well-formed refresh token.
// Anything else (a JWT has two dots) is not one.
func parseRefreshToken(token string) (family string, ok bool) {
	if len(token) > maxRefreshTokenLen {
		return "", false
	}
	family, secret, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	f, err := b64.DecodeString(family)
	if err != nil || len(f) != refreshFamilyLen {
		return "", false
	}
	if s, err := b64.DecodeString(secret); err != nil || len(s) != refreshSecretLen {
		return "", false
	}
	return family, true
}

// refreshHash is what the store keeps of a refresh token.
func refreshHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// hashEqual compares two token hashes in constant time.
func hashEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// b64 is strict base64url without padding.
var b64 = base64.RawURLEncoding.Strict()
