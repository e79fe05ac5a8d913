// Package forward turns the request a gateway asks about — the "original
// request" of forward-auth (nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy ext_authz over HTTP) and of Envoy's ext_authz over
// gRPC — into a decision input: its route from the route table, its
// end user from the Bearer token, the headers copied into context. It also
// says which gateways may ask (trusted proxies and a shared secret) and
// which headers an allow hands back. Both transports (server's HTTP route
// and grpcapi's Check) use it, so the same request decides the same way
// over either.
package forward

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// Path is the HTTP route gateways call; every sub-path answers too.
const Path = "/v1/forward-auth"

// The types of forward-auth's input entities.
const (
	RouteType     = "route"
	AnonymousType = "anonymous"
	UserType      = "user"
)

// Config configures forward-auth: the decision of gateways that ask
// before they proxy, over HTTP (/v1/forward-auth) and over gRPC (Envoy
// ext_authz, server.grpc_addr).
type Config struct {
	// TrustedProxies are the addresses (CIDRs, or single IPs) of the
	// gateways that may call forward-auth. A request from any other peer is
	// refused with 403 untrusted_proxy whatever it carries: the forwarded
	// headers are the whole question, and anyone else could forge them (or
	// use the route as a decision oracle). Default: 127.0.0.1/32 and ::1/128.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SharedSecret, when set, must also arrive in SecretHeader on every
	// call (compared in constant time; over gRPC as metadata of that name,
	// lower-cased); a call without it is 403 untrusted_proxy. Empty: the
	// address is the only gate.
	SharedSecret string `yaml:"shared_secret"`
	// SecretHeader names the header of SharedSecret (default
	// X-Verdict-Proxy-Secret).
	SecretHeader string `yaml:"secret_header"`
	// EnvoyPrefix is Envoy ext_authz's path_prefix (HTTP service): under it
	// the rest of the path is the original request's path and the
	// request's own method and Host are the original ones (default
	// /v1/forward-auth/envoy). It must lie under /v1/forward-auth/.
	EnvoyPrefix string `yaml:"envoy_prefix"`
	// Routes is the route table: the original path's template becomes
	// resource.id. With OpenAPI too, both are used.
	Routes []Route `yaml:"routes"`
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

// DefaultConfig returns the defaults: only loopback gateways, no routes
// (every request is evaluated with resource.id ""), the user agent in
// context, and the subject and decision id as response headers.
func DefaultConfig() Config {
	return Config{
		TrustedProxies: []string{"127.0.0.1/32", "::1/128"},
		SecretHeader:   "X-Verdict-Proxy-Secret",
		EnvoyPrefix:    Path + "/envoy",
		ContextHeaders: []string{"user-agent"},
	}
}

// defaultResponseHeaders are the response headers when none are configured.
func defaultResponseHeaders() map[string]string {
	return map[string]string{"X-Verdict-Subject": "subject.id", "X-Verdict-Decision-Id": "decision_id"}
}

// Validate reports every problem with c, joined. It does not read OpenAPI;
// New does.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParsePrefixes("forward_auth.trusted_proxies", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.SharedSecret != "" && !ValidToken(c.SecretHeader) {
		errs = append(errs, fmt.Errorf("forward_auth.secret_header %q is not a header name", c.SecretHeader))
	}
	if !strings.HasPrefix(c.EnvoyPrefix, Path+"/") || strings.HasSuffix(c.EnvoyPrefix, "/") {
		errs = append(errs, fmt.Errorf("forward_auth.envoy_prefix %q must lie under %s/ and not end in /", c.EnvoyPrefix, Path))
	}
	for _, h := range c.ContextHeaders {
		switch {
		case !ValidToken(h):
			errs = append(errs, fmt.Errorf("forward_auth.context_headers: %q is not a header name", h))
		case secretHeader(h, c.SecretHeader):
			errs = append(errs, fmt.Errorf("forward_auth.context_headers: %s carries a credential and is never copied into context", h))
		}
	}
	for name, src := range c.ResponseHeaders {
		if !ValidToken(name) {
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
	return strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "Proxy-Authorization") || strings.EqualFold(h, configured)
}

func validSource(src string) bool {
	switch src {
	case "subject.id", "subject.type", "decision_id", "revision", "route":
		return true
	}
	return strings.HasPrefix(src, "token.") && len(src) > len("token.")
}

