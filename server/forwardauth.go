package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// Error codes of forward-auth.
const (
	CodeUntrustedProxy = "untrusted_proxy"
	CodeNoOriginal     = "no_original_request"
	CodeAccessDenied   = "access_denied"
)

// ForwardAuthPath is the route gateways call; every sub-path answers too.
const ForwardAuthPath = "/v1/forward-auth"

// The types of forward-auth's input entities.
const (
	RouteType     = "route"
	AnonymousType = "anonymous"
	UserType      = "user"
)

// ForwardAuthConfig configures /v1/forward-auth, the decision route of
// gateways that ask before they proxy (nginx auth_request, Traefik
// ForwardAuth, Caddy forward_auth, Envoy ext_authz HTTP).
type ForwardAuthConfig struct {
	// TrustedProxies are the addresses (CIDRs, or single IPs) of the
	// gateways that may call forward-auth. A request from any other peer is
	// refused with 403 untrusted_proxy whatever it carries: the forwarded
	// headers are the whole question, and anyone else could forge them (or
	// use the route as a decision oracle). Default: 127.0.0.1/32 and ::1/128.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SharedSecret, when set, must also arrive in SecretHeader on every
	// call (compared in constant time); a call without it is 403
	// untrusted_proxy. Empty: the address is the only gate.
	SharedSecret string `yaml:"shared_secret"`
	// SecretHeader names the header of SharedSecret (default
	// X-Verdict-Proxy-Secret).
	SecretHeader string `yaml:"secret_header"`
	// EnvoyPrefix is Envoy ext_authz's path_prefix: under it the rest of
	// the path is the original request's path and the request's own method
	// and Host are the original ones (default /v1/forward-auth/envoy). It
	// must lie under /v1/forward-auth/.
	EnvoyPrefix string `yaml:"envoy_prefix"`
	// Routes is the route table: the original path's template becomes
	// resource.id. With OpenAPI too, both are used.
	Routes []ForwardRoute `yaml:"routes"`
	// OpenAPI is an OpenAPI 3 document (YAML or JSON) whose paths and
	// operations are routes, as Routes.
	OpenAPI string `yaml:"openapi"`
	// ContextHeaders are the original request's headers copied into
	// context.headers (names lower-cased). Authorization,
	// Proxy-Authorization and SecretHeader are never copied. Default:
	// user-agent.
	ContextHeaders []string `yaml:"context_headers"`
	// ResponseHeaders are set on an allow for the gateway to pass upstream:
	// header name → one of subject.id, subject.type, decision_id, revision,
	// route, or token.<claim> (a string or number claim). A header without
	// a value (an anonymous subject's id) is sent empty. Nil (unset) means X-Verdict-Subject:
	// subject.id and X-Verdict-Decision-Id: decision_id; an empty map sets
	// none.
	ResponseHeaders map[string]string `yaml:"response_headers"`
}

// DefaultForwardAuthConfig returns the defaults: only loopback gateways, no
// routes (every request is evaluated with resource.id ""), the user agent in
// context, and the subject and decision id as response headers.
func DefaultForwardAuthConfig() ForwardAuthConfig {
	return ForwardAuthConfig{
		TrustedProxies: []string{"127.0.0.1/32", "::1/128"},
		SecretHeader:   "X-Verdict-Proxy-Secret",
		EnvoyPrefix:    ForwardAuthPath + "/envoy",
		ContextHeaders: []string{"user-agent"},
	}
}

// defaultResponseHeaders are the response headers when none are configured.
func defaultResponseHeaders() map[string]string {
	return map[string]string{"X-Verdict-Subject": "subject.id", "X-Verdict-Decision-Id": "decision_id"}
}

