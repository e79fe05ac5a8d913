package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/cache"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/pdp"
)

// Config configures the HTTP server.
type Config struct {
	// Addr is the listen address, host:port.
	Addr string `yaml:"addr"`
	// AdminAddr, when set, is a second listen address (host:port) where
	// the routes of operators are answered: /metrics, /v1/status,
	// /v1/bundles… and /v1/admin…. The public listener (Addr) then
	// answers them 404. Both answer /healthz, /readyz and /openapi.json.
	AdminAddr string `yaml:"admin_addr"`
	// TLS serves HTTPS on both listeners when it names a certificate, and
	// gRPC over TLS on GRPCAddr.
	TLS TLS `yaml:"tls"`
	// GRPCAddr, when set, is the gRPC listen address (host:port; off by
	// default): Envoy's ext_authz (envoy.service.auth.v3.Authorization),
	// Verdict's access API (verdict.access.v1.Access), grpc.health.v1
	// and server reflection. With TLS it speaks TLS with the same
	// certificate.
	GRPCAddr string `yaml:"grpc_addr"`
	// GRPCClientCert requires every gRPC client to present a certificate
	// that verifies against tls.client_ca_file, in the handshake (mTLS;
	// gateways such as Envoy authenticate this way).
	GRPCClientCert bool `yaml:"grpc_client_cert"`
	// BodyLimit is the largest request body accepted, in bytes; larger
	// bodies get 413.
	BodyLimit int `yaml:"body_limit"`
	// MaxDepth is the deepest JSON nesting accepted; deeper gets 400.
	MaxDepth int `yaml:"max_depth"`
	// MaxBatch is the most evaluations one request may hold.
	MaxBatch int `yaml:"max_batch"`
	// ReadTimeout, WriteTimeout and IdleTimeout bound connections.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	// RequestTimeout bounds the decisions of one request together (a batch
	// of slow items): items not decided by then are denied with
	// verdict:timeout.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// AllowExplain lets callers ask for "explain": a trace of every rule and
	// the detailed cause of a failure, which name policies and rules. When
	// false such a request is refused with 403.
	AllowExplain bool `yaml:"allow_explain"`
	// AuthZENReasons sends each AuthZEN decision's context (reasons and
	// revision) always. Otherwise an AuthZEN answer is {"decision": x}
	// alone unless its context carries an error, a warning, an
	// explanation or the short-circuit marker, or the request asks with
	// the X-Verdict-Reasons: true header: what AuthZEN clients (the
	// interop runner) expect.
	AuthZENReasons bool `yaml:"authzen_reasons"`
	// TokenFailures limits failed token requests (bad client credentials
	// above all) per client id and per IP address: past Max failures in
	// Window, 429 with Retry-After.
	TokenFailures RateLimit `yaml:"token_failures"`
	// RateLimits are the request rates allowed per client and per address
	// on each public route group; shared by the replicas of a Redis store.
	RateLimits RateLimits `yaml:"rate_limits"`
	// MaxInFlight is how many requests may be answered at once; more are
	// refused at once with 503 overloaded and Retry-After (the probes and
	// /metrics never). 0 turns the cap off.
	MaxInFlight int `yaml:"max_in_flight"`
	// ShutdownTimeout bounds how long in-flight requests may drain on stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Cache sizes the decision cache; MaxCost 0 turns it off.
	Cache cache.Config `yaml:"cache"`
	// PublicURL is the base URL callers reach this server at (scheme, host,
	// optional port and path prefix; no query, fragment or trailing slash),
	// announced as policy_decision_point and the endpoint URLs of
	// /.well-known/authzen-configuration. Empty means the token issuer
	// (tokens.issuer), else the URL the request came to.
	PublicURL string `yaml:"public_url"`
	// MaxSearchCandidates bounds the candidates one AuthZEN search request
	// evaluates; a search over a type with more is refused with 400
	// search_too_broad.
	MaxSearchCandidates int `yaml:"max_search_candidates"`
	// NoCacheContextKeys are context keys that carry a time (a request that
	// sends one is decided afresh and not cached: each such input is unique,
	// and caching it would only push useful entries out).
	NoCacheContextKeys []string `yaml:"no_cache_context_keys"`
	// Metrics serves Prometheus metrics at GET /metrics, without
	// authentication: keep the port off the public network (or filter
	// /metrics at the proxy). False neither collects nor serves them
	// (/metrics answers 404).
	Metrics bool `yaml:"metrics"`
	// TrustedProxies are the load balancers and gateways (CIDRs, or single
	// IPs) whose ClientIPHeader is believed: a request from one of them is
	// from the address that header names (read from the right, past every
	// trusted proxy); any other request is from its peer address, whatever
	// it carries. The token routes' limiters and the logs use that
	// address. Empty (the default): the peer address, always.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CORS lets web pages of the listed origins call Verdict from a
	// browser; off by default.
	CORS CORS `yaml:"cors"`
	// ClientIPHeader is the header trusted proxies put the client address
	// in: X-Forwarded-For (the default, also when empty; each proxy
	// appends), Forwarded (RFC 7239, its for= parameters) or X-Real-IP.
	ClientIPHeader string `yaml:"client_ip_header"`
	// SignDecisions signs every answer of /v1/decide and the AuthZEN
	// evaluation routes with the token-signing keys, asked for or not
	// (context.signature); a request may always ask with "options":
	// {"signed": true}. gRPC answers carry no signature.
	SignDecisions bool `yaml:"sign_decisions"`
}