// ParsePrefixes parses a list of CIDRs or single addresses; setting names
// the list in messages.
func ParsePrefixes(setting string, cidrs []string) ([]netip.Prefix, error) {
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

// Auth is the compiled forward-auth configuration: trusted proxies, the
// route table, the context and response headers. Build it with New; it is
// immutable and safe for concurrent use.
type Auth struct {
	cfg     Config
	proxies []netip.Prefix
	routes  *routeMatcher
	// context are the lower-cased ContextHeaders.
	context []string
}

// New validates cfg, reads its OpenAPI document if any and compiles the
// routes. It fails on any problem of either.
func New(cfg Config) (*Auth, error) {
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
	proxies, _ := ParsePrefixes("forward_auth.trusted_proxies", cfg.TrustedProxies)
	if cfg.ResponseHeaders == nil {
		cfg.ResponseHeaders = defaultResponseHeaders()
	}
	a := &Auth{cfg: cfg, proxies: proxies, routes: m}
	for _, h := range cfg.ContextHeaders {
		a.context = append(a.context, strings.ToLower(h))
	}
	return a, nil
}

// Config is the configuration a was built from (ResponseHeaders filled in).
func (a *Auth) Config() Config { return a.cfg }

// Trusted reports whether peer is a trusted proxy and secret the shared
// secret, if one is configured.
func (a *Auth) Trusted(peer netip.Addr, secret string) bool {
	peer = peer.Unmap()
	if !peer.IsValid() || !slices.ContainsFunc(a.proxies, func(p netip.Prefix) bool { return p.Contains(peer) }) {
		return false
	}
	if a.cfg.SharedSecret == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(secret), []byte(a.cfg.SharedSecret)) == 1
}

// Original is the request a gateway asks about.
type Original struct {
	// Method is upper-case; Path is decoded, Escaped as sent (so that a
	// %2F inside a segment stays in it); neither has the query.
	Method, Path, Escaped string
	// Host and Scheme are as the gateway says ("" when it does not).
	Host, Scheme string
}

// ParseTarget builds the original request from its method and its request
// target (an absolute path with an optional query, such as /todos/42?x=1).
// Its errors are the message for the caller.
func ParseTarget(method, target, host, scheme string) (Original, error) {
	o := Original{Method: strings.ToUpper(method), Host: host, Scheme: scheme}
	if !ValidToken(o.Method) {
		return o, errors.New("the original method is not an HTTP method")
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || !strings.HasPrefix(target, "/") {
		return o, errors.New("the original URI must be an absolute path, such as /todos/42?x=1")
	}
	o.Path, o.Escaped = u.Path, u.EscapedPath()
	return o, nil
}

// EndUserToken is the Bearer token of an Authorization value; ok is false
// for none or another scheme (the request is then anonymous).
func EndUserToken(authorization string) (token string, ok bool) {
	scheme, tok, found := strings.Cut(authorization, " ")
	tok = strings.TrimSpace(tok)
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// Input is the decision input of the original request o: action o.Method;
// the subject {type user, id sub} with claims as token when claims is not
// nil, else {type anonymous}; resource {type route, id: the matched
// template ("" for none), properties: path, host, scheme, params}; and
// context.headers, the configured headers that header (a lookup by
// lower-case name, "" for absent) finds. The values it keeps are copies.
func (a *Auth) Input(ctx context.Context, o Original, claims map[string]any, header func(name string) string) *engine.Input {
	in := &engine.Input{Action: engine.Action{Name: o.Method}, Subject: engine.Entity{Type: AnonymousType}}
	if claims != nil {
		sub, _ := claims["sub"].(string)
		in.Subject = engine.Entity{Type: UserType, ID: sub}
		in.Token = claims
	}
	props := map[string]any{"path": o.Path, "host": o.Host, "params": map[string]any{}}
	if o.Scheme != "" {
		props["scheme"] = o.Scheme
	}
	in.Resource = engine.Entity{Type: RouteType, Properties: props}
	if m, ok := a.routes.match(ctx, o.Method, o.Escaped); ok {
		in.Resource.ID = m.template
		params := make(map[string]any, len(m.params))
		for k, v := range m.params {
			params[k] = v
		}
		props["params"] = params
	}
	headers := map[string]any{}
	for _, h := range a.context {
		if v := header(h); v != "" {
			headers[h] = strings.Clone(v)
		}
	}
	in.Context = map[string]any{"headers": headers}
	return in
}

// ResponseHeaders calls set with every configured response header of an
// allow. Every one is sent, empty when it has no value (an anonymous
// subject): a gateway that copies a header the answer lacks may pass its
// own placeholder upstream instead (Caddy 2.6 does).
func (a *Auth) ResponseHeaders(in *engine.Input, d pdp.Response, set func(name, value string)) {
	for name, src := range a.cfg.ResponseHeaders {
		set(name, headerValue(src, in, d))
	}
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
