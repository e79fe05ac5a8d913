package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/store"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/etag"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

// RateLimit is a number of events allowed per window.
type RateLimit struct {
	Max    int           `yaml:"max"`
	Window time.Duration `yaml:"window"`
}

// Bundles is what the server needs of the bundle manager.
type Bundles interface {
	Active() *bundles.Active
}

var _ Bundles = (*bundles.Manager)(nil)

// Server is Verdict's HTTP API. Build it with New; it is safe for concurrent
// use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	bundles Bundles
	// dec is the decision service every decision route calls.
	dec *pdp.Service
	// cache replaces the decision service's cache when cacheSet
	// (WithCache).
	cache    pdp.DecisionCache
	cacheSet bool
	app      *fiber.App
	started  time.Time
	version  string
	// openapiDoc is the OpenAPI document, rendered to JSON once.
	openapiDoc  []byte
	jwks        JWKS
	store       Pinger
	tokens      Tokens
	issuer      string
	verifier    Verifier
	authOpen    bool
	clientAdmin ClientAdmin
	keyAdmin    KeyAdmin
	bundleAdmin BundleAdmin
	shadows     ShadowAdmin
	replica     Replica
	// roster and self list the replicas sharing the store (WithRoster).
	roster Roster
	self   func() store.Member
	limits fiber.Storage
	// history supplies logged inputs to previews; nil: test cases only.
	history DecisionHistory
	// dlog receives every decision; nil: decision logs are off.
	dlog DecisionLog
	// forward configures /v1/forward-auth.
	forward *forward.Auth
	// metrics are nil when server.metrics is false.
	metrics *metrics
	mirror  MirrorAnswers
	// tracer is nil when tracing is off (no WithTracerProvider, or a no-op
	// provider).
	tracer trace.Tracer
	// paths are the table's path templates, the names of server spans.
	paths map[string]bool
	// proxies are the parsed Config.TrustedProxies.
	proxies []netip.Prefix
	// tls gives handshakes their certificate; nil without server.tls.
	tls *certReloader
	// hsts is the Strict-Transport-Security value of answers over TLS.
	hsts string
	// lim holds the route limits' local counters and the in-flight count;
	// shared, when set, counts the route limits for every replica.
	lim    limits
	shared RateLimiter
	// people and authorizer serve the sign-in routes (WithSignIn);
	// userAdmin /v1/admin/users (WithUserAdmin).
	people       People
	authorizer   *oauth.Authorizer
	userAdmin    UserAdmin
	pseudonymKey []byte
	// apikeys verifies callers' API keys (WithAPIKeys); apikeyAdmin
	// serves /v1/admin/apikeys (WithAPIKeyAdmin).
	apikeys     APIKeys
	apikeyAdmin APIKeyAdmin
	// scim serves /scim/v2 (WithSCIM).
	scim fiber.Handler
	// signer signs decisions, naming signerIssuer (WithDecisionSigner).
	signer       pdp.Signer
	signerIssuer string
	// rates counts decisions for the console's chart (SampleRates);
	// covered is the active bundles' rule coverage, by generation.
	rates   rates
	covered atomic.Pointer[generationCoverage]
}

// Option changes how New builds a server.
type Option func(*Server)

// WithCache replaces the decision cache (tests use one that drops writes).
// A nil cache turns caching off.
func WithCache(c pdp.DecisionCache) Option {
	return func(s *Server) { s.cache, s.cacheSet = c, true }
}

// JWKS is what the server needs of the signing-key ring: the public key set
// and how long clients may cache it.
type JWKS interface {
	JWKS() ([]byte, error)
	MaxAge() time.Duration
}

// WithJWKS serves keys at /.well-known/jwks.json. Without it the route
// answers 404.
func WithJWKS(keys JWKS) Option {
	return func(s *Server) { s.jwks = keys }
}

// Pinger is what readiness needs of the durable store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// WithStore makes /readyz report whether the store answers.
func WithStore(p Pinger) Option {
	return func(s *Server) { s.store = p }
}

