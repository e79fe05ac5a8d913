package bundles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/verdictpdp/verdict/engine"
)

// Config configures a Manager.
type Config struct {
	// Limits bound what a bundle may hold.
	Limits Limits
	// Engine bounds every evaluation of the bundle's policies.
	Engine engine.Limits
	// SkipTests activates bundles without running their *_test.yaml cases.
	SkipTests bool
	// Signing says which bundles are trusted; the zero value trusts any.
	// Prepare verifies every bundle against it before compiling.
	Signing SigningConfig
	// SchemaMode says what an input that does not match its resource type's
	// schema (schemas/<type>.json in a bundle) does: enforce (the default,
	// also meant by "") denies it with reason schema_violation, warn decides
	// normally and reports the violation.
	SchemaMode engine.SchemaMode
}

// DefaultConfig returns the default limits, with tests run before activation.
func DefaultConfig() Config {
	return Config{Limits: DefaultLimits(), Engine: engine.DefaultLimits()}
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	return errors.Join(c.Limits.Validate(), c.Engine.Validate(), c.Signing.Validate(), c.SchemaMode.Validate())
}

// TestSummary counts a bundle's test cases.
type TestSummary struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// Active is a compiled bundle set that serves (or is about to serve)
// decisions. It is immutable.
type Active struct {
	Snapshot *engine.Snapshot
	// Generation increases by one with every activation; cache keys carry it
	// so that no decision of an older bundle is ever served.
	Generation uint64
	LoadedAt   time.Time
	Sources    []string
	Digests    []string
	Tests      TestSummary
	// Pushed is true when the bundle is a stored revision (pushed over the
	// API, or restored from the store at start) rather than read from paths.
	Pushed bool
	// Cases are the test cases of the bundles, in bundle order; an impact
	// preview decides their inputs. Nil when the bundles have none (or, with
	// SkipTests, when their test files do not parse).
	Cases []TestCase
	// Catalog holds the search candidates the bundles declare
	// (data.entities and the actions of CEL rules), for AuthZEN search.
	Catalog Catalog
	// Bundles are the bundles the snapshot was compiled from (Reapply
	// compiles them again with new provisioned data).
	Bundles []*Bundle
	// OverlayVersion is the version of the overlay (SetOverlay) the
	// snapshot was compiled with.
	OverlayVersion uint64
}

// Manager owns the active bundle and swaps it atomically. Its zero value is
// not usable; build one with NewManager.
type Manager struct {
	cfg Config
	log *slog.Logger
	// tracer makes the activation spans; a no-op one without
	// WithTracerProvider.
	tracer trace.Tracer
	mu     sync.Mutex // serialises activations so generations stay ordered
	active atomic.Pointer[Active]
	gen    uint64
	// activations and rejections count what Activate swapped in and what
	// Prepare or a read refused, for metrics.
	activations atomic.Uint64
	rejections  [len(RejectionStages)]atomic.Uint64
	// overlay is the data every bundle sees besides its own (SetOverlay),
	// under mu.
	overlay        Overlay
	overlayVersion uint64
}

// Stages at which a bundle is rejected, as Rejections counts them.
const (
	StageRead      = "read"
	StageSignature = "signature"
	StageCompile   = "compile"
	StageTests     = "tests"
)

// RejectionStages lists every stage Rejections counts, in a fixed order.
var RejectionStages = [...]string{StageRead, StageSignature, StageCompile, StageTests}

// Activations is how many bundles Activate has swapped in since NewManager.
func (m *Manager) Activations() uint64 { return m.activations.Load() }

// Rejections is how many bundles were rejected at stage (one of
// RejectionStages) since NewManager: unreadable, badly signed, not
// compiling, or failing their tests, whether pushed, validated, loaded from
// paths, reloaded or synced. It is 0 for an unknown stage.
func (m *Manager) Rejections(stage string) uint64 {
	for i, st := range RejectionStages {
		if st == stage {
			return m.rejections[i].Load()
		}
	}
	return 0
}

// reject counts err, a rejection at the stage its type says, and returns it.
func (m *Manager) reject(err error) error {
	stage := StageCompile
	if _, ok := errors.AsType[*SignatureError](err); ok {
		stage = StageSignature
	} else if _, ok := errors.AsType[*ReadError](err); ok {
		stage = StageRead
	} else if _, ok := errors.AsType[TestFailures](err); ok {
		stage = StageTests
	}
	return m.rejectAt(stage, err)
}

// rejectAt counts err as a rejection at stage and returns it.
func (m *Manager) rejectAt(stage string, err error) error {
	for i, st := range RejectionStages {
		if st == stage {
			m.rejections[i].Add(1)
		}
	}
	return err
}

// ManagerOption changes how NewManager builds a manager.
type ManagerOption func(*Manager)

// WithTracerProvider traces every Prepare and Trial with tp: a
// verdict.bundle.prepare span (revision, outcome) with verdict.bundle.compile
// and verdict.bundle.tests children. Without it (or with nil) no spans are
// made.
func WithTracerProvider(tp trace.TracerProvider) ManagerOption {
	return func(m *Manager) {
		if tp != nil {
			m.tracer = tp.Tracer("github.com/verdictpdp/verdict/bundles")
		}
	}
}

// NewManager returns a manager with no active bundle. It parses the
// signing keys once here; a key that does not load (which cfg.Validate
// reports at start) makes every bundle signed with it fail verification.
func NewManager(cfg Config, log *slog.Logger, opts ...ManagerOption) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if s, err := cfg.Signing.Load(); err == nil {
		cfg.Signing = s
	}
	m := &Manager{cfg: cfg, log: log, tracer: noop.NewTracerProvider().Tracer("")}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Active returns the active bundle, nil before the first activation.
