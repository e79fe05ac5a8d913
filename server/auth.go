package server

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

// Scopes the routes require (authn owns the list).
const (
	ScopeDecide       = authn.ScopeDecide
	ScopeBundlesWrite = authn.ScopeBundlesWrite
	ScopeBundlesRead  = authn.ScopeBundlesRead
	ScopeAdmin        = authn.ScopeAdmin
	ScopeSCIM         = authn.ScopeSCIM
)

// Error codes of caller authentication.
const (
	CodeUnauthorized       = "unauthorized"
	CodeForbidden          = "insufficient_scope"
	CodeUnavailable        = pdp.CodeUnavailable
	CodeInvalidSubjectTokn = pdp.CodeInvalidSubjectToken
)

// Verifier is what the server needs to check bearer tokens.
type Verifier interface {
	Verify(ctx context.Context, token string) (authn.Claims, error)
}

// WithAuth makes the decision routes require a Bearer token with their
// scope, verified by v; v also verifies a decide request's subject_token.
// open, when true, lets decision routes through without a token (serve
// --dev on a loopback address); subject tokens are still verified.
func WithAuth(v Verifier, open bool) Option {
	return func(s *Server) {
		s.verifier = v
		s.authOpen = open
	}
}

const callerClaims = "verdict.caller"

// requireAdmin guards the admin routes: a Bearer token with verdict:admin,
// always. Unlike the decision routes, --dev never opens them.
func (s *Server) requireAdmin() fiber.Handler {
	return func(c *fiber.Ctx) error { return s.checkToken(c, ScopeAdmin) }
}

// requireBundles guards the bundle routes: a Bearer token with one of
// scopes, always. Like the admin routes and unlike the decision routes,
// --dev never opens them: a push changes every decision.
func (s *Server) requireBundles(scopes ...string) fiber.Handler {
	return func(c *fiber.Ctx) error { return s.checkToken(c, scopes...) }
}

// requireScope answers 401 without a valid Bearer token and 403 without
// scope, as RFC 6750 says, and 503 when the token cannot be checked now
// (never letting it through). With authOpen the route needs no token.
func (s *Server) requireScope(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.authOpen {
			return c.Next()
		}
		return s.checkToken(c, scope)
	}
}

// checkToken lets the request through only with a valid Bearer token that
// has one of scopes; a refusal is counted in
// verdict_caller_auth_failures_total.
func (s *Server) checkToken(c *fiber.Ctx, scopes ...string) error {
	if err := s.authenticate(c, scopes); err != nil {
		s.metrics.callerAuthFailed(err)
		return err
	}
	return c.Next()
}

// APIKeys is what the server needs of the API keys: the caller's claims
// for a key (apikeys.Service).
type APIKeys interface {
	Verify(ctx context.Context, key string) (authn.Claims, error)
}

// WithAPIKeys lets callers present an API key (Authorization: ApiKey
// <key>, or X-API-Key: <key>) wherever a Bearer token is taken; the key's
// scopes are checked like a token's.
func WithAPIKeys(k APIKeys) Option {
	return func(s *Server) { s.apikeys = k }
}

// challenge is the WWW-Authenticate value of a refusal: Bearer, and ApiKey
// when keys are taken.
func (s *Server) challenge(extra string) string {
	v := `Bearer realm="verdict"` + extra
	if s.apikeys != nil {
		v += `, ApiKey realm="verdict"`
	}
	return v
}

// errTwoCredentials refuses a request with an API key beside another
// credential (one credential a request).
var errTwoCredentials = newError(fiber.StatusBadRequest, CodeBadRequest, "send one credential: an Authorization header or X-API-Key, not both")

// apiKeyOf is the API key a request presents, given its Authorization and
// X-API-Key values: Authorization: ApiKey <key>, Bearer <key> (a vk_ key
// is never a JWT, and clients that can send only a static bearer secret,
// such as Entra ID's SCIM "secret token", can present one) or X-API-Key.
// ok is false when it presents none; an X-API-Key beside an Authorization
// header is errTwoCredentials. The caller routes and the upload gate both
// read credentials through it.
func apiKeyOf(auth, xkey string) (key string, ok bool, err error) {
	xkey = strings.TrimSpace(xkey)
	scheme, rest, _ := strings.Cut(auth, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case xkey != "" && auth != "":
		return "", false, errTwoCredentials
	case xkey != "":
		return xkey, true, nil
	case strings.EqualFold(scheme, "ApiKey") || (strings.EqualFold(scheme, "Bearer") && apikeys.Looks(rest)):
		return rest, true, nil
	}
	return "", false, nil
}