// Replica is what readiness needs of a replica's sync with a shared store
// (replica.Syncer).
type Replica interface {
	// Healthy reports whether the replica synced within its staleness
	// bound.
	Healthy() bool
	// Reachable reports whether the store answered the last check.
	Reachable() bool
	// SinceSync is how long ago the replica last synced.
	SinceSync() time.Duration
	// Generation is the store generation the replica applied.
	Generation() uint64
}

// WithReplica makes /readyz and /v1/status report the replica's sync with a
// shared store instead of pinging the store: an unreachable store leaves
// the server ready (fail-static) until the replica is stale.
func WithReplica(r Replica) Option {
	return func(s *Server) { s.replica = r }
}

// WithVersion sets the version /v1/status reports.
func WithVersion(v string) Option {
	return func(s *Server) { s.version = v }
}

// New builds the server and its routes. It fails on an invalid config.
func New(cfg Config, b Bundles, log *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	doc, err := openapiJSON()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, bundles: b, started: time.Now(), version: "dev", openapiDoc: doc, hsts: cfg.TLS.hstsValue()}
	if cfg.TLS.Enabled() {
		if s.tls, err = newCertReloader(cfg.TLS, log); err != nil {
			return nil, err
		}
	}
	s.proxies, _ = forward.ParsePrefixes("server.trusted_proxies", cfg.TrustedProxies) // validated above
	if s.cfg.ClientIPHeader == "" {
		s.cfg.ClientIPHeader = HeaderXForwardedFor
	}
	if s.forward, err = forward.New(forward.DefaultConfig()); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(s)
	}
	dopts := []pdp.Option{pdp.WithLogger(log), pdp.WithDecisionLog(s.dlog), pdp.WithObserver(observer{s})}
	if s.cacheSet {
		dopts = append(dopts, pdp.WithCache(s.cache))
	}
	if s.verifier != nil {
		dopts = append(dopts, pdp.WithSubjectVerifier(subjectVerifier{s.verifier}))
	}
	if s.history != nil {
		dopts = append(dopts, pdp.WithDecisionHistory(s.history))
	}
	if s.signer != nil {
		dopts = append(dopts, pdp.WithSigner(s.signer, s.signerIssuer))
	}
	if s.dec, err = pdp.New(cfg.Decisions(), b, dopts...); err != nil {
		return nil, err
	}
	s.app = fiber.New(fiber.Config{
		AppName:   "verdict",
		BodyLimit: s.fiberBodyLimit(),
		// Request headers must hold a bearer token of up to 8 KiB (the
		// verifier's limit) beside the usual headers; fasthttp's default
		// 4 KiB would refuse it before any handler runs.
		ReadBufferSize:        headerBufferBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(log, s.hsts),
	})
	s.app.Server().HeaderReceived = s.headerReceived
	s.lim.local = newLocalLimiter()
	// guard ends in shed (server.max_in_flight): one middleware, not two,
	// on the path of every request.
	s.app.Use(s.guard, s.requestID)
	if h := s.corsHandler(); h != nil {
		s.app.Use(h)
	}
	if s.tracer != nil {
		s.app.Use(s.traceRequest)
	}
	if cfg.Metrics {
		s.metrics = newMetrics(s)
		s.app.Use(s.observe)
	}
	s.app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		s.metrics.panicked()
		log.Error("panic in handler", "path", c.Path(), "request_id", requestID(c), "panic", fmt.Sprint(e))
	}}))
	s.routes()
	return s, nil
}

// headerBufferBytes bounds the request line and headers together.
const headerBufferBytes = 16 << 10

// route is one documented route; every route is in openapi.yaml.
type route struct {
	method, path string
	handler      fiber.Handler
	// before are middleware run ahead of handler on this route only.
	before []fiber.Handler
}

