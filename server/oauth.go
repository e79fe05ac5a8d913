package server

import (
	"context"
	"encoding/base64"
	"errors"
	"mime"
	"net/url"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/authn"
)

// Tokens is what the server needs of the token service.
type Tokens interface {
	Token(ctx context.Context, req oauth.TokenRequest) (oauth.TokenResponse, error)
	Revoke(ctx context.Context, cc oauth.ClientCredentials, token, hint string) error
	// RevokeHeld revokes an access token on behalf of whoever holds it
	// (the console's sign-out).
	RevokeHeld(ctx context.Context, token string) error
	Introspect(ctx context.Context, cc oauth.ClientCredentials, token string) (oauth.IntrospectResponse, error)
	GrantTypes() []string
	AuthMethods() []string
}

// WithTokens serves the OAuth 2.0 token endpoint and the authorization
// server metadata for issuer (Verdict's own URL, the iss of its tokens).
// Without it those routes answer 404.
func WithTokens(t Tokens, issuer string) Option {
	return func(s *Server) {
		s.tokens = t
		s.issuer = strings.TrimSuffix(issuer, "/")
	}
}

// WithLimitStorage keeps the token routes' failure counters in st instead
// of process memory: with a shared store (Redis) every replica counts the
// same failures. st's Reset is never called.
func WithLimitStorage(st fiber.Storage) Option {
	return func(s *Server) { s.limits = st }
}

// Keys of the token routes' failure limiters (metric labels).
const (
	throttleSource       = "source"
	throttleSourceClient = "source_client"
)

// tokenLimits count failed token requests per source address and per
// (source address, client id) (fiber's limiter, counting only responses >=
// 400) and answer 429 with Retry-After once either passes the limit. The
// source is clientIP (server.trusted_proxies). Nothing counts per client
// id alone: then anyone who knows a client id could lock that client out
// from everywhere with wrong secrets, and client secrets have 256 bits,
// so guessing gains nothing from many sources. A source that has not
// failed is never refused. The counters live in process memory
// (limitStore), or in the storage WithLimitStorage gives (Redis, so that
// several replicas share them).
func (s *Server) tokenLimits() []fiber.Handler {
	reached := func(key string) fiber.Handler {
		return func(c *fiber.Ctx) error {
			s.metrics.throttle(key)
			s.log.Warn("token requests throttled after repeated failures", "request_id", requestID(c),
				"source", s.clientIP(c), "client_id", limitClientID(c), "limit", key)
			c.Set(fiber.HeaderCacheControl, "no-store")
			c.Set("Pragma", "no-cache")
			return s.oauthFail(c, fiber.StatusTooManyRequests, oauthTooManyRequests, "too many failed token requests; retry after the time in Retry-After")
		}
	}
	var st fiber.Storage = newLimitStore()
	if s.limits != nil {
		st = s.limits
	}
	// A client library's retry of refused credentials the other way (see
	// authprobe.go) passes both limits uncounted; every other request is
	// counted, and a refused one remembered for such a retry.
	probes := newAuthProbes()
	retryKey := "verdict.auth-retry"
	probe := func(c *fiber.Ctx) error {
		retry := probes.retry(c, s.clientIP(c))
		c.Locals(retryKey, retry)
		err := c.Next()
		if !retry && (c.Response().StatusCode() == fiber.StatusUnauthorized || c.Response().StatusCode() == fiber.StatusBadRequest) {
			probes.refused(c, s.clientIP(c))
		}
		return err
	}
	isRetry := func(c *fiber.Ctx) bool { r, _ := c.Locals(retryKey).(bool); return r }
	byIP := limiter.New(limiter.Config{
		Storage: st,
		Max:     s.cfg.TokenFailures.Max, Expiration: s.cfg.TokenFailures.Window,
		SkipSuccessfulRequests: true, LimitReached: reached(throttleSource),
		Next:         isRetry,
		KeyGenerator: func(c *fiber.Ctx) string { return "ip:" + s.clientIP(c) },
	})
	byClient := limiter.New(limiter.Config{
		Storage: st,
		Max:     s.cfg.TokenFailures.Max, Expiration: s.cfg.TokenFailures.Window,
		SkipSuccessfulRequests: true, LimitReached: reached(throttleSourceClient),
		// A request that names no client (private_key_jwt may leave
		// client_id out) is counted by source only.
		Next:         func(c *fiber.Ctx) bool { return isRetry(c) || limitClientID(c) == "" },
		KeyGenerator: func(c *fiber.Ctx) string { return "client:" + s.clientIP(c) + "|" + limitClientID(c) },
	})
	return []fiber.Handler{probe, byIP, byClient}
}

