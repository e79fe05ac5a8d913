package authn

import (
	"context"
	"errors"
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
}

// Error returns "code: description".
func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

func oauthErr(code, desc string) *OAuthError { return &OAuthError{Code: code, Description: desc} }

// TokenRequest is a token request with its client credentials, as the HTTP
// layer read them (client_secret_basic or client_secret_post).
type TokenRequest struct {
	GrantType string
	// Scope is the space-separated scope parameter; empty asks for every
	// scope the client has.
	Scope        string
	ClientID     string
	ClientSecret string
}

// TokenResponse is the RFC 6749 §5.1 answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// TokenService answers token requests. It is safe for concurrent use.
type TokenService struct {
	clients *Clients
	issuer  *TokenIssuer
	now     func() time.Time
}

// NewTokenService returns a token service over the client registry and the
// access-token issuer.
func NewTokenService(clients *Clients, issuer *TokenIssuer, now func() time.Time) *TokenService {
	if now == nil {
		now = time.Now
	}
	return &TokenService{clients: clients, issuer: issuer, now: now}
}

// GrantTypes lists the grant types Token accepts today.
func (s *TokenService) GrantTypes() []string { return []string{GrantClientCredentials} }

// Token authenticates the client and issues an access token. Protocol
// failures come back as *OAuthError (invalid_client for any authentication
// failure, without saying which part was wrong); anything else (a store or
// signing failure) as a plain error, which the HTTP layer turns into a 5xx.
func (s *TokenService) Token(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	switch req.GrantType {
	case "":
		return TokenResponse{}, oauthErr(OAuthInvalidRequest, "grant_type is required")
	case GrantClientCredentials:
	case GrantRefreshToken, GrantTokenExchange:
		return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "grant_type "+req.GrantType+" is not supported by this server yet")
	default:
		return TokenResponse{}, oauthErr(OAuthUnsupportedGrantType, "grant_type "+req.GrantType+" is not supported")
	}
	if req.ClientID == "" || req.ClientSecret == "" {
		return TokenResponse{}, oauthErr(OAuthInvalidClient, "client authentication is required (client_secret_basic or client_secret_post)")
	}
	cl, err := s.clients.Authenticate(ctx, req.ClientID, req.ClientSecret)
	if errors.Is(err, ErrInvalidClient) {
		return TokenResponse{}, oauthErr(OAuthInvalidClient, "client authentication failed")
	}
	if err != nil {
		return TokenResponse{}, err
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
	return TokenResponse{
		AccessToken: at.Token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(at.ExpiresAt.Sub(at.IssuedAt).Seconds()),
		Scope:       strings.Join(scopes, " "),
	}, nil
}