func (s *Server) table() []route {
	admin := []fiber.Handler{s.requireAdmin()}
	scimAuth := []fiber.Handler{func(c *fiber.Ctx) error { return s.checkToken(c, ScopeSCIM) }}
	bundleWrite := []fiber.Handler{s.requireBundles(ScopeBundlesWrite)}
	bundleRead := []fiber.Handler{s.requireBundles(ScopeBundlesRead, ScopeBundlesWrite)}
	limits := s.tokenLimits()
	return append([]route{
		{fiber.MethodGet, "/healthz", s.healthz, nil},
		{fiber.MethodGet, "/readyz", s.readyz, nil},
		{fiber.MethodGet, "/v1/status", s.status, nil},
		{fiber.MethodPost, "/v1/decide", s.decide, []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, PlanPath, s.plan, []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, "/v1/bundles", s.pushBundle, bundleWrite},
		{fiber.MethodGet, "/v1/bundles", s.listBundles, bundleRead},
		{fiber.MethodGet, "/v1/bundles/active", s.activeBundle, bundleRead},
		{fiber.MethodGet, "/v1/bundles/:revision", s.downloadBundle, bundleRead},
		{fiber.MethodPost, "/v1/bundles/:revision/activate", s.activateBundle, bundleWrite},
		{fiber.MethodGet, "/openapi.json", s.openapi, nil},
		// An ETag, and 304 to a matching If-None-Match: relying parties
		// poll the key set (fiber's etag middleware: length and CRC-32
		// of the body, strong).
		{fiber.MethodGet, "/.well-known/jwks.json", s.jwksHandler, []fiber.Handler{etag.New()}},
		{fiber.MethodPost, tokenPath, s.token, limits},
		{fiber.MethodPost, "/oauth2/revoke", s.revoke, limits},
		{fiber.MethodPost, "/oauth2/introspect", s.introspect, limits},
		{fiber.MethodGet, "/.well-known/oauth-authorization-server", s.asMetadata, nil},
		{fiber.MethodGet, "/.well-known/openid-configuration", s.asMetadata, nil},
		{fiber.MethodPost, "/v1/admin/clients", s.addClient, admin},
		{fiber.MethodGet, "/v1/admin/clients", s.listClients, admin},
		{fiber.MethodGet, "/v1/admin/clients/:id", s.getClient, admin},
		{fiber.MethodDelete, "/v1/admin/clients/:id", s.removeClient, admin},
		{fiber.MethodPost, "/v1/admin/clients/:id/rotate-secret", s.rotateClientSecret, admin},
		{fiber.MethodPost, "/v1/admin/users", s.addUser, admin},
		{fiber.MethodGet, "/v1/admin/users", s.listUsers, admin},
		{fiber.MethodGet, "/v1/admin/users/:id", s.getUser, admin},
		{fiber.MethodPatch, "/v1/admin/users/:id", s.updateUser, admin},
		{fiber.MethodDelete, "/v1/admin/users/:id", s.eraseUser, admin},
		{fiber.MethodPost, "/v1/admin/users/:id/password", s.setUserPassword, admin},
		{fiber.MethodPost, "/v1/admin/users/:id/unlock", s.unlockUser, admin},
		{fiber.MethodDelete, "/v1/admin/users/:id/mfa", s.removeUserMFA, admin},
		{fiber.MethodGet, "/v1/admin/users/:id/sessions", s.userSessions, admin},
		{fiber.MethodDelete, "/v1/admin/users/:id/sessions", s.endUserSessions, admin},
		{fiber.MethodGet, "/v1/admin/users/:id/export", s.exportUser, admin},
		// People signing in: the code flow's authorization endpoint and
		// its pages (HTML, CSRF-protected forms), OpenID Connect userinfo
		// and RP-initiated logout.
		{fiber.MethodGet, "/oauth2/authorize", s.authorize, nil},
		{fiber.MethodPost, "/oauth2/authorize", s.authorizeConsent, nil},
		{fiber.MethodGet, "/login", s.loginPage, nil},
		{fiber.MethodPost, "/login", s.login, nil},
		{fiber.MethodGet, "/login/mfa", s.mfaPage, nil},
		{fiber.MethodPost, "/login/mfa", s.mfa, nil},
		{fiber.MethodGet, "/account", s.account, nil},
		{fiber.MethodGet, "/account/mfa", s.enrolPage, nil},
		{fiber.MethodPost, "/account/mfa", s.enrol, nil},
		{fiber.MethodPost, "/account/logout", s.accountLogout, nil},
		{fiber.MethodGet, "/oauth2/userinfo", s.userinfo, nil},
		{fiber.MethodPost, "/oauth2/userinfo", s.userinfo, nil},
		{fiber.MethodGet, "/oauth2/logout", s.logout, nil},
		{fiber.MethodPost, "/oauth2/logout", s.logout, nil},
		{fiber.MethodPost, "/v1/admin/apikeys", s.createAPIKey, admin},
		{fiber.MethodGet, "/v1/admin/apikeys", s.listAPIKeys, admin},
		{fiber.MethodGet, "/v1/admin/apikeys/:id", s.getAPIKey, admin},
		{fiber.MethodDelete, "/v1/admin/apikeys/:id", s.revokeAPIKey, admin},
		{fiber.MethodPost, "/v1/admin/apikeys/:id/rotate", s.rotateAPIKey, admin},
		// SCIM 2.0 provisioning (RFC 7644): Users, Groups, /Schemas,
		// /ResourceTypes, /ServiceProviderConfig.
		{fiber.MethodGet, scimPrefix + "/*", s.scimRoute, scimAuth},
		{fiber.MethodPost, scimPrefix + "/*", s.scimRoute, scimAuth},
		{fiber.MethodPut, scimPrefix + "/*", s.scimRoute, scimAuth},
		{fiber.MethodPatch, scimPrefix + "/*", s.scimRoute, scimAuth},
		{fiber.MethodDelete, scimPrefix + "/*", s.scimRoute, scimAuth},
		{fiber.MethodGet, "/v1/admin/keys", s.listKeys, admin},
		{fiber.MethodGet, "/v1/admin/replicas", s.listReplicas, admin},
		{fiber.MethodPost, "/v1/admin/keys/rotate", s.rotateKeys, admin},
		{fiber.MethodPost, "/v1/admin/keys/:kid/revoke", s.revokeKey, admin},
		// Bundles. A preview changes nothing but reveals how policies
		// decide: it needs verdict:bundles:write, open only like decide
		// (serve --dev on loopback).
		{fiber.MethodPost, "/v1/bundles/preview", s.previewBundle, []fiber.Handler{s.requireScope(ScopeBundlesWrite)}},
		// OpenID AuthZEN Authorization API 1.0: the same parser, engine,
		// cache and authentication as /v1/decide.
		{fiber.MethodPost, authzenEvaluation, s.authzenEvaluation, []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, authzenEvaluations, s.authzenEvaluations, []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, authzenSearchSubject, s.search(pdp.SearchSubject), []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, authzenSearchResource, s.search(pdp.SearchResource), []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodPost, authzenSearchAction, s.search(pdp.SearchAction), []fiber.Handler{s.requireScope(ScopeDecide)}},
		{fiber.MethodGet, "/.well-known/authzen-configuration", s.authzenMetadata, nil},
		// Forward-auth, for gateways that ask before they proxy: every
		// method a gateway may forward (HEAD with GET; CONNECT opens
		// tunnels, which no gateway asks about), on the path and its
		// sub-paths (Envoy appends the original path). The gate is
		// forward_auth.trusted_proxies, not a caller token: the
		// Authorization header is the end user's.
		{fiber.MethodGet, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodPost, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodPut, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodPatch, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodDelete, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodOptions, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodTrace, ForwardAuthPath, s.forwardAuth, nil},
		{fiber.MethodGet, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodPost, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodPut, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodPatch, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodDelete, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodOptions, ForwardAuthPath + "/*", s.forwardAuth, nil},
		{fiber.MethodTrace, ForwardAuthPath + "/*", s.forwardAuth, nil},
		// Prometheus metrics (server.metrics), unauthenticated: for the
		// monitoring network only.
		{fiber.MethodGet, MetricsPath, s.metricsHandler(), nil},
	}, append(s.consoleRoutes(), s.shadowRoutes()...)...)
}

