package server

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"

	"github.com/gofiber/fiber/v2"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/users"
)

// addOIDCMetadata adds OpenID Connect Discovery 1.0's members to the
// authorization server metadata when sign-in is enabled.
func (s *Server) addOIDCMetadata(md fiber.Map, alg []string) {
	if s.people == nil {
		return
	}
	md["authorization_endpoint"] = s.issuer + "/oauth2/authorize"
	md["userinfo_endpoint"] = s.issuer + "/oauth2/userinfo"
	md["end_session_endpoint"] = s.issuer + "/oauth2/logout"
	md["response_types_supported"] = []string{"code"}
	md["response_modes_supported"] = []string{"query"}
	md["subject_types_supported"] = []string{"public"}
	md["id_token_signing_alg_values_supported"] = alg
	md["code_challenge_methods_supported"] = []string{"S256"}
	md["prompt_values_supported"] = []string{"none", "login", "consent"}
	md["authorization_response_iss_parameter_supported"] = true
	md["claims_supported"] = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr", "acr", "azp", "sid", "name", "email", "email_verified", "updated_at"}
	md["acr_values_supported"] = []string{oauth.ACRPassword, oauth.ACRMFA}
	scopes, _ := md["scopes_supported"].([]string)
	md["scopes_supported"] = append([]string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail}, scopes...)
}

// userinfo is GET|POST /oauth2/userinfo (OpenID Connect Core §5.3): the
// claims about the signed-in user that the access token's scopes allow.
// The token must be one of Verdict's own, issued to a user with scope
// openid.
func (s *Server) userinfo(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	fail := func(code, desc string) error {
		if code == "" {
			// RFC 6750 §3.1: no error code when no token was sent.
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict"`)
			return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": "invalid_request", "error_description": desc})
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="`+code+`", error_description="`+desc+`"`)
		status := fiber.StatusUnauthorized
		if code == "insufficient_scope" {
			status = fiber.StatusForbidden
		}
		return c.Status(status).JSON(fiber.Map{"error": code, "error_description": desc})
	}
	tok, ok := bearer(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return fail("", "a Bearer access token is required")
	}
	claims, err := s.verifier.Verify(c.UserContext(), tok)
	if err != nil || claims.Issuer() != s.issuer {
		return fail("invalid_token", "the access token is not valid")
	}
	scopes := claims.Scopes()
	if !slices.Contains(scopes, oauth.ScopeOpenID) {
		return fail("insufficient_scope", "the access token lacks scope openid")
	}
	u, err := s.people.Get(c.UserContext(), claims.Subject())
	if errors.Is(err, users.ErrNotFound) {
		return fail("invalid_token", "the token's user no longer exists")
	}
	if err != nil {
		return err
	}
	out := fiber.Map{"sub": u.ID}
	for k, v := range oauth.ProfileClaims(u, scopes) {
		out[k] = v
	}
	return c.JSON(out)
}

// logout is GET|POST /oauth2/logout, OpenID Connect RP-Initiated Logout
// 1.0. With an id_token_hint Verdict issued for the browser's session,
// the session ends at once; otherwise the user confirms on a page first
// (so that another site cannot sign them out). post_logout_redirect_uri
// must be exactly one registered for the client (from client_id or the
// hint's aud), else the user stays on Verdict's "signed out" page.
func (s *Server) logout(c *fiber.Ctx) error {
	if err := s.signInEnabled(); err != nil {
		return err
	}
	param := func(k string) string {
		if c.Method() == fiber.MethodPost {
			return c.FormValue(k)
		}
		return c.Query(k)
	}
	hint, clientID := param("id_token_hint"), param("client_id")
	var hintSID string
	if hint != "" {
		aud, sid, ok := s.readIDTokenHint(hint)
		if !ok {
			return s.message(c, fiber.StatusBadRequest, "This sign-out link is not valid", "id_token_hint is not an ID token Verdict issued.")
		}
		if clientID != "" && clientID != aud {
			return s.message(c, fiber.StatusBadRequest, "This sign-out link is not valid", "client_id differs from the ID token's audience.")
		}
		clientID, hintSID = aud, sid
	}
	target := param("post_logout_redirect_uri")
	var cl oauth.Client
	if clientID != "" {
		found, err := s.authorizer.Client(c.UserContext(), clientID)
		if err != nil && !errors.Is(err, oauth.ErrUnknownClient) {
			return err
		}
		cl = found
	}
	if target != "" && !slices.Contains(cl.PostLogoutRedirectURIs, target) {
		return s.message(c, fiber.StatusBadRequest, "This sign-out link is not valid",
			"post_logout_redirect_uri is not registered for the client (it must match exactly, and the client must be named by client_id or id_token_hint).")
	}
	ses, _, ok, err := s.session(c)
	if err != nil {
		return err
	}
	confirmed := c.Method() == fiber.MethodPost && s.checkCSRF(c)
	if ok && !confirmed && (hintSID == "" || hintSID != ses.ID) {
		hidden := map[string]string{}
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
			if v := param(k); v != "" {
				hidden[k] = v
			}
		}
		if clientID != "" {
			hidden["client_id"] = clientID
		}
		name := cl.Name
		if name == "" {
			name = cl.ID
		}
		return s.render(c, fiber.StatusOK, "logout.html", pageCSP(false, origin(target)), struct {
			page
			ClientName string
			Hidden     map[string]string
		}{page: s.newPage(c, "Sign out"), ClientName: name, Hidden: hidden})
	}
	if ok {
		if err := s.people.EndSession(c.UserContext(), ses.ID, s.meta(c)); err != nil && !errors.Is(err, users.ErrNotFound) {
			return err
		}
	}
	s.clearCookie(c, cookieSession)
	if target != "" {
		loc := target
		if st := param("state"); st != "" {
			if u, err := url.Parse(target); err == nil {
				q := u.Query()
				q.Set("state", st)
				u.RawQuery = q.Encode()
				loc = u.String()
			}
		}
		return c.Redirect(loc, fiber.StatusSeeOther)
	}
	return s.message(c, fiber.StatusOK, "Signed out", "You are signed out.")
}

// readIDTokenHint checks an id_token_hint's signature against Verdict's
// own key set (an expired token is fine: it is a hint) and returns its
// aud and sid.
func (s *Server) readIDTokenHint(hint string) (aud, sid string, ok bool) {
	if s.jwks == nil || len(hint) > 8<<10 {
		return "", "", false
	}
	raw, err := s.jwks.JWKS()
	if err != nil {
		return "", "", false
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return "", "", false
	}
	payload, err := jws.Verify([]byte(hint), jws.WithKeySet(set, jws.WithRequireKid(true)))
	if err != nil {
		return "", "", false
	}
	var claims struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
		Sid string `json:"sid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Iss != s.issuer || claims.Aud == "" {
		return "", "", false
	}
	return claims.Aud, claims.Sid, true
}

// signingAlgs are the algs of the keys in Verdict's own key set (what ID
// tokens are signed with), ES256 when the set cannot be read.
func (s *Server) signingAlgs() []string {
	algs := []string{}
	if s.jwks != nil {
		if raw, err := s.jwks.JWKS(); err == nil {
			var set struct {
				Keys []struct {
					Alg string `json:"alg"`
				} `json:"keys"`
			}
			if json.Unmarshal(raw, &set) == nil {
				for _, k := range set.Keys {
					if k.Alg != "" && !slices.Contains(algs, k.Alg) {
						algs = append(algs, k.Alg)
					}
				}
			}
		}
	}
	if len(algs) == 0 {
		algs = append(algs, "ES256")
	}
	return algs
}