// limitClientID is the client id a token request names (Basic user, else
// the client_id form field), copied out of Fiber's buffers; "" for none.
func limitClientID(c *fiber.Ctx) string {
	if id, _, ok := parseBasic(c.Get(fiber.HeaderAuthorization)); ok {
		return id
	}
	return utils.CopyString(c.FormValue("client_id"))
}

// oauthError is the RFC 6749 §5.2 error body. The token endpoint answers in
// this shape, not in Verdict's {"error":{code,message}}, because OAuth
// clients parse it.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// oauthFail answers an OAuth error; on /oauth2/token it is counted in
// verdict_token_failures_total.
func (s *Server) oauthFail(c *fiber.Ctx, status int, code, desc string) error {
	if c.Route().Path == tokenPath {
		s.metrics.tokenFailed(code)
	}
	return c.Status(status).JSON(oauthError{Error: code, Description: desc})
}

// tokenPath is the token endpoint's route.
const tokenPath = "/oauth2/token"

// oauthForm reads a form-encoded OAuth request and its client credentials
// (client_secret_basic, client_secret_post or private_key_jwt). On a
// protocol error it has written the answer and returns ok false.
func (s *Server) oauthForm(c *fiber.Ctx) (form url.Values, cc oauth.ClientCredentials, basic bool, ok bool, err error) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Pragma", "no-cache")
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if mt != "application/x-www-form-urlencoded" {
		return nil, cc, false, false, s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "Content-Type must be application/x-www-form-urlencoded")
	}
	form, perr := url.ParseQuery(string(c.Body()))
	if perr != nil {
		return nil, cc, false, false, s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, cc, false, false, s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "parameter "+k+" is repeated")
		}
	}
	cc = oauth.ClientCredentials{
		ClientID:            form.Get("client_id"),
		ClientSecret:        form.Get("client_secret"),
		ClientAssertionType: form.Get("client_assertion_type"),
		ClientAssertion:     form.Get("client_assertion"),
	}
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		id, secret, good := parseBasic(h)
		if !good {
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="verdict"`)
			return nil, cc, true, false, s.oauthFail(c, fiber.StatusUnauthorized, oauth.OAuthInvalidClient, "malformed Basic credentials")
		}
		if cc.ClientSecret != "" || cc.ClientAssertion != "" {
			return nil, cc, true, false, s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "use one client authentication method, not Basic and another both")
		}
		if cc.ClientID != "" && cc.ClientID != id {
			return nil, cc, true, false, s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "client_id differs from the Basic credentials")
		}
		cc.ClientID, cc.ClientSecret, basic = id, secret, true
	}
	return form, cc, basic, true, nil
}

// oauthOutcome answers err the OAuth way; nil err means the caller answers.
func (s *Server) oauthOutcome(c *fiber.Ctx, err error, basic bool, cc oauth.ClientCredentials, what string) error {
	var oe *oauth.OAuthError
	if !errors.As(err, &oe) {
		if errors.Is(err, authn.ErrUnavailable) || storeUnavailable(err) {
			// A store or an issuer's keys cannot be reached now: nothing
			// was decided, and the client may retry.
			s.log.Warn(what+" could not be answered now", "request_id", requestID(c), "client_id", cc.ClientID, "error", err)
			c.Set(fiber.HeaderRetryAfter, "1")
			return s.oauthFail(c, fiber.StatusServiceUnavailable, oauthUnavailable, "try again shortly")
		}
		return err
	}
	status := fiber.StatusBadRequest
	if oe.Code == oauth.OAuthInvalidClient {
		status = fiber.StatusUnauthorized
		if basic {
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="verdict"`)
		}
	}
	s.log.Info(what+" refused", "audit", true, "request_id", requestID(c), "client_id", cc.ClientID, "error", oe.Code)
	return s.oauthFail(c, status, oe.Code, oe.Description)
}