// routes registers the table, answers other methods on its paths with 405
// and an Allow header, and anything else with 404.
func (s *Server) routes() {
	allow := map[string][]string{}
	var order []string
	s.paths = map[string]bool{}
	for _, r := range s.table() {
		s.paths[r.path] = true
		limitsBefore, limitsAfterAuth := s.groupLimits(groupOf(r.path))
		hs := append(s.routeGates(r.path), limitsBefore...)
		hs = append(append(hs, r.before...), limitsAfterAuth...)
		hs = append(hs, r.handler)
		s.app.Add(r.method, r.path, hs...)
		s.metrics.register(r.method, r.path)
		if r.method == fiber.MethodGet {
			s.app.Add(fiber.MethodHead, r.path, hs...)
			s.metrics.register(fiber.MethodHead, r.path)
		}
		if _, seen := allow[r.path]; !seen {
			order = append(order, r.path)
		}
		allow[r.path] = append(allow[r.path], r.method)
		if r.method == fiber.MethodGet {
			allow[r.path] = append(allow[r.path], fiber.MethodHead)
		}
	}
	for _, p := range order {
		s.app.All(p, methodNotAllowed(strings.Join(allow[p], ", ")))
	}
	s.app.Use(func(c *fiber.Ctx) error {
		return newError(fiber.StatusNotFound, CodeNotFound, "no route "+c.Method()+" "+c.Path())
	})
}