// Validate reports every problem with c, joined. It does not read OpenAPI;
// NewForwardAuth does.
func (c ForwardAuthConfig) Validate() error {
	var errs []error
	if _, err := parsePrefixes("forward_auth.trusted_proxies", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.SharedSecret != "" && !validMethod(c.SecretHeader) {
		errs = append(errs, fmt.Errorf("forward_auth.secret_header %q is not a header name", c.SecretHeader))
	}
	if !strings.HasPrefix(c.EnvoyPrefix, ForwardAuthPath+"/") || strings.HasSuffix(c.EnvoyPrefix, "/") {
		errs = append(errs, fmt.Errorf("forward_auth.envoy_prefix %q must lie under %s/ and not end in /", c.EnvoyPrefix, ForwardAuthPath))
	}
	for _, h := range c.ContextHeaders {
		switch {
		case !validMethod(h):
			errs = append(errs, fmt.Errorf("forward_auth.context_headers: %q is not a header name", h))
		case secretHeader(h, c.SecretHeader):
			errs = append(errs, fmt.Errorf("forward_auth.context_headers: %s carries a credential and is never copied into context", h))
		}
	}
	for name, src := range c.ResponseHeaders {
		if !validMethod(name) {
			errs = append(errs, fmt.Errorf("forward_auth.response_headers: %q is not a header name", name))
		}
		if !validSource(src) {
			errs = append(errs, fmt.Errorf("forward_auth.response_headers.%s: %q must be subject.id, subject.type, decision_id, revision, route or token.<claim>", name, src))
		}
	}
	_, err := newRouteMatcher(c.Routes)
	errs = append(errs, err)
	return errors.Join(errs...)
}

func secretHeader(h, configured string) bool {
	return strings.EqualFold(h, fiber.HeaderAuthorization) || strings.EqualFold(h, fiber.HeaderProxyAuthorization) || strings.EqualFold(h, configured)
}

func validSource(src string) bool {
	switch src {
	case "subject.id", "subject.type", "decision_id", "revision", "route":
		return true
	}
	return strings.HasPrefix(src, "token.") && len(src) > len("token.")
}

// parsePrefixes parses a list of CIDRs or single addresses; setting names
// the list in messages.
func parsePrefixes(setting string, cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is neither a CIDR nor an IP address", setting, s))
			continue
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, errors.Join(errs...)
}

// ForwardAuth is the compiled forward-auth configuration: trusted proxies
// and the route table. Build it with NewForwardAuth; it is immutable.
type ForwardAuth struct {
	cfg     ForwardAuthConfig
	proxies []netip.Prefix
	routes  *routeMatcher
	// context are the lower-cased ContextHeaders.
	context []string
}

// NewForwardAuth validates cfg, reads its OpenAPI document if any and
// compiles the routes. It fails on any problem of either.
func NewForwardAuth(cfg ForwardAuthConfig) (*ForwardAuth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	routes := slices.Clone(cfg.Routes)
	if cfg.OpenAPI != "" {
		more, err := openAPIRoutes(cfg.OpenAPI)
		if err != nil {
			return nil, err
		}
		routes = append(routes, more...)
	}
	m, err := newRouteMatcher(routes)
	if err != nil {
		return nil, err
	}
	proxies, _ := parsePrefixes("forward_auth.trusted_proxies", cfg.TrustedProxies)
	if cfg.ResponseHeaders == nil {
		cfg.ResponseHeaders = defaultResponseHeaders()
	}
	fa := &ForwardAuth{cfg: cfg, proxies: proxies, routes: m}
	for _, h := range cfg.ContextHeaders {
		fa.context = append(fa.context, strings.ToLower(h))
	}
	return fa, nil
}

// WithForwardAuth configures /v1/forward-auth. Without it the route uses
// DefaultForwardAuthConfig.
func WithForwardAuth(fa *ForwardAuth) Option {
	return func(s *Server) { s.forward = fa }
}

// original is the request a gateway asks about.
type original struct {
	method, path, host, scheme string
	// escaped is path as sent, so that a %2F inside a segment stays in it.
	escaped string
}

// forwardAuth decides the original request a gateway forwards: 200 allow
// (with the configured response headers), 401 for an invalid token or a
// denied anonymous request, 403 for a denied user. A policy problem is a
// deny, never a 5xx.
func (s *Server) forwardAuth(c *fiber.Ctx) error {
	fa := s.forward
	if !fa.trusted(c) {
		s.log.Warn("forward-auth call from an untrusted address refused", "request_id", requestID(c), "peer", c.Context().RemoteIP().String())
		return newError(fiber.StatusForbidden, CodeUntrustedProxy, "forward-auth answers only the gateways in forward_auth.trusted_proxies")
	}
	orig, err := fa.original(c)
	if err != nil {
		return err
	}
	in := &engine.Input{Action: engine.Action{Name: orig.method}}
	if err := s.forwardSubject(c, in); err != nil {
		return err
	}
	props := map[string]any{"path": orig.path, "host": orig.host, "params": map[string]any{}}
	if orig.scheme != "" {
		props["scheme"] = orig.scheme
	}
	in.Resource = engine.Entity{Type: RouteType, Properties: props}
	if m, ok := fa.routes.match(c.UserContext(), orig.method, orig.escaped); ok {
		in.Resource.ID = m.template
		params := make(map[string]any, len(m.params))
		for k, v := range m.params {
			params[k] = v
		}
		props["params"] = params
	}
	headers := map[string]any{}
	for _, h := range fa.context {
		if v := c.Get(h); v != "" {
			headers[h] = utils.CopyString(v)
		}
	}
	in.Context = map[string]any{"headers": headers}
	// Everything in the input came from the request line and its headers
	// (the token's claims too).
	in.SizeBound = len(c.Request().Header.RawHeaders()) + len(c.Request().RequestURI())
	if len(c.Request().Header.RawHeaders()) == 0 {
		in.SizeBound = 0 // not kept: the size is unknown
	}

	d := s.dec.Evaluate(c.UserContext(), in, false, pdp.Meta{Endpoint: pdp.EndpointForwardAuth, RequestID: requestID(c)})
	if !d.Decision {
		if in.Subject.Type == AnonymousType {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict"`)
			return newError(fiber.StatusUnauthorized, CodeUnauthorized, "denied without a token; sign in (decision "+d.Context.DecisionID+")")
		}
		return newError(fiber.StatusForbidden, CodeAccessDenied, "denied (decision "+d.Context.DecisionID+")")
	}
	// Every configured header is sent, empty when it has no value (an
	// anonymous subject): a gateway that copies a header the answer lacks
	// may pass its own placeholder upstream instead (Caddy 2.6 does).
	for name, src := range fa.cfg.ResponseHeaders {
		c.Set(name, headerValue(src, in, d))
	}
	return c.JSON(d)
}

// trusted reports whether the peer is a trusted proxy carrying the shared
// secret, if one is configured.
func (fa *ForwardAuth) trusted(c *fiber.Ctx) bool {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return false
	}
	peer = peer.Unmap()
	if !slices.ContainsFunc(fa.proxies, func(p netip.Prefix) bool { return p.Contains(peer) }) {
		return false
	}
	if fa.cfg.SharedSecret == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(c.Get(fa.cfg.SecretHeader)), []byte(fa.cfg.SharedSecret)) == 1
}

