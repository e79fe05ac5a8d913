package server

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"github.com/verdictpdp/verdict/authn"
)

// Error codes of requests refused from their headers alone.
const (
	// CodeBadFraming: the request's length is ambiguous (RFC 9112 §6.1,
	// §6.3); the connection is closed after the answer.
	CodeBadFraming = "bad_framing"
	// CodeDuplicateHeader: a header that must appear once (Host,
	// Authorization) appears more than once.
	CodeDuplicateHeader = "duplicate_header"
)

// refusalHeader marks, between headerReceived and guard, a request that
// is refused from its headers, with why ("kind" or "kind:detail").
// headerReceived deletes any copy a client sent before it decides, so only
// the server sets it.
const refusalHeader = "X-Verdict-Internal-Refusal"

// Kinds of refusal.
const (
	refuseFraming   = "framing"
	refuseDuplicate = "duplicate"
	refuseUpload    = "upload"
)

// refusedBodyLimit is the body limit of a refused request, whose declared
// length headerReceived sets to 0: a second guard.
const refusedBodyLimit = 1

// headerReceived runs when a request's headers are read and before its body
// is: it decides the body limit and whether the request is refused. A
// request whose framing is ambiguous or that repeats Host or Authorization
// is refused. A bundle upload gets the archive limit only when its caller
// is authorised to push; anyone else's upload is refused before a byte of
// the body is read. Everything else gets Config.BodyLimit.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(refusalHeader)
	lim := s.cfg.BodyLimit
	why := ""
	switch problem := framingProblem(h); {
	case problem != "":
		why = refuseFraming + ":" + problem
	case len(h.PeekAll(fiber.HeaderAuthorization)) > 1:
		why = refuseDuplicate + ":" + fiber.HeaderAuthorization
	case s.bundleAdmin != nil && h.IsPost() && isUploadPath(h.RequestURI()):
		if !s.uploadAllowed(h) {
			why = refuseUpload
		}
		lim = s.archiveLimit()
	}
	if why != "" {
		// No body is read at all (and no 100 Continue asked for): the
		// request goes to guard as if it had none, and guard closes the
		// connection with the answer, so the unread bytes are never
		// taken for another request.
		h.Set(refusalHeader, why)
		h.SetContentLength(0)
		h.Del(fiber.HeaderExpect)
		return fasthttp.RequestConfig{MaxRequestBodySize: refusedBodyLimit}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: lim}
}

func isUploadPath(uri []byte) bool {
	p, _, _ := strings.Cut(string(uri), "?")
	p = strings.TrimSuffix(p, "/")
	return slices.ContainsFunc(bundleUploadPaths, func(up string) bool { return strings.EqualFold(p, up) })
}

// uploadAllowed reports whether the upload's caller may push: a valid
// Bearer token or API key with verdict:bundles:write, or an open preview (serve --dev
// on loopback opens previews as it opens decisions; never pushes); on the
// console's push page, the console's own sign-in (consoleUploadAllowed).
func (s *Server) uploadAllowed(h *fasthttp.RequestHeader) bool {
	p, _, _ := strings.Cut(string(h.RequestURI()), "?")
	p = strings.TrimSuffix(p, "/")
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if strings.EqualFold(p, consolePushPath) {
		return s.consoleUploadAllowed(ctx, h) // --dev opens no console
	}
	if s.authOpen && !strings.EqualFold(p, "/v1/bundles") {
		return true
	}
	auth := string(h.Peek(fiber.HeaderAuthorization))
	key, isKey, err := apiKeyOf(auth, string(h.Peek("X-API-Key")))
	if err != nil {
		return false
	}
	var claims authn.Claims
	switch tok, ok := bearer(auth); {
	case isKey && s.apikeys != nil:
		claims, err = s.apikeys.Verify(ctx, key)
	case !isKey && ok && s.verifier != nil:
		claims, err = s.verifier.Verify(ctx, tok)
	default:
		return false
	}
	return err == nil && authn.HasScope(claims.Scopes(), ScopeBundlesWrite)
}

