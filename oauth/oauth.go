package oauth

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// OAuth 2.0 error codes of RFC 6749 §5.2.
const (
	OAuthInvalidRequest       = "invalid_request"
	OAuthInvalidClient        = "invalid_client"
	OAuthInvalidGrant         = "invalid_grant"
	OAuthUnauthorizedClient   = "unauthorized_client"
	OAuthUnsupportedGrantType = "unsupported_grant_type"
	OAuthInvalidScope         = "invalid_scope"
)

// OAuthError is an error the token endpoint answers with: one of the RFC
// 6749 §5.2 codes and a description safe to show the client.
type OAuthError struct {
	Code        string
	Description string
	// cause, when set, tells callers that branch on it (errors.Is) more
	// than the code does, such as ErrRefreshRace.
	cause error
}

// Error returns "code: description".
func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// Unwrap returns the cause, nil for most errors.
func (e *OAuthError) Unwrap() error { return e.cause }

func oauthErr(code, desc string) *OAuthError { return &OAuthError{Code: code, Description: desc} }

// ClientCredentials are how a client authenticated a request: a secret
// (client_secret_basic or client_secret_post) or a private_key_jwt
// assertion.
type ClientCredentials struct {
	ClientID            string
	ClientSecret        string
	ClientAssertionType string
	ClientAssertion     string
}

// TokenRequest is a token request as the HTTP layer read it.
type TokenRequest struct {
	ClientCredentials
	GrantType string
	// Scope is the space-separated scope parameter; empty asks for every
	// scope the client (or the refresh family) has.
	Scope string
	// RefreshToken is the refresh_token grant's token.
	RefreshToken string
	// Token exchange (RFC 8693) parameters.
	SubjectToken       string
	SubjectTokenType   string
	RequestedTokenType string
	Audience           string
	Resource           string
	ActorToken         string
	// The authorization_code grant's parameters.
	Code         string
	RedirectURI  string
	CodeVerifier string
}

// TokenResponse is the RFC 6749 §5.1 answer (with RFC 8693's
// issued_token_type for an exchange).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	// IDToken is the OpenID Connect ID token (scope openid).
	IDToken string `json:"id_token,omitempty"`
	// JTI is the access token's id, for audit logs (not sent).
	JTI string `json:"-"`
	// ClientID is the authenticated client, for audit logs (not sent).
	ClientID string `json:"-"`
}

// TokenService answers token, revocation and introspection requests. It is
// safe for concurrent use. The grants and client authentication methods
// beyond client_credentials with a secret are enabled by its options.
type TokenService struct {
	clients      *Clients
	issuer       *TokenIssuer
	now          func() time.Time
	refresher    *Refresher
	exchanger    *Exchanger
	assertions   *AssertionVerifier
	revoker      *Revoker
	introspector *Introspector
	authorizer   *Authorizer
	log          *slog.Logger
}

// ServiceOption enables a part of the token service.
type ServiceOption func(*TokenService)

// WithRefresh enables the refresh_token grant; token exchange then issues a
// refresh token to clients allowed that grant.
func WithRefresh(r *Refresher) ServiceOption { return func(s *TokenService) { s.refresher = r } }

// WithExchange enables the RFC 8693 token-exchange grant.
func WithExchange(x *Exchanger) ServiceOption { return func(s *TokenService) { s.exchanger = x } }

// WithAssertions enables private_key_jwt client authentication.
func WithAssertions(a *AssertionVerifier) ServiceOption {
	return func(s *TokenService) { s.assertions = a }
}

// WithAuthorizationCode enables the authorization_code grant (people
// signing in) and public clients; log receives its audit events.
func WithAuthorizationCode(a *Authorizer, log *slog.Logger) ServiceOption {
	return func(s *TokenService) { s.authorizer, s.log = a, log }
}

// WithRevocation enables revocation (RFC 7009) and introspection (RFC 7662).
func WithRevocation(rv *Revoker, in *Introspector) ServiceOption {
	return func(s *TokenService) { s.revoker, s.introspector = rv, in }
}