func methodNotAllowed(allow string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, allow)
		return newError(fiber.StatusMethodNotAllowed, CodeMethodNotAllowed, c.Method()+" is not allowed here; use "+allow)
	}
}

// routeGates are the checks of where a request came from that run before
// the route's own: the listener (server.admin_addr) and the client
// certificate (server.tls.client_cert_routes).
func (s *Server) routeGates(path string) []fiber.Handler {
	var hs []fiber.Handler
	if s.cfg.AdminAddr != "" {
		switch classOf(path) {
		case adminOnly:
			hs = append(hs, onListener(true))
		case publicOnly:
			hs = append(hs, onListener(false))
		}
	}
	for _, prefix := range s.cfg.TLS.ClientCertRoutes {
		if underPrefix(path, prefix) {
			hs = append(hs, requireClientCert)
			break
		}
	}
	return hs
}

// App returns the Fiber app, for tests that call app.Test.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on ln, and on admin when given (the listener of
// server.admin_addr; at most one), until ctx is done, then stops accepting,
// drains in-flight requests for at most ShutdownTimeout and returns. With
// server.tls both listeners speak TLS. It returns the first listener's
// error if one fails on its own.
func (s *Server) Serve(ctx context.Context, ln net.Listener, admin ...net.Listener) error {
	raw := append([]net.Listener{ln}, admin...)
	// One route tree, built once, for every listener.
	s.app.Handler()
	errc := make(chan error, len(raw))
	for i, l := range raw {
		wrapped := s.listener(l, i > 0)
		go func() { errc <- s.app.Server().Serve(wrapped) }()
	}
	var err error
	pending := len(raw)
	select {
	case err = <-errc:
		// A listener failed on its own: stop the others too.
		pending--
		_ = s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout)
	case <-ctx.Done():
		err = s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout)
	}
	// A stop that comes before fasthttp took a listener finds nothing to
	// shut down; closing the listeners ends such a late start at once.
	for _, l := range raw {
		l.Close()
	}
	for ; pending > 0; pending-- {
		<-errc
	}
	return err
}

// Close releases the decision service's cache.
func (s *Server) Close() {
	s.dec.Close()
}

const requestIDHeader = "X-Request-ID"

// requestID echoes a well-formed X-Request-ID (printable ASCII, at most 200
// bytes) or makes one, and keeps it for logs and the response; the
// request's user context carries it too, for the token service's audit
// events (oauth.WithRequestID).
func (s *Server) requestID(c *fiber.Ctx) error {
	c.SetUserContext(oauth.WithRequestID(c.UserContext(), ensureRequestID(c)))
	return c.Next()
}

// ensureRequestID gives the request its id once. The error handler calls it
// too, for requests refused before any middleware ran (a body over the limit).
func ensureRequestID(c *fiber.Ctx) string {
	if id, ok := c.Locals(requestIDHeader).(string); ok {
		return id
	}
	id := c.Get(requestIDHeader)
	if !pdp.ValidRequestID(id) {
		id = uuid.NewString()
	} else {
		id = utils.CopyString(id)
	}
	c.Locals(requestIDHeader, id)
	c.Set(requestIDHeader, id)
	return id
}

