package pdp

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/trace"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/cache"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
)

// Config configures the decision service. The server's configuration
// (server.*) carries these settings.
type Config struct {
	// Limits bound the JSON Parse accepts.
	Limits
	// RequestTimeout bounds the decisions of one request together (a batch
	// of slow items): items not decided by then are denied with
	// verdict:timeout.
	RequestTimeout time.Duration
	// AllowExplain lets callers ask for "explain": a trace of every rule
	// and the detailed cause of a failure, which name policies and rules.
	// When false such a request is refused with CodeExplainDisabled.
	AllowExplain bool
	// DetailedErrors puts the detailed cause of a failed decision in every
	// answer, explain or not: for a policy author's own tools (verdict
	// decide), never for a server.
	DetailedErrors bool
	// Cache sizes the decision cache; MaxCost 0 turns it off.
	Cache cache.Config
	// NoCacheContextKeys are context keys that carry a time: a request that
	// sends one is decided afresh and not cached.
	NoCacheContextKeys []string
	// MaxSearchCandidates bounds the candidates one search evaluates.
	MaxSearchCandidates int
	// SignAll signs every decision Decide answers, asked for or not
	// (server.sign_decisions); New fails without WithSigner.
	SignAll bool
}

// Bundles is what the service needs of the bundle manager: the active
// bundles (nil while none is).
type Bundles interface {
	Active() *bundles.Active
}

var _ Bundles = (*bundles.Manager)(nil)

// DecisionCache is what the service needs of a decision cache.
type DecisionCache interface {
	Get(k Key) (engine.Decision, bool)
	Set(k Key, d engine.Decision)
}

// DecisionLog receives one record per decision (decisionlog.Logger). Log
// is called on the decision path and must return at once; it must not
// change the record's input.
type DecisionLog interface {
	Log(rec decisionlog.Record)
}

var _ DecisionLog = (*decisionlog.Logger)(nil)

// Service decides. Build it with New; it is safe for concurrent use.
type Service struct {
	cfg     Config
	bundles Bundles
	cache   DecisionCache
	dcache  *cache.Cache[Key, engine.Decision]
	bodies  *cache.Cache[bodyKey, bodyEntry] // nil unless the built-in cache is used
	// plans caches plan answers as decisions are cached (nil when they
	// are not).
	plans *cache.Cache[Key, PlanResponse]
	// shadow, when set, decides a sample of decisions with a candidate
	// revision off the request path (shadow.go).
	shadow  atomic.Pointer[shadow]
	obs     Observer
	timed   bool
	dlog    DecisionLog
	log     *slog.Logger
	tokens  SubjectVerifier
	history DecisionHistory
	// signer signs decisions, with issuer as their iss (sign.go); nil:
	// none is signed.
	signer Signer
	issuer string
}

// Option changes how New builds a service.
type Option func(*Service)

// WithCache replaces the decision cache (tests use one that drops
// writes); nil turns caching off.
func WithCache(c DecisionCache) Option {
	return func(s *Service) { s.cache = c }
}

// WithObserver reports every decision to o (metrics, traces).
func WithObserver(o Observer) Option {
	return func(s *Service) {
		if o != nil {
			s.obs, s.timed = o, true
		}
	}
}

// WithDecisionLog hands every decision to l. None by default.
func WithDecisionLog(l DecisionLog) Option {
	return func(s *Service) { s.dlog = l }
}

// WithLogger logs failed decisions and schema warnings to l.
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) {
		if l != nil {
			s.log = l
		}
	}
}

// WithSubjectVerifier verifies requests' subject_token with v. Without it
// a subject_token is refused.
func WithSubjectVerifier(v SubjectVerifier) Option {
	return func(s *Service) { s.tokens = v }
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.MaxDepth <= 0 {
		errs = append(errs, errors.New("max_depth must be positive"))
	}
	if c.MaxBatch <= 0 {
		errs = append(errs, errors.New("max_batch must be positive"))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("request_timeout must be positive"))
	}
	if c.MaxSearchCandidates <= 0 {
		errs = append(errs, errors.New("max_search_candidates must be positive"))
	}
	errs = append(errs, c.Cache.Validate())
	return errors.Join(errs...)
}