// framingProblem says what makes the request's framing ambiguous, or ""
// (RFC 9112 §6.1, §6.3, §5.2): Content-Length together with
// Transfer-Encoding, Content-Length more than once (even with equal
// values), Transfer-Encoding more than once or other than exactly
// "chunked" (anything else is how an obfuscated header slips past one
// parser and not another), Transfer-Encoding in HTTP/1.0, obsolete line
// folding, or more than one Host. Two parsers that read such a request
// differently (a proxy and Verdict) disagree where it ends, and the rest is
// a smuggled request. It reads the raw header lines, because fasthttp's
// parsed view has already resolved the conflict its own way.
func framingProblem(h *fasthttp.RequestHeader) string {
	var cl, te, host int
	var teValue []byte
	raw := h.RawHeaders()
	for len(raw) > 0 {
		line, rest, _ := bytes.Cut(raw, []byte{'\n'})
		raw = rest
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "obsolete line folding in a header"
		}
		name, value, _ := bytes.Cut(line, []byte{':'})
		switch {
		case bytes.EqualFold(name, []byte(fiber.HeaderContentLength)):
			cl++
		case bytes.EqualFold(name, []byte(fiber.HeaderTransferEncoding)):
			te++
			teValue = bytes.Trim(value, " \t")
		case bytes.EqualFold(name, []byte(fiber.HeaderHost)):
			host++
		}
	}
	switch {
	case cl > 0 && te > 0:
		return "both Content-Length and Transfer-Encoding"
	case cl > 1:
		return "more than one Content-Length"
	case te > 1:
		return "more than one Transfer-Encoding"
	case te == 1 && !bytes.EqualFold(teValue, []byte("chunked")):
		return "Transfer-Encoding other than chunked"
	case te == 1 && !h.IsHTTP11():
		return "Transfer-Encoding in an HTTP/1.0 request"
	case host > 1:
		return "more than one Host"
	}
	return ""
}

// refusal is the error of a request headerReceived refused, or nil. The
// connection is closed after the answer.
func (s *Server) refusal(c *fiber.Ctx) error {
	mark := c.Request().Header.Peek(refusalHeader)
	if len(mark) == 0 {
		return nil
	}
	c.Context().SetConnectionClose()
	kind, detail, _ := strings.Cut(string(mark), ":")
	s.metrics.refused(kind)
	switch kind {
	case refuseFraming:
		s.log.Warn("request with ambiguous framing refused", "request_id", requestID(c), "peer", c.Context().RemoteIP().String(), "problem", detail)
		return newError(fiber.StatusBadRequest, CodeBadFraming, "the request's length is ambiguous: "+detail+"; the connection is closed")
	case refuseDuplicate:
		return newError(fiber.StatusBadRequest, CodeDuplicateHeader, "more than one "+detail+" header")
	default: // refuseUpload
		if err := s.authenticate(c, []string{ScopeBundlesWrite}); err != nil {
			s.metrics.callerAuthFailed(err)
			return err
		}
		// The token expired or was revoked between the two checks.
		return newError(fiber.StatusUnauthorized, CodeUnauthorized, "the token is no longer valid")
	}
}

// guard runs first on every request: it answers a request refused from its
// headers, and sets the headers every response carries.
// X-Content-Type-Options: nosniff keeps browsers from reading a JSON
// answer as something else; Cache-Control: no-store keeps decisions,
// tokens and secrets out of shared caches (a handler whose answer may be
// cached, the JWKS, sets its own).
func (s *Server) guard(c *fiber.Ctx) error {
	setSafetyHeaders(c, s.hsts)
	if err := s.refusal(c); err != nil {
		return err
	}
	return s.shed(c)
}

// The Content-Security-Policy of every answer: nothing in it may load,
// run or be framed. Verdict serves JSON; should a browser ever render an
// answer (an error page, a future HTML one), it stays inert.
const contentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'"

// The safety headers as bytes, set without fasthttp's key normalisation
// (they are written canonical): they are on every answer's path.
var (
	hdrNosniff  = []byte(fiber.HeaderXContentTypeOptions)
	valNosniff  = []byte("nosniff")
	hdrReferrer = []byte(fiber.HeaderReferrerPolicy)
	valReferrer = []byte("no-referrer")
	hdrCSP      = []byte(fiber.HeaderContentSecurityPolicy)
	valCSP      = []byte(contentSecurityPolicy)
)

func setSafetyHeaders(c *fiber.Ctx, hsts string) {
	h := &c.Response().Header
	h.SetCanonical(hdrNosniff, valNosniff)
	h.SetCanonical(hdrReferrer, valReferrer)
	h.SetCanonical(hdrCSP, valCSP)
	if hsts != "" && c.Context().IsTLS() {
		c.Set(fiber.HeaderStrictTransportSecurity, hsts)
	}
	if len(c.Response().Header.Peek(fiber.HeaderCacheControl)) == 0 {
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
}

// bearer is the token of an "Authorization: Bearer <token>" value.
func bearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}
