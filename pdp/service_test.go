package pdp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
)

// watcher records what the service tells its Observer and DecisionLog.
type watcher struct {
	mu        sync.Mutex
	started   []Endpoint
	finished  []CacheOutcome
	evaluated int
	counted   int
	invalid   int
	logged    []decisionlog.Record
}

func (w *watcher) DecisionStarted(ctx context.Context, e Endpoint) context.Context {
	w.mu.Lock()
	w.started = append(w.started, e)
	w.mu.Unlock()
	return ctx
}

func (w *watcher) DecisionFinished(_ context.Context, _ Endpoint, _ engine.Decision, c CacheOutcome) {
	w.mu.Lock()
	w.finished = append(w.finished, c)
	w.mu.Unlock()
}
func (w *watcher) Evaluated(time.Duration)           { w.mu.Lock(); w.evaluated++; w.mu.Unlock() }
func (w *watcher) Counted(Endpoint, engine.Decision) { w.mu.Lock(); w.counted++; w.mu.Unlock() }
func (w *watcher) InvalidItem(Endpoint)              { w.mu.Lock(); w.invalid++; w.mu.Unlock() }
func (w *watcher) Log(r decisionlog.Record) {
	w.mu.Lock()
	w.logged = append(w.logged, r)
	w.mu.Unlock()
}

func open(t *testing.T, cfg Config, opts ...Option) *Service {
	t.Helper()
	svc, err := Open(context.Background(), cfg, bundles.DefaultConfig(), []string{"../policies/quickstart"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// TestServiceReportsEveryDecision: each decided item is started and
// finished once with how the cache answered, engine time is reported for
// misses only, an invalid batch item is counted (and names the revision)
// without being decided, and every decision is logged with its endpoint.
func TestServiceReportsEveryDecision(t *testing.T) {
	w := &watcher{}
	svc := open(t, DefaultConfig(), WithObserver(w), WithDecisionLog(w))
	ctx := context.Background()
	one := []byte(body("olga", "delete", "olga"))
	for range 2 {
		if _, err := svc.DecideJSON(ctx, one); err != nil {
			t.Fatal(err)
		}
		svc.WaitCache()
	}
	req, err := svc.Parse(ctx, []byte(`{"evaluations":[`+body("olga", "read", "olga")+`,{"subject":7}]}`), ParseOptions{ItemErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Decide(ctx, req, Meta{Endpoint: EndpointAuthZEN, RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Evaluations) != 2 || res.Evaluations[1].Context.Revision != "quickstart-1" || res.Evaluations[1].Context.Reasons[0] != ReasonInvalidInput {
		t.Fatalf("batch with an invalid item: %+v", res.Evaluations)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	want := []CacheOutcome{CacheMiss, CacheHit, CacheMiss}
	if len(w.finished) != len(want) || len(w.started) != len(want) {
		t.Fatalf("started %v, finished %v, want %v", w.started, w.finished, want)
	}
	for i := range want {
		if w.finished[i] != want[i] {
			t.Errorf("decision %d: cache %s, want %s", i, w.finished[i], want[i])
		}
	}
	if w.evaluated != 2 || w.invalid != 1 || w.counted != 0 {
		t.Errorf("evaluated %d (want 2), invalid %d (want 1), counted %d (want 0)", w.evaluated, w.invalid, w.counted)
	}
	if len(w.logged) != 3 || w.logged[0].Endpoint != "decide" || w.logged[2].Endpoint != "authzen" || w.logged[2].RequestID != "r1" || !w.logged[1].CacheHit || w.logged[1].Input == nil {
		t.Errorf("logged %+v", w.logged)
	}
}

func TestExplainCanBeRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowExplain = false
	svc := open(t, cfg)
	_, err := svc.DecideJSON(context.Background(), []byte(`{"explain":true,`+body("a", "read", "a")[1:]))
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeExplainDisabled {
		t.Fatalf("explain on a service that refuses it: %v", err)
	}
}

func TestSubjectTokenUnavailableIsRefused(t *testing.T) {
	svc := open(t, DefaultConfig(), WithSubjectVerifier(down{}))
	_, err := svc.DecideJSON(context.Background(), []byte(`{"subject_token":"x",`+body("a", "read", "a")[1:]))
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeUnavailable {
		t.Fatalf("a subject token that cannot be checked: %v", err)
	}
}

type down struct{}

func (down) VerifySubject(context.Context, string) (map[string]any, error) {
	return nil, ErrUnavailable
}

func TestConfigValidate(t *testing.T) {
	var c Config
	err := c.Validate()
	for _, want := range []string{"max_depth", "max_batch", "request_timeout", "max_search_candidates"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero config: %v lacks %s", err, want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