// New builds a service deciding with the active bundles of b. It fails on
// an invalid config.
func New(cfg Config, b Bundles, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, bundles: b, obs: noObserver{}, log: slog.New(slog.DiscardHandler)}
	dc, err := cache.New[Key, engine.Decision](cfg.Cache, Key.Index)
	if err != nil {
		return nil, err
	}
	s.dcache = dc
	if dc != nil {
		s.cache = dc
	}
	for _, o := range opts {
		o(s)
	}
	if cfg.SignAll && s.signer == nil {
		dc.Close()
		return nil, errors.New("sign_decisions needs signing keys (WithSigner)")
	}
	if dc != nil && s.cache == DecisionCache(dc) {
		if s.bodies, err = cache.New[bodyKey, bodyEntry](cfg.Cache, bodyKey.index); err != nil {
			return nil, err
		}
		if s.plans, err = cache.New[Key, PlanResponse](cfg.Cache, Key.Index); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the decision cache. The service must not be used after.
func (s *Service) Close() {
	if sh := s.shadow.Swap(nil); sh != nil {
		sh.close()
	}
	s.dcache.Close()
	s.bodies.Close()
	s.plans.Close()
}

// CacheStats are the decision cache's hits and misses (0, 0 without one).
func (s *Service) CacheStats() (hits, misses uint64) {
	hits, misses = s.dcache.Stats()
	bodyHits, _ := s.bodies.Stats() // a body miss is counted by the decision cache
	return hits + bodyHits, misses
}

// CacheEnabled reports whether decisions are cached.
func (s *Service) CacheEnabled() bool { return s.cache != nil }

// Active is the active bundles, nil while none is.
func (s *Service) Active() *bundles.Active { return s.bundles.Active() }

// ValidRequestID reports whether id, a caller's request id (HTTP's
// X-Request-ID, gRPC's x-request-id), may be kept as it is: printable
// ASCII, at most 200 bytes. Transports make one instead of any other.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 200 {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Meta is who asks for a decision: the endpoint and the transport's
// request id, for logs, metrics and traces, and the caller a signed
// decision names.
type Meta struct {
	Endpoint  Endpoint
	RequestID string
	// Caller is the client_id (else the subject) of the credential the
	// request came with, and CallerIssuer its iss; both "" when the
	// transport let the request through without one.
	Caller, CallerIssuer string
	// RemoteAddr is the address the request came from (host:port, the
	// connection's peer), for the decision log's requested_by; "" for a
	// caller in the same process.
	RemoteAddr string
}

// Parse is the package's Parse with the service's limits and subject-token
// verifier.
func (s *Service) Parse(ctx context.Context, body []byte, opt ParseOptions) (*Request, error) {
	return Parse(ctx, body, s.cfg.Limits, opt, s.tokens)
}

// Decide answers req: every input from the cache or the active bundles'
// snapshot (one snapshot for the whole request, even if another is
// activated meanwhile), within RequestTimeout altogether, honouring the
// batch semantics, with a cache hint (context.ttl) on each decision that
// may be kept and, when req or Config.SignAll asks, a signature. It refuses
// only an explain the configuration forbids (CodeExplainDisabled), a
// signature without a signer (CodeInvalidInput) and an answer it could not
// sign (CodeSigningUnavailable: never answered unsigned instead); anything
// going wrong while deciding is a deny in the Result.
func (s *Service) Decide(ctx context.Context, req *Request, m Meta) (Result, error) {
	if req.Explain && !s.cfg.AllowExplain {
		return Result{}, newError(CodeExplainDisabled, "explain is disabled on this server (server.allow_explain)")
	}
	if err := s.checkSignable(req); err != nil {
		return Result{}, err
	}
	active := s.bundles.Active()
	// One input: the deadline is set only if the cache does not answer (a
	// hit pays for none). Several: one deadline for them all.
	timeout := s.cfg.RequestTimeout
	if len(req.Inputs) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		timeout = 0
	}
	out := Respond(req, func(in *engine.Input) Response {
		resp := s.evaluate(ctx, m, active, in, req.Explain, timeout)
		resp.Context.TTL = s.cacheTTL(active, in, &resp, req.Explain, req.subjectToken)
		return resp
	})
	for i := range out.Evaluations {
		if req.Errs == nil || req.Errs[i] == nil {
			continue
		}
		s.obs.InvalidItem(m.Endpoint)
		// Items refused before evaluation still name the revision that
		// would have decided them.
		if active != nil {
			out.Evaluations[i].Context.Revision = active.Snapshot.Revision()
		}
	}
	if err := s.signRequest(req, &out, m); err != nil {
		return Result{}, err
	}
	return out, nil
}

// Evaluate answers one input as Decide answers a single request: the
// engine, if the cache does not answer, runs within RequestTimeout (a cache
// hit needs no deadline and pays for none).
func (s *Service) Evaluate(ctx context.Context, in *engine.Input, explain bool, m Meta) Response {
	return s.evaluate(ctx, m, s.bundles.Active(), in, explain, s.cfg.RequestTimeout)
}

// evaluate answers one input from the cache or active's snapshot. Explain
// requests bypass the cache; failed evaluations are never cached. A
// positive timeout bounds the engine (Decide's ctx carries the request's
// deadline already and passes 0).
func (s *Service) evaluate(ctx context.Context, m Meta, active *bundles.Active, in *engine.Input, explain bool, timeout time.Duration) Response {
	resp, _, _ := s.evaluateKnown(ctx, m, active, in, explain, timeout, nil)
	return resp
}

