package server

import (
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// MetricsPath is where the Prometheus metrics are served (server.metrics).
const MetricsPath = "/metrics"

var (
	outcomes = [...]string{"allow", "deny", "error"}
	// metricReasons are the reasons verdict_decision_reasons_total counts:
	// Verdict's own codes, a bounded set. Policy-defined reasons are not
	// counted (a policy may name anything, ids included).
	metricReasons = []string{engine.ReasonNoPolicy, engine.ReasonNoMatch, engine.ReasonError, engine.ReasonTimeout,
		engine.ReasonCostLimit, engine.ReasonUndefined, pdp.ReasonInvalidInput}
	// tokenFailureReasons are the OAuth error codes the token endpoint
	// answers with; anything else is counted as "other".
	tokenFailureReasons = []string{oauth.OAuthInvalidRequest, oauth.OAuthInvalidClient, oauth.OAuthInvalidGrant,
		oauth.OAuthUnauthorizedClient, oauth.OAuthUnsupportedGrantType, oauth.OAuthInvalidScope, oauth.OAuthInvalidTarget,
		oauthTooManyRequests, oauthUnavailable}
	callerAuthCodes = []string{CodeUnauthorized, CodeForbidden, CodeUnavailable}
)

// OAuth error codes of the token routes that are not the token service's.
const (
	oauthTooManyRequests = "too_many_requests"
	oauthUnavailable     = "temporarily_unavailable"
	labelOther           = "other"
)

// unmatchedRoute is the route label of a request that matched no route.
const unmatchedRoute = "unmatched"

// CacheStatser is a cache that counts its hits and misses (authn.Verifier's
// token-verification cache).
type CacheStatser interface {
	CacheStats() (hits, misses uint64)
}

var _ CacheStatser = (*authn.Verifier)(nil)

// BundleStats counts bundle activations and rejections (bundles.Manager).
type BundleStats interface {
	Activations() uint64
	Rejections(stage string) uint64
}

var _ BundleStats = (*bundles.Manager)(nil)

// MirrorAnswers counts the revocation checks the replica's mirror answered
// while the shared store was unavailable (replica.FailStatic).
type MirrorAnswers interface {
	MirrorAnswers() uint64
}

// Repairer counts the replica's repairs of missed changes
// (replica.Syncer).
type Repairer interface {
	Repairs() uint64
}

// WithMirrorAnswers adds verdict_replica_mirror_answers_total, read from m.
func WithMirrorAnswers(m MirrorAnswers) Option {
	return func(s *Server) { s.mirror = m }
}

// metrics are a server's Prometheus collectors on its own registry. A nil
// *metrics (server.metrics: false) records nothing.
type metrics struct {
	reg          *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// routes are the label children of every registered route, made once.
	routes map[routeKey]*routeMetrics
	// paths are the table's path templates.
	paths     map[string]bool
	decisions [pdp.NumEndpoints][len(outcomes)]prometheus.Counter
	reasons   map[string]prometheus.Counter
	evaluate  prometheus.Histogram
	issued    map[string]prometheus.Counter
	issuedVec *prometheus.CounterVec
	failures  map[string]prometheus.Counter
	callers   map[string]prometheus.Counter
	panics    prometheus.Counter
	// refusals count requests refused from their headers, by kind.
	refusals map[string]prometheus.Counter
	// throttled counts token requests refused by a failure limiter, by
	// its key.
	throttled map[string]prometheus.Counter
	// limited counts requests refused by a route group's rate limit, by
	// group and kind ("decide/client").
	limited     map[string]prometheus.Counter
	shed        prometheus.Counter
	limitErrors prometheus.Counter
	// plans counts query plans by outcome (a kind, or a refusal's code)
	// and how the cache answered.
	plans *prometheus.CounterVec
}

type routeKey struct{ method, path string }

// routeMetrics are one route's series, made on its first request (so that
// routes never called export nothing) and then found without hashing.
type routeMetrics struct {
	route, method string
	m             *metrics
	duration      atomic.Pointer[prometheus.Observer]
	// codes holds the counter of status 100+i at i.
	codes [500]atomic.Pointer[prometheus.Counter]
}

func (r *routeMetrics) record(code int, d time.Duration) {
	obs := r.duration.Load()
	if obs == nil {
		o := r.m.httpDuration.WithLabelValues(r.route, r.method)
		obs = &o
		r.duration.Store(obs)
	}
	(*obs).Observe(d.Seconds())
	if code < 100 || code > 599 {
		r.m.httpRequests.WithLabelValues(r.route, r.method, strconv.Itoa(code)).Inc()
		return
	}
	c := r.codes[code-100].Load()
	if c == nil {
		// Two first requests may both get here; WithLabelValues gives both
		// the same child.
		cc := r.m.httpRequests.WithLabelValues(r.route, r.method, strconv.Itoa(code))
		c = &cc
		r.codes[code-100].Store(c)
	}
	(*c).Inc()
}

// newMetrics builds the collectors of s, which must have its options
// applied; gauges and counters kept elsewhere (caches, bundles, replica)
// are read at scrape time, so nothing is counted twice.
func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, routes: map[routeKey]*routeMetrics{}, paths: map[string]bool{}}
	f := factory{reg}
	m.httpRequests = f.counterVec("verdict_http_requests_total", "HTTP requests answered, by route template, method and status code.", "route", "method", "code")
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "verdict_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route template and method.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	reg.MustRegister(m.httpDuration)

	dec := f.counterVec("verdict_decisions_total", "Decisions made, by endpoint and outcome (error: a deny caused by a failure or an invalid item).", "endpoint", "outcome")
	for e := range pdp.NumEndpoints {
		for j, o := range outcomes {
			m.decisions[e][j] = dec.WithLabelValues(e.String(), o)
		}
	}
	m.reasons = children(f.counterVec("verdict_decision_reasons_total", "Decisions carrying one of Verdict's own verdict:* reasons, by reason.", "reason"), metricReasons)
	m.evaluate = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "verdict_decision_evaluation_seconds", Help: "Engine time of decisions not answered from the cache.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 1},
	})
	reg.MustRegister(m.evaluate)

	m.issuedVec = f.counterVec("verdict_tokens_issued_total", "Tokens issued by /oauth2/token, by grant type.", "grant")
	var grants []string
	if s.tokens != nil {
		grants = s.tokens.GrantTypes()
	}
	m.issued = children(m.issuedVec, grants)
	m.failures = children(f.counterVec("verdict_token_failures_total", "Refused /oauth2/token requests, by OAuth error code (other: any code not listed).", "reason"),
		append(tokenFailureReasons, labelOther))
	m.callers = children(f.counterVec("verdict_caller_auth_failures_total", "Requests refused by caller authentication, by error code.", "code"), callerAuthCodes)
	m.panics = f.counter("verdict_panics_total", "Panics recovered in handlers (each answered 500).")
	m.refusals = children(f.counterVec("verdict_requests_refused_total",
		"Requests refused from their headers before their body was read, by reason (framing: ambiguous length, a smuggling attempt; duplicate: Host or Authorization twice; upload: a bundle upload without a token allowed to push).", "reason"),
		[]string{refuseFraming, refuseDuplicate, refuseUpload})
	m.throttled = children(f.counterVec("verdict_token_throttled_total",
		"Token-route requests refused with 429 after too many failures, by the limiter's key (source: the client address; source_client: the address and client id).", "key"),
		[]string{throttleSource, throttleSourceClient})

	limitedVec := f.counterVec("verdict_rate_limited_total",
		"Requests refused with 429 by a route group's rate limit (server.rate_limits), by group and kind (client or ip).", "group", "by")
	m.limited = map[string]prometheus.Counter{}
	for _, g := range s.cfg.RateLimits.groups() {
		for _, by := range []string{limitByClient, limitByIP} {
			m.limited[g.name+"/"+by] = limitedVec.WithLabelValues(g.name, by)
		}
	}
	m.shed = f.counter("verdict_requests_shed_total", "Requests refused with 503 overloaded because server.max_in_flight requests were being answered.")
	m.limitErrors = f.counter("verdict_rate_limit_store_errors_total", "Rate-limit checks the shared counter (Redis) failed; each was counted on this replica instead.")
	m.plans = f.counterVec("verdict_plans_total", "Query plans (POST /v1/plan) by outcome (always_allowed, always_denied, conditional, or the refusal's code: unplannable, plan_timeout, error) and how the cache answered.", "outcome", "cache")
	f.gaugeFunc("verdict_requests_in_flight", "Requests being answered now (shed above server.max_in_flight).", func() float64 { return float64(s.lim.inFlight.Load()) })
	f.counterFunc("verdict_decision_cache_hits_total", "Decisions answered from the decision cache.", func() float64 { h, _ := s.dec.CacheStats(); return float64(h) })
	f.counterFunc("verdict_decision_cache_misses_total", "Decision cache lookups that found nothing.", func() float64 { _, mi := s.dec.CacheStats(); return float64(mi) })
	shadowMetrics(f, s)
	decisionLogMetrics(f, s.dlog)
	if cs, ok := s.verifier.(CacheStatser); ok {
		f.counterFunc("verdict_token_cache_hits_total", "Tokens answered from the verification cache.", func() float64 { h, _ := cs.CacheStats(); return float64(h) })
		f.counterFunc("verdict_token_cache_misses_total", "Tokens verified in full (not in the verification cache).", func() float64 { _, mi := cs.CacheStats(); return float64(mi) })
	}

	f.gaugeFunc("verdict_bundle_generation", "Generation of the active bundle (0: none is active).", func() float64 {
		if a := s.bundles.Active(); a != nil {
			return float64(a.Generation)
		}
		return 0
	})
	reg.MustRegister(bundleInfo{s.bundles})
	if bs, ok := s.bundles.(BundleStats); ok {
		f.counterFunc("verdict_bundle_activations_total", "Bundles activated.", func() float64 { return float64(bs.Activations()) })
		for _, stage := range bundles.RejectionStages {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "verdict_bundle_rejections_total", Help: "Bundles rejected, by stage (read, signature, compile, tests).",
				ConstLabels: prometheus.Labels{"stage": stage},
			}, func() float64 { return float64(bs.Rejections(stage)) }))
		}
	}

	if r := s.replica; r != nil {
		f.gaugeFunc("verdict_replica_generation", "Store generation this replica applied.", func() float64 { return float64(r.Generation()) })
		f.gaugeFunc("verdict_replica_seconds_since_sync", "Seconds since this replica last synced with the shared store.", func() float64 { return r.SinceSync().Seconds() })
		f.gaugeFunc("verdict_replica_healthy", "1 when this replica synced within its staleness bound, else 0.", func() float64 { return b2f(r.Healthy()) })
		if rp, ok := r.(Repairer); ok {
			f.counterFunc("verdict_replica_repairs_total", "Reloads after a missed change (a generation gap).", func() float64 { return float64(rp.Repairs()) })
		}
	}
	if mi := s.mirror; mi != nil {
		f.counterFunc("verdict_replica_mirror_answers_total", "Revocation checks the replica's mirror answered while the store was unavailable.", func() float64 { return float64(mi.MirrorAnswers()) })
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// factory makes collectors and registers them on reg.
type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterFunc(name, help string, fn func() float64) {
	f.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

func (f factory) gaugeFunc(name, help string, fn func() float64) {
	f.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// children makes v's series for each of values, so that they are exported
// as 0 from the start and looked up without hashing.
func children(v *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(values))
	for _, val := range values {
		out[val] = v.WithLabelValues(val)
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// bundleInfo exports verdict_bundle_info{revision} 1 for the active
// bundle, and nothing while none is active: one series at a time.
type bundleInfo struct{ b Bundles }

var bundleInfoDesc = prometheus.NewDesc("verdict_bundle_info", "The active bundle's revision, as a label; always 1.", []string{"revision"}, nil)

func (bi bundleInfo) Describe(ch chan<- *prometheus.Desc) { ch <- bundleInfoDesc }

func (bi bundleInfo) Collect(ch chan<- prometheus.Metric) {
	if a := bi.b.Active(); a != nil {
		ch <- prometheus.MustNewConstMetric(bundleInfoDesc, prometheus.GaugeValue, 1, a.Snapshot.Revision())
	}
}

// register notes a route (method, path template) of the table.
func (m *metrics) register(method, path string) {
	if m == nil {
		return
	}
	k := routeKey{method, path}
	if m.routes[k] == nil {
		m.routes[k] = &routeMetrics{route: path, method: method, m: m}
	}
	m.paths[path] = true
}

// observe is the middleware that counts and times every request by the
// route template it matched, never the raw path. It runs the error handler
// itself, so that the status it records is the one sent (a recovered panic
// included).
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	// c.Method() may alias Fiber's buffers: it is only looked up, and the
	// label is the registered constant.
	m, r, code := s.metrics, c.Route(), c.Response().StatusCode()
	if rm, ok := m.routes[routeKey{c.Method(), r.Path}]; ok {
		rm.record(code, time.Since(start))
		return nil
	}
	// Another method on a table path (405), or no route at all (404).
	path := r.Path
	if !m.paths[path] {
		path = unmatchedRoute
	}
	method := methodLabel(c.Method())
	m.httpDuration.WithLabelValues(path, method).Observe(time.Since(start).Seconds())
	m.httpRequests.WithLabelValues(path, method, strconv.Itoa(code)).Inc()
	return nil
}

// methodLabel is m as one of Fiber's method constants (so that it never
// aliases Fiber's buffers), or "other".
func methodLabel(m string) string {
	if i := slices.Index(fiber.DefaultMethods, m); i >= 0 {
		return fiber.DefaultMethods[i]
	}
	return labelOther
}

// recordDecision counts one decision asked for at e.
func (m *metrics) recordDecision(e pdp.Endpoint, d engine.Decision) {
	if m == nil {
		return
	}
	outcome := 1
	switch {
	case d.Err != nil:
		outcome = 2
	case d.Allow:
		outcome = 0
	}
	m.decisions[e][outcome].Inc()
	m.recordReasons(d.Reasons)
}

func (m *metrics) recordReasons(reasons []string) {
	for _, r := range reasons {
		if c, ok := m.reasons[r]; ok {
			c.Inc()
		}
	}
}

// recordInvalid counts a batch item that was no valid input: an error.
func (m *metrics) recordInvalid(e pdp.Endpoint) {
	if m == nil {
		return
	}
	m.decisions[e][2].Inc()
	m.reasons[pdp.ReasonInvalidInput].Inc()
}

func (m *metrics) observeEvaluation(took time.Duration) {
	if m != nil {
		m.evaluate.Observe(took.Seconds())
	}
}

func (m *metrics) tokenIssued(grant string) {
	if m == nil {
		return
	}
	if c, ok := m.issued[grant]; ok {
		c.Inc()
		return
	}
	m.issuedVec.WithLabelValues(labelOther).Inc()
}

func (m *metrics) tokenFailed(code string) {
	if m == nil {
		return
	}
	c, ok := m.failures[code]
	if !ok {
		c = m.failures[labelOther]
	}
	c.Inc()
}

func (m *metrics) callerAuthFailed(err error) {
	if m == nil {
		return
	}
	if ae, ok := err.(*apiError); ok {
		if c, ok := m.callers[ae.Code]; ok {
			c.Inc()
		}
	}
}

func (m *metrics) refused(kind string) {
	if m != nil {
		if c, ok := m.refusals[kind]; ok {
			c.Inc()
		}
	}
}

func (m *metrics) throttle(key string) {
	if m != nil {
		m.throttled[key].Inc()
	}
}

func (m *metrics) rateLimited(group, by string) {
	if m != nil {
		m.limited[group+"/"+by].Inc()
	}
}

func (m *metrics) shedOne() {
	if m != nil {
		m.shed.Inc()
	}
}

func (m *metrics) rateLimitStoreFailed() {
	if m != nil {
		m.limitErrors.Inc()
	}
}

func (m *metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

// metricsHandler serves the registry in the Prometheus text (or
// OpenMetrics, if asked for) format; with server.metrics false, 404.
func (s *Server) metricsHandler() fiber.Handler {
	if s.metrics == nil {
		return func(*fiber.Ctx) error {
			return newError(fiber.StatusNotFound, CodeNotFound, "metrics are off on this server (server.metrics)")
		}
	}
	m := s.metrics
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg, // counts promhttp's own errors
		EnableOpenMetrics: true,
	}))
}
