package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/users"
)

// CodeRequest is the authorization_code grant's part of a token request.
type CodeRequest struct {
	Code         string
	RedirectURI  string
	CodeVerifier string
}

// Redeem is the authorization_code grant for an authenticated client (a
// public client by its id alone). The code is marked used before anything
// is checked, atomically, so it works once whatever happens next; a
// second redemption revokes what the first produced (the refresh family
// and its access tokens) and is invalid_grant. A code of another client,
// a redirect_uri that is not the one of the authorization request, a
// missing or wrong PKCE verifier, an expired code, a user who is gone or
// disabled, or a session that ended since, are all invalid_grant. It
// returns the access token, the ID token (scope openid) and a refresh
// token (clients with the refresh_token grant). Every redemption starts a
// refresh family (handed out or not) so that logout and erasure revoke
// the access token too.
func (a *Authorizer) Redeem(ctx context.Context, cl Client, r CodeRequest, log *slog.Logger) (TokenResponse, error) {
	if r.Code == "" {
		return TokenResponse{}, oauthErr(OAuthInvalidRequest, "code is required")
	}
	if r.RedirectURI == "" {
		return TokenResponse{}, oauthErr(OAuthInvalidRequest, "redirect_uri is required (the one of the authorization request)")
	}
	if r.CodeVerifier == "" {
		return TokenResponse{}, oauthErr(OAuthInvalidRequest, "code_verifier is required (PKCE)")
	}
	if len(r.Code) > maxParam {
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the code is invalid or expired")
	}
	token, family, err := newRefreshToken()
	if err != nil {
		return TokenResponse{}, err
	}
	code, first, err := a.codes.RedeemCode(ctx, codeHash(r.Code), family, "")
	if errors.Is(err, ErrUnknownCode) {
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the code is invalid or expired")
	}
	if err != nil {
		return TokenResponse{}, err
	}
	if !first {
		if code.Family != "" {
			if err := a.refresher.RevokeFamily(ctx, code.Family); err != nil {
				return TokenResponse{}, err
			}
		}
		if log != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "audit", slog.String("event", "authorization code reused"),
				slog.String("client_id", cl.ID), slog.String("user_id", code.UserID), slog.String("family", code.Family),
				requestIDAttr(ctx), slog.String("outcome", "tokens revoked"))
		}
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the code was already used; the tokens it produced are revoked")
	}
	switch {
	case code.ClientID != cl.ID:
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the code was issued to another client")
	case code.RedirectURI != r.RedirectURI:
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "redirect_uri differs from the authorization request's")
	case !checkVerifier(r.CodeVerifier, code.CodeChallenge):
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "code_verifier does not match the code_challenge")
	}
	u, err := a.people.Get(ctx, code.UserID)
	if errors.Is(err, users.ErrNotFound) || (err == nil && u.Status != users.StatusActive) {
		return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the user can no longer sign in")
	}
	if err != nil {
		return TokenResponse{}, err
	}
	if code.SessionID != "" {
		live, err := a.people.SessionLive(ctx, code.SessionID)
		if err != nil {
			return TokenResponse{}, err
		}
		if !live {
			return TokenResponse{}, oauthErr(OAuthInvalidGrant, "the sign-in session has ended")
		}
	}
	// Record the family first: if that fails nothing was handed out, and
	// once tokens exist, ending the session revokes them.
	err = a.people.RecordFamily(ctx, u.ID, users.UserFamily{
		Family: family, SessionID: code.SessionID, ClientID: cl.ID, ExpiresAt: a.refresher.clock().Add(a.refresher.cfg.RefreshTTL),
	})
	if err != nil {
		return TokenResponse{}, fmt.Errorf("authorize: record family: %w", err)
	}
	claims := userClaims(u, code)
	at, err := a.refresher.startFamily(ctx, token, family, cl.ID, u.ID, code.Scopes, claims)
	if err != nil {
		return TokenResponse{}, err
	}
	resp := TokenResponse{
		ClientID: cl.ID, AccessToken: at.Token, TokenType: "Bearer",
		ExpiresIn: int64(at.ExpiresAt.Sub(at.IssuedAt).Seconds()), Scope: strings.Join(at.Scopes, " "), JTI: at.JTI,
	}
	if slices.Contains(cl.Grants, GrantRefreshToken) {
		resp.RefreshToken = token
	}
	if slices.Contains(code.Scopes, ScopeOpenID) {
		id, err := a.ids.Issue(IDClaims{
			Subject: u.ID, ClientID: cl.ID, Nonce: code.Nonce, AuthTime: code.AuthTime, AMR: code.AMR,
			AccessToken: at.Token, SessionID: code.SessionID, Profile: ProfileClaims(u, code.Scopes),
		})
		if err != nil {
			return TokenResponse{}, err
		}
		resp.IDToken = id
	}
	return resp, nil
}

// userClaims are the claims a user's access token carries besides the
// standard ones, so that policies see who is asking and how they signed
// in: amr, acr, auth_time, roles, groups, and email with scope email.
func userClaims(u users.User, code AuthCode) map[string]any {
	c := map[string]any{
		"amr": nonNilStrings(code.AMR), "acr": ACR(code.AMR), "auth_time": code.AuthTime.Unix(),
		"roles": nonNilStrings(u.Roles), "groups": nonNilStrings(u.Groups),
	}
	if slices.Contains(code.Scopes, ScopeEmail) {
		c["email"] = u.Email
	}
	return c
}

// ProfileClaims are the OpenID Connect claims of the scopes granted:
// profile gives name and updated_at; email gives email and
// email_verified (false: Verdict does not verify addresses).
func ProfileClaims(u users.User, scopes []string) map[string]any {
	c := map[string]any{}
	if slices.Contains(scopes, ScopeProfile) {
		if u.Name != "" {
			c["name"] = u.Name
		}
		c["updated_at"] = u.UpdatedAt.Unix()
	}
	if slices.Contains(scopes, ScopeEmail) {
		c["email"] = u.Email
		c["email_verified"] = false
	}
	return c
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
