package server

import (
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// hintHarness serves policyV1 (with a time-dependent rule when timed) from
// a bundle whose manifest sets max_cache_ttl to ttl ("" for none).
func hintHarness(t *testing.T, ttl string, timed bool) *harness {
	t.Helper()
	manifest := `{"revision":"v1"}`
	if ttl != "" {
		manifest = `{"revision":"v1","metadata":{"verdict":{"max_cache_ttl":` + ttl + `}}}`
	}
	// broken fails on a resource of type broken whose id is no number.
	policy := policyV1 + "  - id: broken\n    effect: deny\n    condition: resource.type == 'broken' && int(resource.id) > 0\n"
	if timed {
		policy += "  - id: after-2000\n    effect: allow\n    actions: [\"noon\"]\n    condition: now > timestamp(\"2000-01-01T00:00:00Z\")\n"
	}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policy, ".manifest": manifest})
	return start(t, DefaultConfig(), mgr)
}

func ttlOf(m map[string]any) any {
	ctx, _ := m["context"].(map[string]any)
	return ctx["ttl"]
}

// TestCacheHints: a decision that depends on its input alone says how long
// it may be kept (Cache-Control: private, max-age and context.ttl), as
// long as the bundle's max_cache_ttl; nothing for a time-dependent policy,
// a time in the context, an error or an explanation, and no-store then; a
// batch may be kept as long as its shortest item.
func TestCacheHints(t *testing.T) {
	h := hintHarness(t, "30", false)
	for _, path := range []string{"/v1/decide", authzenEvaluation} {
		for _, b := range []string{body("alice", "read", "alice"), body("bob", "read", "alice")} {
			resp, m := h.post(path, "application/json", b)
			if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "private, max-age=30" || ttlOf(m) != 30.0 {
				t.Errorf("%s %s: %d %q %v", path, b, resp.StatusCode, resp.Header.Get("Cache-Control"), m)
			}
		}
	}
	// The AuthZEN answer with a hint carries its context, revision
	// included: a caller drops what it kept of another revision.
	if _, m := h.post(authzenEvaluation, "application/json", body("alice", "read", "alice")); m["context"].(map[string]any)["revision"] != "v1" {
		t.Errorf("AuthZEN answer with a hint: %v", m)
	}
	noStore := func(name, path, b string, h *harness) {
		t.Helper()
		resp, m := h.post(path, "application/json", b)
		if resp.Header.Get("Cache-Control") != "no-store" || ttlOf(m) != nil {
			t.Errorf("%s: %d %q %v", name, resp.StatusCode, resp.Header.Get("Cache-Control"), m)
		}
	}
	withTime := strings.Replace(body("alice", "read", "alice"), `{"subject"`, `{"context":{"now":"2026-01-01T00:00:00Z"},"subject"`, 1)
	noStore("time in the context", "/v1/decide", withTime, h)
	noStore("explain", "/v1/decide", strings.TrimSuffix(body("alice", "read", "alice"), "}")+`,"explain":true}`, h)
	noStore("error", "/v1/decide", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"broken","id":"x"}}`, h)
	noStore("no maximum", "/v1/decide", body("alice", "read", "alice"), hintHarness(t, "", false))
	noStore("time-dependent policy", "/v1/decide", body("alice", "read", "alice"), hintHarness(t, "30", true))
	if resp, _ := h.post("/v1/decide", "application/json", `{"subject":1}`); resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a refused request: %q", resp.Header.Get("Cache-Control"))
	}

	item := func(owner, ctx string) string {
		return `{"resource":{"type":"document","id":"42","properties":{"owner":"` + owner + `"}}` + ctx + `}`
	}
	batch := func(items ...string) string {
		return `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[` + strings.Join(items, ",") + `]}`
	}
	for _, path := range []string{"/v1/decide", authzenEvaluations} {
		resp, m := h.post(path, "application/json", batch(item("alice", ""), item("bob", "")))
		if resp.Header.Get("Cache-Control") != "private, max-age=30" || len(m["evaluations"].([]any)) != 2 {
			t.Errorf("%s batch: %q %v", path, resp.Header.Get("Cache-Control"), m)
		}
		resp, m = h.post(path, "application/json", batch(item("alice", ""), item("bob", `,"context":{"time":1}`)))
		evs := m["evaluations"].([]any)
		if resp.Header.Get("Cache-Control") != "no-store" || ttlOf(evs[0].(map[string]any)) != 30.0 || ttlOf(evs[1].(map[string]any)) != nil {
			t.Errorf("%s batch with one item not to keep: %q %v", path, resp.Header.Get("Cache-Control"), m)
		}
	}
}