// original reads the original request from the gateway's conventions, in
// this order: Envoy (a path under EnvoyPrefix), nginx (X-Original-URL or
// X-Original-URI, X-Original-Method), Traefik and Caddy (X-Forwarded-Uri,
// -Method, -Host, -Proto). Without any of them it is a 400: the gateway is
// misconfigured, and nothing may be guessed.
func (fa *ForwardAuth) original(c *fiber.Ctx) (original, error) {
	o := original{method: utils.CopyString(c.Method())}
	uri := ""
	full := string(c.Request().URI().RequestURI())
	switch p := strings.SplitN(full, "?", 2)[0]; {
	case p == fa.cfg.EnvoyPrefix || strings.HasPrefix(p, fa.cfg.EnvoyPrefix+"/"):
		uri = strings.TrimPrefix(full, fa.cfg.EnvoyPrefix)
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
		o.host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost, string(c.Request().Host())))
		o.scheme = utils.CopyString(c.Get(fiber.HeaderXForwardedProto))
	case c.Get("X-Original-URL") != "" || c.Get("X-Original-URI") != "":
		if raw := utils.CopyString(c.Get("X-Original-URL")); raw != "" {
			u, err := url.Parse(raw)
			if err != nil || !u.IsAbs() {
				return o, newError(fiber.StatusBadRequest, CodeNoOriginal, "X-Original-URL: must be an absolute URL")
			}
			o.scheme, o.host, uri = u.Scheme, u.Host, u.RequestURI()
		}
		if raw := c.Get("X-Original-URI"); raw != "" {
			uri = utils.CopyString(raw)
		}
		if o.host == "" {
			o.host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost))
		}
		if m := c.Get("X-Original-Method"); m != "" {
			o.method = utils.CopyString(m)
		}
	case c.Get("X-Forwarded-Uri") != "":
		uri = utils.CopyString(c.Get("X-Forwarded-Uri"))
		o.host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost))
		o.scheme = utils.CopyString(c.Get(fiber.HeaderXForwardedProto))
		if m := c.Get("X-Forwarded-Method"); m != "" {
			o.method = utils.CopyString(m)
		}
	default:
		return o, newError(fiber.StatusBadRequest, CodeNoOriginal,
			"no original request: send X-Original-URI (nginx), X-Forwarded-Uri (Traefik, Caddy), or call "+fa.cfg.EnvoyPrefix+"<path> (Envoy)")
	}
	o.method = strings.ToUpper(o.method)
	if !validMethod(o.method) {
		return o, newError(fiber.StatusBadRequest, CodeNoOriginal, "the original method is not an HTTP method")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || !strings.HasPrefix(uri, "/") {
		return o, newError(fiber.StatusBadRequest, CodeNoOriginal, "the original URI must be an absolute path, such as /todos/42?x=1")
	}
	o.path, o.escaped = u.Path, u.EscapedPath()
	return o, nil
}