func (m *Manager) Active() *Active { return m.active.Load() }

// Limits returns the limits bundles are read with.
func (m *Manager) Limits() Limits { return m.cfg.Limits }

// Prepare verifies each bundle's signature (see Verify), compiles bs and
// runs each bundle's tests against that bundle's own policies, without
// activating anything. It returns a *SignatureError, engine.CompileErrors,
// TestFailures or another error; never a partial result.
func (m *Manager) Prepare(ctx context.Context, bs []*Bundle) (a *Active, err error) {
	ctx, span := m.tracer.Start(ctx, "verdict.bundle.prepare", trace.WithAttributes(attribute.Int("verdict.bundles", len(bs))))
	defer func() { endStage(span, err, a) }()
	for _, b := range bs {
		if err := Verify(b, m.cfg.Signing); err != nil {
			if b.Source != "" {
				return nil, m.reject(fmt.Errorf("%s: %w", b.Source, err))
			}
			return nil, m.reject(err)
		}
	}
	var failed TestFailures
	a, failed, err = m.Trial(ctx, bs)
	if err != nil {
		return nil, m.reject(err)
	}
	if len(failed) > 0 {
		return nil, m.reject(failed)
	}
	return a, nil
}

// Trial is Prepare for a bundle that will not be activated (an impact
// preview): failing tests do not reject it but come back beside it. It
// returns engine.CompileErrors or another error for a bundle that does not
// compile or whose test files do not parse (unless SkipTests), with no
// result. Nothing of the manager changes.
func (m *Manager) Trial(ctx context.Context, bs []*Bundle) (*Active, TestFailures, error) {
	cctx, span := m.tracer.Start(ctx, "verdict.bundle.compile")
	ov, ver := m.overlayNow()
	c, err := CompileWith(cctx, bs, CompileOptions{Limits: m.cfg.Engine, SchemaMode: m.cfg.SchemaMode, Overlay: ov})
	endStage(span, err, nil)
	if err != nil {
		return nil, nil, err
	}
	catalog, err := buildCatalog(bs, c.Snapshot.Modules(), ov)
	if err != nil {
		return nil, nil, err
	}
	a := &Active{Snapshot: c.Snapshot, Catalog: catalog, Bundles: bs, OverlayVersion: ver}
	for _, b := range bs {
		a.Sources = append(a.Sources, b.Source)
		a.Digests = append(a.Digests, b.Digest)
	}
	if m.cfg.SkipTests {
		for _, b := range bs {
			if cases, err := b.Tests(); err == nil {
				a.Cases = append(a.Cases, cases...)
			}
		}
		return a, nil, nil
	}
	ctx, span = m.tracer.Start(ctx, "verdict.bundle.tests")
	defer span.End()
	var failed TestFailures
	for i, b := range bs {
		cases, err := b.Tests()
		if err != nil {
			span.SetStatus(codes.Error, "test files do not parse")
			return nil, nil, err
		}
		a.Cases = append(a.Cases, cases...)
		for _, r := range RunTests(ctx, c.PerBundle[i], cases) {
			if r.Passed() {
				a.Tests.Passed++
			} else {
				failed = append(failed, r)
			}
		}
	}
	a.Tests.Failed = len(failed)
	span.SetAttributes(attribute.Int("verdict.tests.passed", a.Tests.Passed), attribute.Int("verdict.tests.failed", a.Tests.Failed))
	if len(failed) > 0 {
		span.SetStatus(codes.Error, "tests failed")
	}
	return a, failed, nil
}

// endStage ends the span of an activation stage: failed on err (its kind,
// not its message, which may quote policy source), else naming the
// revision a built.
func endStage(span trace.Span, err error, a *Active) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, "rejected")
	case a != nil:
		span.SetAttributes(attribute.String("verdict.revision", a.Snapshot.Revision()))
	}
	span.End()
}

// Activate makes a (from Prepare) the active bundle, with the next
// generation, and returns what was swapped in.
func (m *Manager) Activate(a *Active) *Active {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	next := *a
	next.Generation = m.gen
	next.LoadedAt = time.Now().UTC()
	m.active.Store(&next)
	m.activations.Add(1)
	m.log.Info("bundle activated", "revision", next.Snapshot.Revision(), "generation", next.Generation,
		"tests_passed", next.Tests.Passed)
	return &next
}

// LoadPaths reads, compiles and tests the bundles at paths and activates them
// together. On any error the active bundle is left as it was.
func (m *Manager) LoadPaths(ctx context.Context, paths []string) (*Active, error) {
	bs := make([]*Bundle, 0, len(paths))
	for _, p := range paths {
		b, err := Load(p, m.cfg.Limits)
		if err != nil {
			m.log.Error("bundle unreadable", "path", p, "error", err)
			return nil, m.rejectAt(StageRead, err)
		}
		bs = append(bs, b)
	}
	a, err := m.Prepare(ctx, bs)
	if err != nil {
		if cur := m.Active(); cur != nil {
			m.log.Warn("bundle rejected; the active bundle keeps serving", "paths", paths,
				"active_revision", cur.Snapshot.Revision(), "error", err)
		} else {
			m.log.Error("bundle rejected; no bundle is active: not ready, and every decision is a deny",
				"paths", paths, "error", err)
		}
		return nil, err
	}
	return m.Activate(a), nil
}
