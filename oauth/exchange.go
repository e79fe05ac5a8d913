package oauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/verdictpdp/verdict/authn"
)

// Token type identifiers of RFC 8693 §3.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// OAuthInvalidTarget is the RFC 8693 §2.2.2 error for an audience or
// resource the server will not issue a token for.
const OAuthInvalidTarget = "invalid_target"

// ExternalVerifier verifies a subject token presented for exchange and
// returns its claims. *Verifier satisfies it (configured with the external
// issuers whose tokens may be exchanged). A rejection of the token must
// wrap ErrInvalidToken; any other error means it could not be checked.
type ExternalVerifier interface {
	Verify(ctx context.Context, token string) (authn.Claims, error)
}

var _ ExternalVerifier = (*authn.Verifier)(nil)

// ClaimMapping says how a token of one external issuer becomes a Verdict
// access token.
type ClaimMapping struct {
	// Issuer is the external issuer's exact iss. Required; it must not be
	// Verdict's own issuer.
	Issuer string `yaml:"issuer"`
	// Subject is the claim the new token's sub is taken from; "" means
	// "sub". Its value must be a non-empty string or an integer.
	Subject string `yaml:"subject"`
	// Copy are claims copied unchanged into the new token when the subject
	// token has them, e.g. "email", "groups". Claims Verdict sets itself
	// (iss, sub, aud, exp, iat, nbf, jti, client_id, scope, scp, act,
	// may_act, cnf) cannot be copied.
	Copy []string `yaml:"copy"`
	// Prefix is prepended to the subject, e.g. "google:". Required and
	// unique across mappings, so that an external subject can never equal
	// a local client id or another issuer's subject.
	Prefix string `yaml:"prefix"`
}

// ExchangeConfig configures token exchange.
type ExchangeConfig struct {
	// Mappings are the external issuers whose tokens may be exchanged, one
	// mapping each. A verified token of an issuer without one is refused.
	Mappings []ClaimMapping `yaml:"mappings"`
}

// reservedClaims are the claims a mapping may not copy: the issuer sets
// them, or they carry meaning (delegation, binding) that must come from
// Verdict and not from another issuer.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "scp",
	"act", "may_act", "cnf",
}

// Validate reports every problem in c, joined with errors.Join; nil if c is
// usable. ownIssuer is Verdict's issuer, which no mapping may name.
func (c ExchangeConfig) Validate(ownIssuer string) error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("token exchange: "+format, args...))
	}
	issuers := map[string]bool{}
	prefixes := map[string]bool{}
	for i, m := range c.Mappings {
		name := fmt.Sprintf("mapping %d (%q)", i, m.Issuer)
		switch {
		case m.Issuer == "":
			add("mapping %d: issuer must not be empty", i)
		case m.Issuer == ownIssuer:
			add("%s: Verdict's own tokens cannot be exchanged", name)
		case issuers[m.Issuer]:
			add("%s: issuer is mapped twice", name)
		}
		issuers[m.Issuer] = true
		switch {
		case m.Prefix == "":
			add("%s: prefix must not be empty", name)
		case strings.IndexFunc(m.Prefix, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
			add("%s: prefix %q has a space or non-printable character", name, m.Prefix)
		case prefixes[m.Prefix]:
			add("%s: prefix %q is used by another mapping", name, m.Prefix)
		}
		prefixes[m.Prefix] = true
		seen := map[string]bool{}
		for _, cl := range m.Copy {
			switch {
			case cl == "":
				add("%s: a copied claim name is empty", name)
			case slices.Contains(reservedClaims, cl):
				add("%s: claim %q cannot be copied: Verdict sets it", name, cl)
			case seen[cl]:
				add("%s: claim %q is copied twice", name, cl)
			}
			seen[cl] = true
		}
	}
	return errors.Join(errs...)
}

// ExchangeRequest is an RFC 8693 token exchange request, as the HTTP layer
// read it. actor_token is not supported: the actor is always the
// authenticated client.
type ExchangeRequest struct {
	// SubjectToken is the token to exchange. Required.
	SubjectToken string
	// SubjectTokenType is TokenTypeJWT or TokenTypeAccessToken. Required.
	SubjectTokenType string
	// RequestedTokenType, when set, must be TokenTypeAccessToken.
	RequestedTokenType string
	// Scope is the space-separated scope parameter; empty asks for every
	// scope the client has.
	Scope string
	// Audience and Resource, when set, must name the audience of Verdict's
	// access tokens (the only one it issues for). The HTTP layer passes one
	// value of each.
	Audience string
	Resource string
}

// Exchanger turns verified tokens of trusted external issuers into Verdict
// access tokens for the calling client (RFC 8693 token exchange, the
// client acting for the token's subject). It is safe for concurrent use;
// the zero value is not usable: use NewExchanger.
type Exchanger struct {
	clients  *Clients
	subjects ExternalVerifier
	issuer   *TokenIssuer
	mappings map[string]ClaimMapping
}

// NewExchanger returns an exchanger. subjects verifies subject tokens;
// issuer signs the new tokens, and its issuer and audience are Verdict's
// own. It fails on an invalid config or a nil dependency.
func NewExchanger(cfg ExchangeConfig, clients *Clients, subjects ExternalVerifier, issuer *TokenIssuer) (*Exchanger, error) {
	if clients == nil || subjects == nil || issuer == nil {
		return nil, errors.New("token exchange: nil client registry, verifier or issuer")
	}
	if err := cfg.Validate(issuer.cfg.Issuer); err != nil {
		return nil, err
	}
	x := &Exchanger{clients: clients, subjects: subjects, issuer: issuer, mappings: map[string]ClaimMapping{}}
	for _, m := range cfg.Mappings {
		if m.Subject == "" {
			m.Subject = "sub"
		}
		m.Copy = slices.Clone(m.Copy)
		x.mappings[m.Issuer] = m
	}
	return x, nil
}

