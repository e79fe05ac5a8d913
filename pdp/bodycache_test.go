package pdp

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// outcomes decides each body once (waiting for the caches' writes after
// each) and returns how the cache answered each.
func outcomes(t *testing.T, svc *Service, w *watcher, opt ParseOptions, bodies ...string) []CacheOutcome {
	t.Helper()
	w.mu.Lock()
	w.finished = nil
	w.mu.Unlock()
	for _, b := range bodies {
		if _, err := svc.DecideBody(context.Background(), []byte(b), opt, Meta{Endpoint: EndpointDecide}); err != nil {
			t.Fatal(err)
		}
		svc.WaitCache()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]CacheOutcome(nil), w.finished...)
}

// TestBodyCache: a body seen before is answered without being decoded,
// with the same answer; everything the decision cache would not answer is
// never remembered by body.
func TestBodyCache(t *testing.T) {
	w := &watcher{}
	svc := open(t, DefaultConfig(), WithObserver(w))
	if svc.bodies == nil {
		t.Fatal("the built-in cache is on, the body cache is not")
	}
	ctx := context.Background()
	one := body("olga", "delete", "olga")

	first, err := svc.DecideBody(ctx, []byte(one), ParseOptions{}, Meta{Endpoint: EndpointDecide})
	if err != nil {
		t.Fatal(err)
	}
	svc.WaitCache()
	hitsBefore, _ := svc.bodies.Stats()
	again, err := svc.DecideBody(ctx, []byte(one), ParseOptions{}, Meta{Endpoint: EndpointDecide})
	if err != nil {
		t.Fatal(err)
	}
	if hits, _ := svc.bodies.Stats(); hits != hitsBefore+1 {
		t.Fatalf("the same body again: body cache hits %d -> %d", hitsBefore, hits)
	}
	a, b := first.Evaluations[0], again.Evaluations[0]
	if a.Decision != b.Decision || a.Context.Revision != b.Context.Revision || len(a.Context.Reasons) != len(b.Context.Reasons) ||
		a.Context.Reasons[0] != b.Context.Reasons[0] || a.Context.DecisionID == b.Context.DecisionID || b.Context.DecisionID == "" {
		t.Fatalf("first answer %+v, from the body cache %+v (same answer, a fresh decision id)", a, b)
	}

	// Remembered by body only when the decision cache would answer.
	explain := `{"explain":true,` + body("ivan", "read", "x")[1:]
	withToken := `{"subject_token":"x",` + body("ivan", "read", "x")[1:]
	batch := `{"evaluations":[` + body("ivan", "read", "x") + `]}`
	for _, tc := range []struct {
		name string
		body string
	}{{"explain", explain}, {"batch", batch}} {
		if got := outcomes(t, svc, w, ParseOptions{}, tc.body, tc.body); got[len(got)-1] == CacheHit && tc.name == "explain" {
			t.Errorf("%s twice: %v (an explanation is never cached)", tc.name, got)
		}
		if hits, _ := svc.bodies.Stats(); hits != hitsBefore+1 {
			t.Errorf("%s twice: answered from the body cache", tc.name)
		}
	}
	if _, err := svc.DecideBody(ctx, []byte(withToken), ParseOptions{}, Meta{}); err == nil {
		t.Fatal("a subject_token on a service without a verifier was accepted")
	}

	// Other parse options, other key: the same bytes are a body miss.
	if got := outcomes(t, svc, w, ParseOptions{Single: true}, one); len(got) != 1 {
		t.Fatalf("outcomes %v", got)
	}
	if hits, _ := svc.bodies.Stats(); hits != hitsBefore+1 {
		t.Error("the same bytes under other parse options were answered from the body cache")
	}

	// A new activation, a new generation: nothing remembered applies.
	if _, err := svc.bundles.(*bundles.Manager).LoadPaths(ctx, []string{"../policies/quickstart"}); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(t, svc, w, ParseOptions{}, one); got[0] != CacheMiss {
		t.Errorf("after an activation: %v, want a miss", got)
	}
	if hits, _ := svc.bodies.Stats(); hits != hitsBefore+1 {
		t.Error("after an activation, a body was answered from the body cache")
	}
}

// TestBodyCacheOffWithAnotherCache: a caller-supplied decision cache sees
// every lookup; no body cache stands in front of it.
func TestBodyCacheOffWithAnotherCache(t *testing.T) {
	svc := open(t, DefaultConfig(), WithCache(nil))
	if svc.bodies != nil {
		t.Fatal("a body cache in front of a caller-supplied cache")
	}
}