// verifyAPIKey verifies a key a caller presents: 503 when it cannot be
// checked now, 401 when it is not valid (never saying why; the log has
// the key's id, never its secret). source is the caller's address, for
// the audit log.
func (s *Server) verifyAPIKey(ctx context.Context, key, source string) (authn.Claims, error) {
	if s.apikeys == nil {
		return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "this server takes no API keys; send a Bearer token").
			with(fiber.HeaderWWWAuthenticate, s.challenge(""))
	}
	claims, err := s.apikeys.Verify(ctx, key)
	switch {
	case errors.Is(err, authn.ErrUnavailable):
		s.log.Warn("API key could not be checked", "request_id", oauth.RequestID(ctx), "error", err)
		return nil, newError(fiber.StatusServiceUnavailable, CodeUnavailable, "the API key cannot be checked now; retry").
			with(fiber.HeaderRetryAfter, "1")
	case err != nil:
		id, _ := apikeys.Parse(key)
		s.log.Info("API key rejected", "audit", true, "request_id", oauth.RequestID(ctx), "apikey_id", id, "source", source, "error", err)
		return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "invalid API key").
			with(fiber.HeaderWWWAuthenticate, s.challenge(`, error="invalid_token"`))
	}
	return claims, nil
}

// authenticate keeps the caller's claims if it has a valid Bearer token
// (or API key) with one of scopes, and otherwise returns the refusal.
func (s *Server) authenticate(c *fiber.Ctx, scopes []string) error {
	claims, err := s.caller(c.UserContext(), c.Get(fiber.HeaderAuthorization), c.Get("X-API-Key"), s.clientIP(c), scopes)
	if err != nil {
		return err
	}
	c.Locals(callerClaims, claims)
	return nil
}

// caller returns the claims of the credential a caller presents
// (authorization: the Authorization header's value; apiKey: X-API-Key's)
// if it is valid and has one of scopes, else the refusal (an *apiError
// carrying its WWW-Authenticate or Retry-After header). source is the
// caller's address, for the log. Every transport authenticates callers
// here.
func (s *Server) caller(ctx context.Context, authorization, apiKey, source string, scopes []string) (authn.Claims, error) {
	key, isKey, err := apiKeyOf(authorization, apiKey)
	if err != nil {
		return nil, err
	}
	var claims authn.Claims
	if isKey {
		if claims, err = s.verifyAPIKey(ctx, key, source); err != nil {
			return nil, err
		}
	} else {
		if s.verifier == nil {
			// No verifier configured: nothing can be authenticated, so
			// nothing gets through.
			return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "this server has no token verifier; no request can be authenticated").
				with(fiber.HeaderWWWAuthenticate, s.challenge(""))
		}
		tok, ok := bearer(authorization)
		if !ok {
			return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "a Bearer token is required").
				with(fiber.HeaderWWWAuthenticate, s.challenge(""))
		}
		if claims, err = s.verifyBearer(ctx, tok, "caller"); err != nil {
			return nil, err
		}
	}
	granted := claims.Scopes()
	if !slices.ContainsFunc(scopes, func(sc string) bool { return authn.HasScope(granted, sc) }) {
		want := strings.Join(scopes, " ")
		return nil, newError(fiber.StatusForbidden, CodeForbidden, "the token lacks scope "+strings.Join(scopes, " or ")).
			with(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="insufficient_scope", scope="`+want+`"`)
	}
	return claims, nil
}

// verifyBearer verifies tok (whose: "caller" or "end-user", for the log):
// a token that cannot be checked now is a 503 with Retry-After, never a
// pass; an invalid one a 401 with WWW-Authenticate error="invalid_token".
func (s *Server) verifyBearer(ctx context.Context, tok, whose string) (authn.Claims, error) {
	if s.verifier == nil {
		return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "this server has no token verifier; a token cannot be accepted").
			with(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="invalid_token"`)
	}
	claims, err := s.verifier.Verify(ctx, tok)
	switch {
	case errors.Is(err, authn.ErrUnavailable):
		s.log.Warn(whose+" token could not be checked", "request_id", oauth.RequestID(ctx), "error", err)
		return nil, newError(fiber.StatusServiceUnavailable, CodeUnavailable, "the token cannot be checked now; retry").
			with(fiber.HeaderRetryAfter, "1")
	case err != nil:
		s.log.Info(whose+" token rejected", "request_id", oauth.RequestID(ctx), "error", err)
		return nil, newError(fiber.StatusUnauthorized, CodeUnauthorized, "invalid token: "+reason(err)).
			with(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="invalid_token"`)
	}
	return claims, nil
}

// reason is the verifier's short, non-secret reason for a rejection.
func reason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, authn.ErrInvalidToken.Error()+": "); i >= 0 {
		return msg[i+len(authn.ErrInvalidToken.Error())+2:]
	}
	return msg
}