func requestID(c *fiber.Ctx) string { return ensureRequestID(c) }

// remoteAddr is the connection's peer (host:port), as the decision log's
// requested_by.
func remoteAddr(c *fiber.Ctx) string { return c.Context().RemoteAddr().String() }

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz is ready when a bundle is active and the store (if any) answers;
// with a replica, when it synced within its staleness bound (the store may
// be unreachable meanwhile: decisions never need it).
func (s *Server) readyz(c *fiber.Ctx) error {
	checks := fiber.Map{}
	ready := true
	if a := s.bundles.Active(); a == nil {
		checks["bundle"] = "no bundle is active"
		ready = false
	} else {
		checks["bundle"] = "active"
		checks["revision"] = a.Snapshot.Revision()
	}
	switch {
	case s.replica != nil:
		// Reachability is asked now (the replica's own view is as old as its
		// last poll); readiness follows staleness, so that a short outage
		// leaves the replica serving fail-static.
		checks["store"] = "ok"
		if !s.replica.Reachable() || s.pingStore(c.UserContext()) != nil {
			checks["store"] = "unreachable"
		}
		checks["seconds_since_sync"] = int64(s.replica.SinceSync().Seconds())
		checks["generation"] = s.replica.Generation()
		if !s.replica.Healthy() {
			checks["sync"] = "stale"
			ready = false
		} else {
			checks["sync"] = "ok"
		}
	case s.store != nil:
		if err := s.pingStore(c.UserContext()); err != nil {
			s.log.Warn("store unreachable", "error", err)
			checks["store"] = "unreachable"
			ready = false
		} else {
			checks["store"] = "ok"
		}
	}
	if !ready {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "not ready", "checks": checks})
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": checks})
}

// pingStore asks the store, if any, whether it answers, for at most a
// second.
func (s *Server) pingStore(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return s.store.Ping(ctx)
}

func (s *Server) status(c *fiber.Ctx) error {
	out := fiber.Map{
		"version":        s.version,
		"uptime_seconds": int64(time.Since(s.started).Seconds()),
	}
	if s.replica != nil {
		out["replica"] = fiber.Map{"generation": s.replica.Generation(), "reachable": s.replica.Reachable(),
			"healthy": s.replica.Healthy(), "seconds_since_sync": s.replica.SinceSync().Seconds()}
	}
	hits, misses := s.dec.CacheStats()
	out["cache"] = fiber.Map{"enabled": s.dec.CacheEnabled(), "hits": hits, "misses": misses}
	a := s.bundles.Active()
	if a == nil {
		out["ready"] = false
		out["bundle"] = nil
		return c.JSON(out)
	}
	counts := a.Snapshot.Counts()
	kinds := make([]string, 0, len(counts))
	for _, k := range []string{bundles.KindCEL, bundles.KindRego} {
		if counts[k] > 0 {
			kinds = append(kinds, k)
		}
	}
	out["ready"] = true
	source := "paths"
	if a.Pushed {
		source = "push"
	}
	out["bundle"] = fiber.Map{
		"revision":   a.Snapshot.Revision(),
		"source":     source,
		"generation": a.Generation,
		"loaded_at":  a.LoadedAt.Format(time.RFC3339Nano),
		"sources":    a.Sources,
		"digests":    a.Digests,
		"policies":   fiber.Map{bundles.KindCEL: counts[bundles.KindCEL], bundles.KindRego: counts[bundles.KindRego]},
		"engines":    kinds,
		"cacheable":  a.Snapshot.Cacheable(),
		"tests":      a.Tests,
	}
	return c.JSON(out)
}

// jwksHandler serves the public signing keys (RFC 7517) with the cache
// lifetime the key ring's rotation schedule is built on.
func (s *Server) jwksHandler(c *fiber.Ctx) error {
	if s.jwks == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no signing keys")
	}
	doc, err := s.jwks.JWKS()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, fmt.Sprintf("public, max-age=%d", int(s.jwks.MaxAge().Seconds())))
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	return c.Send(doc)
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