// forwardSubject sets in's subject and token from the original request's
// Bearer token: a valid one is {type: user, id: sub} with its claims in
// token; none (or another scheme) is {type: anonymous}; an invalid one is a
// 401 and a token that cannot be checked now a 503, never a pass.
func (s *Server) forwardSubject(c *fiber.Ctx, in *engine.Input) error {
	scheme, tok, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		in.Subject = engine.Entity{Type: AnonymousType}
		return nil
	}
	if s.verifier == nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="invalid_token"`)
		return newError(fiber.StatusUnauthorized, CodeUnauthorized, "this server has no token verifier; a token cannot be accepted")
	}
	claims, err := s.verifyBearer(c, utils.CopyString(tok), "end-user")
	if err != nil {
		return err
	}
	in.Subject = engine.Entity{Type: UserType, ID: claims.Subject()}
	in.Token = claims
	return nil
}

// headerValue is the value of a response header source, or "" when there is
// none or it would not be a safe header value.
func headerValue(src string, in *engine.Input, d pdp.Response) string {
	var v string
	switch src {
	case "subject.id":
		v = in.Subject.ID
	case "subject.type":
		v = in.Subject.Type
	case "decision_id":
		v = d.Context.DecisionID
	case "revision":
		v = d.Context.Revision
	case "route":
		v = in.Resource.ID
	default:
		switch claim := in.Token[strings.TrimPrefix(src, "token.")].(type) {
		case string:
			v = claim
		case float64, int64, int, bool:
			v = fmt.Sprint(claim)
		}
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return v
}
