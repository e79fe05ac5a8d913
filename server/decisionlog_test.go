package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/decisionlog"
)

// runDecisionLog starts a real decision log writing to a buffer; stop ends
// it (writing what is buffered) and returns the lines.
func runDecisionLog(t *testing.T, mutate func(*decisionlog.Config)) (*decisionlog.Logger, func() []map[string]any) {
	t.Helper()
	cfg := decisionlog.Default()
	if mutate != nil {
		mutate(&cfg)
	}
	var buf bytes.Buffer
	l, err := decisionlog.New(cfg, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	var once sync.Once
	stop := func() []map[string]any {
		once.Do(func() { cancel(); <-done })
		var lines []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("decision log line %q: %v", sc.Text(), err)
			}
			lines = append(lines, m)
		}
		return lines
	}
	t.Cleanup(func() { stop() })
	return l, stop
}

func TestDecisionLogRecordsEveryEndpoint(t *testing.T) {
	dl, stop := runDecisionLog(t, func(c *decisionlog.Config) { c.Redact = []string{"/resource/properties/owner"} })
	h, kit := forwardHarness(t, nil, WithDecisionLog(dl))
	caller := "Bearer " + kit.token(t, "gw", ScopeDecide)
	member := "Bearer " + mustIssue(t, kit, "alice", map[string]any{"roles": []string{"member"}, "email": "a@example.com"})

	ids := map[string]string{}
	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "Authorization", caller, "X-Request-Id", "rid-decide")
	if resp.StatusCode != 200 {
		t.Fatalf("decide: %d %v", resp.StatusCode, m)
	}
	ids["decide"] = m["context"].(map[string]any)["decision_id"].(string)
	resp, m = h.post("/access/v1/evaluation", "application/json", body("bob", "read", "bob"), "Authorization", caller, "X-Request-Id", "rid-authzen")
	if resp.StatusCode != 200 {
		t.Fatalf("authzen: %d %v", resp.StatusCode, m)
	}
	ids["authzen"] = resp.Header.Get(decisionIDHeader)
	resp, m = h.forward("GET", "/v1/forward-auth", "X-Original-URI", "/todos/42", "X-Original-Method", "GET",
		"X-Forwarded-Host", "api.test", "Authorization", member, "User-Agent", "ua/1", "X-Request-Id", "rid-fa")
	if resp.StatusCode != 200 {
		t.Fatalf("forward-auth: %d %v", resp.StatusCode, m)
	}
	ids["forward_auth"] = resp.Header.Get(decisionIDHeader)

	lines := stop()
	if len(lines) != 3 {
		t.Fatalf("%d records, want 3: %v", len(lines), lines)
	}
	rids := map[string]string{"decide": "rid-decide", "authzen": "rid-authzen", "forward_auth": "rid-fa"}
	for _, ln := range lines {
		e, _ := ln["endpoint"].(string)
		if ids[e] == "" || ln["decision_id"] != ids[e] {
			t.Errorf("record %v: endpoint %q, want decision id %q from the response", ln, e, ids[e])
		}
		if ln["request_id"] != rids[e] || ln["revision"] != "fa1" {
			t.Errorf("record of %s: request_id %v, revision %v", e, ln["request_id"], ln["revision"])
		}
		in := ln["input"].(map[string]any)
		if props := in["resource"].(map[string]any)["properties"].(map[string]any); props["owner"] != nil {
			t.Errorf("record of %s keeps the redacted owner: %v", e, props)
		}
		if e == "forward_auth" {
			if ln["decision"] != true {
				t.Errorf("forward-auth record %v, want the allow", ln)
			}
			if tok := in["token"].(map[string]any); tok["sub"] != "alice" || tok["email"] != nil || tok["roles"] != nil {
				t.Errorf("forward-auth token %v: want sub only of the allowed claims", tok)
			}
		}
	}
}

func TestPreviewDecidesLoggedDecisions(t *testing.T) {
	dl, stop := runDecisionLog(t, nil)
	h := newHarness(t, WithDecisionLog(dl), WithDecisionHistory(dl))
	if resp, m := h.post("/v1/decide", "application/json", body("alice", "update", "alice")); resp.StatusCode != 200 {
		t.Fatalf("decide: %d %v", resp.StatusCode, m)
	}
	stop() // the record is processed: it is in the history
	archive := tgz(t, map[string]string{"docs.verdict.yaml": previewPolicyV2})
	ct, b := multipartPreview(t, archive, "")
	resp, m := h.post("/v1/bundles/preview", ct, b)
	if resp.StatusCode != 200 {
		t.Fatalf("preview: %d %v", resp.StatusCode, m)
	}
	r := decodeReport(t, m)
	var logged int
	for _, it := range r.Items {
		if it.Source == bundles.SourceLogged {
			logged++
			if !strings.HasPrefix(it.Name, "logged[") || !it.Changed {
				t.Errorf("logged item %+v: want logged[0], changed by v2", it)
			}
		}
	}
	if logged != 1 {
		t.Fatalf("%d items from logged decisions, want 1: %+v", logged, r.Items)
	}
}

func TestDecisionLogMarksCacheHits(t *testing.T) {
	dl, stop := runDecisionLog(t, nil)
	h := newHarness(t, WithDecisionLog(dl))
	for range 2 {
		if resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice")); resp.StatusCode != 200 {
			t.Fatalf("decide: %d %v", resp.StatusCode, m)
		}
	}
	lines := stop()
	if len(lines) != 2 || lines[0]["cache_hit"] != false || lines[1]["cache_hit"] != true {
		t.Fatalf("records %v: want a miss, then a hit", lines)
	}
	if d, ok := lines[0]["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms = %v", lines[0]["duration_ms"])
	}
}