// Exchange checks req for client (already authenticated by the caller),
// verifies the subject token and issues an access token whose sub is the
// mapped subject, client_id the client, scope the requested scopes (or all
// of the client's), with the mapping's copied claims and an act claim
// naming the client as actor (RFC 8693 §4.1; an act of the subject token is
// nested inside it).
//
// Protocol failures come back as *OAuthError: invalid_request for missing
// or unsupported parameters, invalid_target for a foreign audience or
// resource, unauthorized_client when the client may not exchange,
// invalid_scope for a scope it does not have, and invalid_grant for a
// subject token that is invalid, Verdict's own, or of an issuer without a
// mapping. The description never quotes the token; for an invalid token
// the verifier's reason is wrapped behind the *OAuthError, for the log
// only. Any other error (the verifier could not check the token, signing
// failed) is returned as it is, for a 5xx.
func (x *Exchanger) Exchange(ctx context.Context, client Client, req ExchangeRequest) (AccessToken, error) {
	g, err := x.Resolve(ctx, client, req)
	if err != nil {
		return AccessToken{}, err
	}
	at, err := x.issuer.Issue(client.ID, g.Subject, g.Scopes, g.Claims)
	if err != nil {
		return AccessToken{}, fmt.Errorf("token exchange: %w", err)
	}
	return at, nil
}

// Grant is what an exchange grants: the token's subject, scopes and extra
// claims (copied claims and act).
type Grant struct {
	Subject string
	Scopes  []string
	Claims  map[string]any
}

// Resolve checks an exchange request as Exchange does and returns what
// the new token would carry, without issuing it (so that the caller may
// issue it with a refresh token instead). Errors are those of Exchange.
func (x *Exchanger) Resolve(ctx context.Context, client Client, req ExchangeRequest) (Grant, error) {
	switch req.SubjectTokenType {
	case TokenTypeJWT, TokenTypeAccessToken:
	case "":
		return Grant{}, oauthErr(OAuthInvalidRequest, "subject_token_type is required")
	default:
		return Grant{}, oauthErr(OAuthInvalidRequest, "subject_token_type must be "+TokenTypeJWT+" or "+TokenTypeAccessToken)
	}
	if req.RequestedTokenType != "" && req.RequestedTokenType != TokenTypeAccessToken {
		return Grant{}, oauthErr(OAuthInvalidRequest, "requested_token_type must be "+TokenTypeAccessToken)
	}
	if req.SubjectToken == "" {
		return Grant{}, oauthErr(OAuthInvalidRequest, "subject_token is required")
	}
	own := x.issuer.cfg.Audience
	if (req.Audience != "" && req.Audience != own) || (req.Resource != "" && req.Resource != own) {
		return Grant{}, oauthErr(OAuthInvalidTarget, "this server issues tokens for audience "+strconv.Quote(own)+" only")
	}

	// The client's own limits are checked before the subject token, so a
	// client that may not exchange never makes the verifier fetch keys.
	scopes := strings.Fields(req.Scope)
	if err := x.clients.Allowed(client, GrantTokenExchange, scopes); err != nil {
		switch {
		case errors.Is(err, ErrUnauthorizedClient):
			return Grant{}, oauthErr(OAuthUnauthorizedClient, "this client may not use token exchange")
		case errors.Is(err, ErrInvalidScope):
			return Grant{}, oauthErr(OAuthInvalidScope, err.Error())
		}
		return Grant{}, err
	}
	if len(scopes) == 0 {
		scopes = client.Scopes
	}

	claims, err := x.subjects.Verify(ctx, req.SubjectToken)
	switch {
	case errors.Is(err, authn.ErrInvalidToken):
		// %v, not %w: the server must see an OAuth error, not a bad bearer
		// token of its own caller.
		return Grant{}, fmt.Errorf("%w: %v", oauthErr(OAuthInvalidGrant, "subject_token is invalid, expired or not from a trusted issuer"), err)
	case err != nil:
		return Grant{}, fmt.Errorf("token exchange: verifying subject_token: %w", err)
	}

	iss := claims.Issuer()
	if iss == x.issuer.cfg.Issuer {
		return Grant{}, oauthErr(OAuthInvalidGrant, "exchange is for tokens of other issuers")
	}
	m, ok := x.mappings[iss]
	if !ok {
		return Grant{}, oauthErr(OAuthInvalidGrant, "tokens of this issuer cannot be exchanged")
	}
	var sub string
	switch v := claims[m.Subject].(type) {
	case string:
		sub = v
	case int64:
		sub = strconv.FormatInt(v, 10)
	}
	if sub == "" {
		return Grant{}, oauthErr(OAuthInvalidGrant, "subject_token has no usable "+m.Subject+" claim")
	}
	if len(m.Prefix)+len(sub) > authn.MaxClaimLen {
		return Grant{}, oauthErr(OAuthInvalidGrant, "subject_token's "+m.Subject+" claim is too long")
	}

	// The claims may be shared with the verifier's cache: they are only
	// read, never modified.
	extra := make(map[string]any, len(m.Copy)+1)
	for _, name := range m.Copy {
		if v, ok := claims[name]; ok {
			extra[name] = v
		}
	}
	act := map[string]any{"sub": client.ID}
	if prior, ok := claims["act"].(map[string]any); ok {
		act["act"] = prior
	}
	extra["act"] = act

	return Grant{Subject: m.Prefix + sub, Scopes: scopes, Claims: extra}, nil
}