// evaluateKnown is evaluate, which also returns the decision and how the
// cache answered; known, when not nil, is the decision (a hit of the body
// cache) and nothing is evaluated.
func (s *Service) evaluateKnown(ctx context.Context, m Meta, active *bundles.Active, in *engine.Input, explain bool, timeout time.Duration, known *engine.Decision) (Response, engine.Decision, CacheOutcome) {
	start := time.Now()
	ctx = s.obs.DecisionStarted(ctx, m.Endpoint)
	var d engine.Decision
	outcome := CacheBypass
	switch {
	case known != nil:
		d, outcome = *known, CacheHit
	case active == nil:
		d = (*engine.Snapshot)(nil).Decide(ctx, in, false)
	default:
		d, outcome = s.decideCached(ctx, active, in, explain, timeout)
	}
	s.obs.DecisionFinished(ctx, m.Endpoint, d, outcome)
	s.offerShadow(in, d)
	resp := NewResponse(d, explain || s.cfg.DetailedErrors)
	s.logDecision(ctx, m, start, in, d, resp, outcome == CacheHit)
	if d.Err != nil && active != nil {
		// The cause names policies and rules: it goes to the operator's log,
		// and to the caller only when it asked for an explanation.
		s.log.Warn("decision failed; denied", "request_id", m.RequestID, "decision_id", resp.Context.DecisionID,
			"revision", d.Revision, "reason", engine.ClassifyErr(d.Err), "error", d.Err.Error())
	}
	if v := d.Violation; v != nil && !v.Enforced {
		s.log.Warn("input does not match its schema; decided anyway (bundles.schemas: warn)", "request_id", m.RequestID,
			"decision_id", resp.Context.DecisionID, "revision", d.Revision, "resource_type", v.ResourceType,
			"problems", v.Problems)
	}
	return resp, d, outcome
}

// decideCached decides in from the cache when it may and says how the
// cache answered.
func (s *Service) decideCached(ctx context.Context, active *bundles.Active, in *engine.Input, explain bool, timeout time.Duration) (engine.Decision, CacheOutcome) {
	snap := active.Snapshot
	if explain || s.cache == nil || !snap.Cacheable() || s.timeInContext(in) {
		return s.timedDecide(ctx, snap, in, explain, timeout), CacheBypass
	}
	key := inputKey(active.Generation, in)
	if d, ok := s.cache.Get(key); ok {
		return d, CacheHit
	}
	d := s.timedDecide(ctx, snap, in, false, timeout)
	if d.Err == nil {
		s.cache.Set(key, d)
	}
	return d, CacheMiss
}

// timedDecide is snap.Decide within timeout (when positive), timed for the
// observer.
func (s *Service) timedDecide(ctx context.Context, snap *engine.Snapshot, in *engine.Input, explain bool, timeout time.Duration) engine.Decision {
	// The snapshot bounds each decision by engine.timeout already: a
	// request deadline as long or longer would never fire first.
	if timeout > 0 && timeout < snap.Timeout() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if !s.timed {
		return snap.Decide(ctx, in, explain)
	}
	start := time.Now()
	d := snap.Decide(ctx, in, explain)
	s.obs.Evaluated(time.Since(start))
	return d
}

func (s *Service) timeInContext(in *engine.Input) bool {
	for _, k := range s.cfg.NoCacheContextKeys {
		if _, ok := in.Context[k]; ok {
			return true
		}
	}
	return false
}

// logDecision hands the decision resp of in, started at start, to the
// decision log, if there is one.
func (s *Service) logDecision(ctx context.Context, m Meta, start time.Time, in *engine.Input, d engine.Decision, resp Response, hit bool) {
	if s.dlog == nil {
		return
	}
	rec := decisionlog.Record{DecisionID: resp.Context.DecisionID, Time: start, RequestID: m.RequestID,
		Endpoint: m.Endpoint.String(), Revision: d.Revision, Allow: d.Allow, Reasons: d.Reasons,
		Duration: time.Since(start), CacheHit: hit, Input: in, RemoteAddr: m.RemoteAddr}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if d.Err != nil {
		rec.Error = engine.ClassifyErr(d.Err)
	} else if v := d.Violation; v != nil && v.Enforced {
		rec.Error = engine.ReasonSchemaViolation
	}
	s.dlog.Log(rec)
}

// WaitCache blocks until the decision cache has applied every write so
// far (its writes are asynchronous): for tests that expect a hit.
func (s *Service) WaitCache() { s.dcache.Wait(); s.bodies.Wait(); s.plans.Wait() }