// NewTokenService returns a token service over the client registry and the
// access-token issuer.
func NewTokenService(clients *Clients, issuer *TokenIssuer, now func() time.Time, opts ...ServiceOption) *TokenService {
	if now == nil {
		now = time.Now
	}
	s := &TokenService{clients: clients, issuer: issuer, now: now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// GrantTypes lists the grant types Token accepts.
func (s *TokenService) GrantTypes() []string {
	g := []string{GrantClientCredentials}
	if s.refresher != nil {
		g = append(g, GrantRefreshToken)
	}
	if s.exchanger != nil {
		g = append(g, GrantTokenExchange)
	}
	if s.authorizer != nil {
		g = append(g, GrantAuthorizationCode)
	}
	return g
}

// Authorizer is the authorization-code flow, nil when it is not enabled.
func (s *TokenService) Authorizer() *Authorizer { return s.authorizer }

// AuthMethods lists the client authentication methods accepted.
func (s *TokenService) AuthMethods() []string {
	m := []string{"client_secret_basic", "client_secret_post"}
	if s.assertions != nil {
		m = append(m, "private_key_jwt")
	}
	if s.authorizer != nil {
		m = append(m, "none")
	}
	return m
}

// Authenticate checks a client's credentials. Any failure to authenticate is
// an *OAuthError invalid_client that does not say which part was wrong;
// other failures (the store) come back as they are.
func (s *TokenService) Authenticate(ctx context.Context, cc ClientCredentials) (Client, error) {
	var (
		cl  Client
		err error
	)
	switch {
	case cc.ClientAssertionType != "" || cc.ClientAssertion != "":
		if cc.ClientSecret != "" {
			return Client{}, oauthErr(OAuthInvalidRequest, "use one client authentication method, not a secret and an assertion both")
		}
		if s.assertions == nil {
			return Client{}, oauthErr(OAuthInvalidClient, "private_key_jwt is not enabled on this server")
		}
		cl, err = s.assertions.Authenticate(ctx, cc.ClientID, cc.ClientAssertionType, cc.ClientAssertion)
	case cc.ClientID != "" && cc.ClientSecret == "" && s.authorizer != nil:
		// A public client names itself; any other client must prove it.
		pub, lerr := s.clients.Lookup(ctx, cc.ClientID)
		if lerr != nil && !errors.Is(lerr, ErrUnknownClient) {
			return Client{}, lerr
		}
		if lerr != nil || !pub.Public {
			return Client{}, oauthErr(OAuthInvalidClient, "client authentication is required (client_secret_basic, client_secret_post or private_key_jwt)")
		}
		return pub, nil
	case cc.ClientID == "" || cc.ClientSecret == "":
		return Client{}, oauthErr(OAuthInvalidClient, "client authentication is required (client_secret_basic, client_secret_post or private_key_jwt)")
	default:
		cl, err = s.clients.Authenticate(ctx, cc.ClientID, cc.ClientSecret)
	}
	if errors.Is(err, ErrInvalidClient) {
		return Client{}, oauthErr(OAuthInvalidClient, "client authentication failed")
	}
	return cl, err
}

// Token authenticates the client and answers the grant. Protocol failures
// come back as *OAuthError; anything else (a store or signing failure) as a
// plain error, which the HTTP layer turns into a 5xx.
func (s *TokenService) Token(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	switch req.GrantType {
	case "":
		return TokenResponse{}, oauthErr(OAuthInvalidRequest, "grant_type is required")
	case GrantClientCredentials:
	case GrantRefreshToken:
		if s.refresher == nil {
			return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "grant_type refresh_token is not enabled on this server")
		}
	case GrantTokenExchange:
		if s.exchanger == nil {
			return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "token exchange is not enabled on this server")
		}
	case GrantAuthorizationCode:
		if s.authorizer == nil {
			return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "the authorization code flow is not enabled on this server (set tokens.issuer)")
		}
	case "password", "implicit":
		return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "grant_type "+req.GrantType+" is not supported (OAuth 2.1 removed it; use the authorization code flow with PKCE)")
	default:
		return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "grant_type "+req.GrantType+" is not supported")
	}
	cl, err := s.Authenticate(ctx, req.ClientCredentials)
	if err != nil {
		return TokenResponse{}, err
	}
	if cl.Public && req.GrantType != GrantAuthorizationCode && req.GrantType != GrantRefreshToken {
		return TokenResponse{}, oauthErr(OAuthUnauthorizedClient, "a public client may use only authorization_code and refresh_token")
	}
	switch req.GrantType {
	case GrantAuthorizationCode:
		if !slices.Contains(cl.Grants, GrantAuthorizationCode) {
			return TokenResponse{}, oauthErr(OAuthUnauthorizedClient, "this client may not use grant_type authorization_code")
		}
		return s.authorizer.Redeem(ctx, cl, CodeRequest{Code: req.Code, RedirectURI: req.RedirectURI, CodeVerifier: req.CodeVerifier}, s.log)
	case GrantRefreshToken:
		if req.RefreshToken == "" {
			return TokenResponse{}, oauthErr(OAuthInvalidRequest, "refresh_token is required")
		}
		at, next, err := s.refresher.Refresh(ctx, cl, req.RefreshToken, req.Scope)
		if err != nil {
			return TokenResponse{}, err
		}
		return s.response(cl, at, next, ""), nil
	case GrantTokenExchange:
		if req.ActorToken != "" {
			return TokenResponse{}, oauthErr(OAuthInvalidRequest, "actor_token is not supported")
		}
		g, err := s.exchanger.Resolve(ctx, cl, ExchangeRequest{
			SubjectToken: req.SubjectToken, SubjectTokenType: req.SubjectTokenType,
			RequestedTokenType: req.RequestedTokenType, Scope: req.Scope,
			Audience: req.Audience, Resource: req.Resource,
		})
		if err != nil {
			return TokenResponse{}, err
		}
		if s.refresher != nil && slices.Contains(cl.Grants, GrantRefreshToken) {
			at, rt, err := s.refresher.Start(ctx, cl.ID, g.Subject, g.Scopes, g.Claims)
			if err != nil {
				return TokenResponse{}, err
			}
			return s.response(cl, at, rt, TokenTypeAccessToken), nil
		}
		at, err := s.issuer.Issue(cl.ID, g.Subject, g.Scopes, g.Claims)
		if err != nil {
			return TokenResponse{}, err
		}
		return s.response(cl, at, "", TokenTypeAccessToken), nil
	}
	scopes := strings.Fields(req.Scope)
	if err := s.clients.Allowed(cl, req.GrantType, scopes); err != nil {
		switch {
		case errors.Is(err, ErrUnauthorizedClient):
			return TokenResponse{}, oauthErr(OAuthUnauthorizedClient, "this client may not use grant_type "+req.GrantType)
		case errors.Is(err, ErrInvalidScope):
			return TokenResponse{}, oauthErr(OAuthInvalidScope, err.Error())
		}
		return TokenResponse{}, err
	}
	if len(scopes) == 0 {
		scopes = cl.Scopes
	}
	at, err := s.issuer.Issue(cl.ID, cl.ID, scopes, nil)
	if err != nil {
		return TokenResponse{}, err
	}
	return s.response(cl, at, "", ""), nil
}

