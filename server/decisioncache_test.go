package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// recordingCache counts writes and can drop them all.
type recordingCache struct {
	mu   sync.Mutex
	m    map[pdp.Key]engine.Decision
	sets atomic.Int64
	drop bool
	// index maps every key to one slot, to force collisions
	collide bool
}

func (c *recordingCache) Get(k pdp.Key) (engine.Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[k]
	return d, ok
}

func (c *recordingCache) Set(k pdp.Key, d engine.Decision) {
	c.sets.Add(1)
	if c.drop {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[pdp.Key]engine.Decision{}
	}
	c.m[k] = d
}

// TestCacheDoesNotChangeDecisions runs the same inputs with the real cache
// (twice, so the second pass hits), with no cache and with a cache that drops
// every write: every answer must be the same.
func TestCacheDoesNotChangeDecisions(t *testing.T) {
	bodies := []string{
		body("alice", "update", "alice"), body("bob", "update", "alice"), body("alice", "read", "bob"),
		`{"subject":{"type":"user","id":"alice","properties":{"suspended":true}},"action":{"name":"update"},"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}}`,
		`{"subject":{"type":"user","id":"alice","properties":{"suspended":false}},"action":{"name":"update"},"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}}`,
		`{"subject":{"type":"user","id":"1"},"action":{"name":"update"},"resource":{"type":"document","id":"1","properties":{"owner":1}}}`,
	}
	run := func(h *harness) []string {
		var out []string
		for _, b := range bodies {
			_, m := h.post("/v1/decide", "application/json", b)
			allow, reasons := decision(t, m)
			out = append(out, fmt.Sprint(allow, reasons))
		}
		return out
	}
	cached := newHarness(t)
	first := run(cached)
	cached.srv.dec.WaitCache()
	second := run(cached)
	noCfg := DefaultConfig()
	noCfg.Cache.MaxCost = 0
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	none := run(start(t, noCfg, mgr))
	drop := &recordingCache{drop: true}
	dropped := run(newHarness(t, WithCache(drop)))
	for i := range bodies {
		if first[i] != second[i] || first[i] != none[i] || first[i] != dropped[i] {
			t.Errorf("input %d: cached %s / %s, uncached %s, dropping %s", i, first[i], second[i], none[i], dropped[i])
		}
	}
	if drop.sets.Load() == 0 {
		t.Error("the dropping cache was never written to: the test does not exercise caching")
	}
	if hits, _ := cached.srv.dec.CacheStats(); hits == 0 {
		t.Error("the second pass had no cache hit")
	}
}

// TestNewBundleNeverAnsweredFromOldEntry: after activation the same input is
// decided by the new policy, although the old answer is cached.
func TestNewBundleNeverAnsweredFromOldEntry(t *testing.T) {
	h := newHarness(t)
	b := body("alice", "update", "alice")
	for i := 0; i < 3; i++ {
		if _, m := h.post("/v1/decide", "application/json", b); !m["decision"].(bool) {
			t.Fatal("v1 must allow the owner")
		}
	}
	h.srv.dec.WaitCache()
	activate(t, h.mgr, map[string]string{"docs.verdict.yaml": strings.Replace(policyV1, `actions: ["read", "update"]`, `actions: ["read"]`, 1), ".manifest": `{"revision":"v2"}`})
	_, m := h.post("/v1/decide", "application/json", b)
	if m["decision"].(bool) || m["context"].(map[string]any)["revision"] != "v2" {
		t.Fatalf("after activating v2: %v", m)
	}
}

func TestTimeDependentPoliciesAreNotCached(t *testing.T) {
	rec := &recordingCache{}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"t.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: t
rules:
  - id: after-2000
    effect: allow
    condition: now > timestamp("2000-01-01T00:00:00Z")
`})
	h := start(t, DefaultConfig(), mgr, WithCache(rec))
	for i := 0; i < 3; i++ {
		if _, m := h.post("/v1/decide", "application/json", body("a", "read", "a")); !m["decision"].(bool) {
			t.Fatalf("want allow: %v", m)
		}
	}
	if n := rec.sets.Load(); n != 0 {
		t.Fatalf("a policy reading now was cached %d times", n)
	}
}

func TestTimeInContextIsNotCached(t *testing.T) {
	rec := &recordingCache{}
	h := newHarness(t, WithCache(rec))
	withTime := strings.Replace(body("alice", "read", "alice"), `{"subject"`, `{"context":{"now":"2026-01-01T00:00:00Z"},"subject"`, 1)
	if _, m := h.post("/v1/decide", "application/json", withTime); !m["decision"].(bool) {
		t.Fatalf("want allow: %v", m)
	}
	if n := rec.sets.Load(); n != 0 {
		t.Fatalf("a request with context.now was cached")
	}
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	if n := rec.sets.Load(); n != 1 {
		t.Fatalf("a plain request was not cached (%d writes)", n)
	}
}
