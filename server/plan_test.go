package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine/plan"
)

// planOf reads a plan answer.
func planOf(t *testing.T, m map[string]any) plan.Plan {
	t.Helper()
	raw, _ := json.Marshal(m)
	var p plan.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanRoute: POST /v1/plan answers the condition under which
// /v1/decide allows, the unconditional kinds, the same 400s as a decision
// for bad input (and for a resource with an id or properties), 422 for a
// policy that cannot be planned; answers are cached like decisions, and
// counted.
func TestPlanRoute(t *testing.T) {
	h := newHarness(t)
	plans := func(b string) (int, map[string]any) {
		resp, m := h.post(PlanPath, "application/json", b)
		return resp.StatusCode, m
	}
	code, m := plans(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document"}}`)
	p := planOf(t, m)
	if code != 200 || p.Kind != plan.Conditional || m["context"].(map[string]any)["revision"] != "v1" {
		t.Fatalf("plan: %d %v", code, m)
	}
	for owner, want := range map[string]bool{"alice": true, "bob": false} {
		res := map[string]any{"type": "document", "id": "1", "properties": map[string]any{"owner": owner}}
		if got := p.Condition.Eval(res); got != want {
			t.Errorf("condition %s on owner %s = %v", p.Condition, owner, got)
		}
		_, d := h.post("/v1/decide", "application/json", body("alice", "read", owner))
		if allowed, _ := decision(t, d); allowed != want {
			t.Errorf("decide on owner %s = %v", owner, allowed)
		}
	}
	for b, kind := range map[string]string{
		`{"subject":{"type":"user","id":"sue","properties":{"suspended":true}},"action":{"name":"read"},"resource":{"type":"document"}}`: plan.AlwaysDenied,
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"print"},"resource":{"type":"document"}}`:                              plan.AlwaysDenied,
	} {
		if code, m := plans(b); code != 200 || m["kind"] != kind || m["condition"] != nil {
			t.Errorf("%s: %d %v, want %s", b, code, m, kind)
		}
	}
	for b, want := range map[string]string{
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"}}`:                                                "resource",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`:        "resource.id",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","properties":{}}}`: "resource.properties",
		`{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"document"}}`:                              "subject.id",
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document"}`:                  "malformed JSON",
	} {
		code, m := plans(b)
		if e, _ := m["error"].(map[string]any); code != 400 || e == nil || !strings.Contains(e["message"].(string), want) {
			t.Errorf("%s: %d %v, want 400 naming %s", b, code, m, want)
		}
	}
	if resp, _ := h.post(PlanPath, "text/plain", `{}`); resp.StatusCode != 415 {
		t.Errorf("text/plain: %d", resp.StatusCode)
	}

	// Asked again: from the cache.
	plans(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document"}}`)
	s := h.scrape(t)
	if v, _ := s.value("verdict_plans_total", "outcome", "conditional", "cache", "hit"); v != 1 {
		t.Errorf("cached plans: %v\n%s", v, s.raw)
	}
	if v, _ := s.value("verdict_plans_total", "outcome", "always_denied", "cache", "miss"); v != 2 {
		t.Errorf("always_denied plans: %v", v)
	}

	// A policy a plan cannot express: 422 naming the rule.
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"p.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: pairs
rules:
  - id: same-team
    effect: allow
    condition: resource.properties.team == resource.properties.owner_team
`})
	h2 := start(t, DefaultConfig(), mgr)
	resp, m := h2.post(PlanPath, "application/json", `{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc"}}`)
	if e, _ := m["error"].(map[string]any); resp.StatusCode != 422 || e["code"] != "unplannable" ||
		!strings.Contains(e["message"].(string), "rule same-team") || !strings.Contains(e["message"].(string), "resource.properties.team == resource.properties.owner_team") {
		t.Fatalf("unplannable: %d %v", resp.StatusCode, m)
	}
	if v, _ := h2.scrape(t).value("verdict_plans_total", "outcome", "unplannable", "cache", "bypass"); v != 1 {
		t.Errorf("unplannable plans counted %v", v)
	}
}

// TestPlanNeedsADecideToken: /v1/plan takes the caller tokens /v1/decide
// takes.
func TestPlanNeedsADecideToken(t *testing.T) {
	kit := newAuthKit(t)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, false))
	b := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document"}}`
	for auth, status := range map[string]int{
		"":                                     401,
		"Bearer " + kit.token(t, "gw", "read"): 403,
		"Bearer " + kit.token(t, "gw", ScopeDecide): 200,
	} {
		var hdr []string
		if auth != "" {
			hdr = []string{"Authorization", auth}
		}
		if resp, m := h.post(PlanPath, "application/json", b, hdr...); resp.StatusCode != status {
			t.Errorf("%.20s: %d %v, want %d", auth, resp.StatusCode, m, status)
		}
	}
}