func (s *TokenService) response(cl Client, at AccessToken, refresh, issuedType string) TokenResponse {
	return TokenResponse{
		ClientID:        cl.ID,
		AccessToken:     at.Token,
		IssuedTokenType: issuedType,
		TokenType:       "Bearer",
		ExpiresIn:       int64(at.ExpiresAt.Sub(at.IssuedAt).Seconds()),
		Scope:           strings.Join(at.Scopes, " "),
		RefreshToken:    refresh,
		JTI:             at.JTI,
	}
}

// Revoke authenticates the client and revokes one of its tokens (RFC 7009):
// nil for unknown tokens too. Without revocation enabled it is
// unsupported_token_type.
func (s *TokenService) Revoke(ctx context.Context, cc ClientCredentials, token, hint string) error {
	if s.revoker == nil {
		return oauthErr("unsupported_token_type", "revocation is not enabled on this server")
	}
	cl, err := s.Authenticate(ctx, cc)
	if err != nil {
		return err
	}
	return s.revoker.Revoke(ctx, cl, token, hint)
}

// RevokeHeld revokes an access token of Verdict's on behalf of its holder
// (Revoker.RevokeHeld); without revocation enabled it does nothing.
func (s *TokenService) RevokeHeld(ctx context.Context, token string) error {
	if s.revoker == nil {
		return nil
	}
	return s.revoker.RevokeHeld(ctx, token)
}

// Introspect authenticates the caller (any client) and describes a token
// (RFC 7662): {"active": false} for anything not active.
func (s *TokenService) Introspect(ctx context.Context, cc ClientCredentials, token string) (IntrospectResponse, error) {
	if s.introspector == nil {
		return IntrospectResponse{}, oauthErr(OAuthInvalidRequest, "introspection is not enabled on this server")
	}
	cl, err := s.Authenticate(ctx, cc)
	if err != nil {
		return IntrospectResponse{}, err
	}
	if cl.Public {
		return IntrospectResponse{}, oauthErr(OAuthInvalidClient, "a public client may not introspect tokens")
	}
	if token == "" {
		return IntrospectResponse{}, oauthErr(OAuthInvalidRequest, "token is required")
	}
	return s.introspector.Introspect(ctx, token), nil
}