// token is POST /oauth2/token (RFC 6749 §3.2; RFC 8693 for token exchange).
func (s *Server) token(c *fiber.Ctx) error {
	if s.tokens == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server issues no tokens")
	}
	form, cc, basic, ok, err := s.oauthForm(c)
	if !ok {
		return err
	}
	req := oauth.TokenRequest{
		ClientCredentials:  cc,
		GrantType:          form.Get("grant_type"),
		Scope:              form.Get("scope"),
		RefreshToken:       form.Get("refresh_token"),
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   form.Get("subject_token_type"),
		RequestedTokenType: form.Get("requested_token_type"),
		Audience:           form.Get("audience"),
		Resource:           form.Get("resource"),
		ActorToken:         form.Get("actor_token"),
		Code:               form.Get("code"),
		RedirectURI:        form.Get("redirect_uri"),
		CodeVerifier:       form.Get("code_verifier"),
	}
	ctx, span := s.startTokenSpan(c.UserContext(), req.GrantType)
	resp, err := s.tokens.Token(ctx, req)
	endSpan(span, err)
	if err != nil {
		return s.oauthOutcome(c, err, basic, cc, "token request")
	}
	s.log.Info("token issued", "audit", true, "request_id", requestID(c), "client_id", resp.ClientID,
		"grant_type", req.GrantType, "scope", resp.Scope, "jti", resp.JTI, "refresh", resp.RefreshToken != "")
	s.metrics.tokenIssued(req.GrantType)
	return c.JSON(resp)
}

// revoke is POST /oauth2/revoke (RFC 7009): 200 for unknown tokens too.
func (s *Server) revoke(c *fiber.Ctx) error {
	if s.tokens == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server issues no tokens")
	}
	form, cc, basic, ok, err := s.oauthForm(c)
	if !ok {
		return err
	}
	if form.Get("token") == "" {
		return s.oauthFail(c, fiber.StatusBadRequest, oauth.OAuthInvalidRequest, "token is required")
	}
	if err := s.tokens.Revoke(c.UserContext(), cc, form.Get("token"), form.Get("token_type_hint")); err != nil {
		return s.oauthOutcome(c, err, basic, cc, "revocation")
	}
	return c.SendStatus(fiber.StatusOK)
}

// introspect is POST /oauth2/introspect (RFC 7662), for authenticated
// clients only: {"active": false} and nothing else for any token that is
// not active.
func (s *Server) introspect(c *fiber.Ctx) error {
	if s.tokens == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server issues no tokens")
	}
	form, cc, basic, ok, err := s.oauthForm(c)
	if !ok {
		return err
	}
	resp, err := s.tokens.Introspect(c.UserContext(), cc, form.Get("token"))
	if err != nil {
		return s.oauthOutcome(c, err, basic, cc, "introspection")
	}
	return c.JSON(resp)
}

// parseBasic reads RFC 6749 §2.3.1 Basic credentials: both parts are
// form-urlencoded before base64.
func parseBasic(h string) (id, secret string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if u, err = url.QueryUnescape(u); err != nil {
		return "", "", false
	}
	if p, err = url.QueryUnescape(p); err != nil {
		return "", "", false
	}
	return u, p, u != ""
}

// asMetadata is GET /.well-known/oauth-authorization-server (RFC 8414), also
// served at /.well-known/openid-configuration.
func (s *Server) asMetadata(c *fiber.Ctx) error {
	if s.tokens == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server issues no tokens")
	}
	methods := s.tokens.AuthMethods()
	md := fiber.Map{
		"issuer":                                s.issuer,
		"token_endpoint":                        s.issuer + "/oauth2/token",
		"jwks_uri":                              s.issuer + "/.well-known/jwks.json",
		"grant_types_supported":                 s.tokens.GrantTypes(),
		"token_endpoint_auth_methods_supported": methods,
		"revocation_endpoint":                   s.issuer + "/oauth2/revoke",
		"revocation_endpoint_auth_methods_supported":    methods,
		"introspection_endpoint":                        s.issuer + "/oauth2/introspect",
		"introspection_endpoint_auth_methods_supported": slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == "none" }),
		"response_types_supported":                      []string{},
		"scopes_supported":                              authn.KnownScopes(),
	}
	s.addOIDCMetadata(md, s.signingAlgs())
	if slices.Contains(methods, "private_key_jwt") {
		// RFC 8414 §2: required when private_key_jwt is offered.
		algs := authn.VerifiableAlgs()
		md["token_endpoint_auth_signing_alg_values_supported"] = algs
		md["revocation_endpoint_auth_signing_alg_values_supported"] = algs
		md["introspection_endpoint_auth_signing_alg_values_supported"] = algs
	}
	return c.JSON(md)
}