// DefaultConfig returns the defaults: 127.0.0.1:8700, 1 MiB bodies, depth 64,
// 1,000 evaluations a batch, 5 s a request, explain allowed, 10,000
// candidates an AuthZEN search, a 100,000-entry decision cache whose
// entries live 5 minutes, and metrics at /metrics.
func DefaultConfig() Config {
	return Config{
		Addr:                "127.0.0.1:8700",
		BodyLimit:           1 << 20,
		MaxDepth:            64,
		MaxBatch:            1000,
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        10 * time.Second,
		IdleTimeout:         120 * time.Second,
		ShutdownTimeout:     15 * time.Second,
		RequestTimeout:      5 * time.Second,
		TokenFailures:       RateLimit{Max: 10, Window: time.Minute},
		AllowExplain:        true,
		Cache:               cache.Default(),
		NoCacheContextKeys:  []string{"now", "time", "timestamp", "current_time"},
		MaxSearchCandidates: 10000,
		Metrics:             true,
		ClientIPHeader:      HeaderXForwardedFor,
		TLS:                 TLS{HSTSMaxAge: DefaultHSTSMaxAge},
		RateLimits:          DefaultRateLimits(),
		MaxInFlight:         DefaultMaxInFlight,
	}
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("server addr %q: %w", c.Addr, err))
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			errs = append(errs, fmt.Errorf("server admin_addr %q: %w", c.AdminAddr, err))
		} else if c.AdminAddr == c.Addr {
			errs = append(errs, fmt.Errorf("server admin_addr %q is server.addr: give the admin listener its own port", c.AdminAddr))
		}
	}
	if c.GRPCAddr != "" {
		if _, port, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("server grpc_addr %q: %w", c.GRPCAddr, err))
		} else if port != "0" && (c.GRPCAddr == c.Addr || c.GRPCAddr == c.AdminAddr) {
			errs = append(errs, fmt.Errorf("server grpc_addr %q is another listener's address: give gRPC its own port", c.GRPCAddr))
		}
	}
	if c.GRPCClientCert && (c.GRPCAddr == "" || !c.TLS.Enabled() || c.TLS.ClientCAFile == "") {
		errs = append(errs, errors.New("server grpc_client_cert needs grpc_addr, tls.cert_file/key_file and tls.client_ca_file (the CAs client certificates are verified against)"))
	}
	errs = append(errs, c.TLS.validate(c.GRPCClientCert)...)
	errs = append(errs, c.RateLimits.validate()...)
	if c.MaxInFlight < 0 {
		errs = append(errs, errors.New("server max_in_flight must not be negative (0: no cap)"))
	}
	if c.BodyLimit <= 0 {
		errs = append(errs, errors.New("server body_limit must be positive"))
	}
	if c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("server timeouts must be positive"))
	}
	if c.TokenFailures.Max <= 0 || c.TokenFailures.Window <= 0 {
		errs = append(errs, errors.New("server token_failures max and window must be positive"))
	}
	if c.PublicURL != "" {
		if err := validPublicURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("server public_url %q: %w", c.PublicURL, err))
		}
	}
	if _, err := forward.ParsePrefixes("server.trusted_proxies", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.CORS.validate()...)
	if c.ClientIPHeader != "" && !validClientIPHeader(c.ClientIPHeader) {
		errs = append(errs, fmt.Errorf("server client_ip_header %q: must be one of %s", c.ClientIPHeader, strings.Join(clientIPHeaders, ", ")))
	}
	// The decision service's settings (depth, batch, request timeout,
	// search candidates, cache), each problem named as a server setting.
	if err := c.Decisions().Validate(); err != nil {
		joined, ok := err.(interface{ Unwrap() []error })
		if !ok {
			errs = append(errs, fmt.Errorf("server %w", err))
		} else {
			for _, e := range joined.Unwrap() {
				errs = append(errs, fmt.Errorf("server %w", e))
			}
		}
	}
	return errors.Join(errs...)
}

// Decisions is the decision service's part of the configuration.
func (c Config) Decisions() pdp.Config {
	return pdp.Config{
		Limits:              pdp.Limits{MaxDepth: c.MaxDepth, MaxBatch: c.MaxBatch},
		RequestTimeout:      c.RequestTimeout,
		AllowExplain:        c.AllowExplain,
		Cache:               c.Cache,
		NoCacheContextKeys:  c.NoCacheContextKeys,
		MaxSearchCandidates: c.MaxSearchCandidates,
		SignAll:             c.SignDecisions,
	}
}
