package server

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

// scrape is one GET /metrics: the raw text and its parsed families.
type scrape struct {
	raw  string
	fams map[string]*dto.MetricFamily
}

func (h *harness) scrape(t *testing.T) scrape {
	t.Helper()
	resp, err := http.Get(h.url + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("GET /metrics is not the Prometheus text format: %v\n%s", err, raw)
	}
	return scrape{raw: string(raw), fams: fams}
}

// value is the value of the series name{labels} (label pairs), and whether
// it exists; a histogram's value is its sample count.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f, ok := s.fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// want fails unless name{labels} is v.
func (s scrape) want(t *testing.T, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

// TestMetricsAfterRequests: after 2 allows and 1 deny the decision,
// reason, cache, HTTP and bundle series say so; routes are labelled by
// template, and no id of a path or subject ever becomes a label.
func TestMetricsAfterRequests(t *testing.T) {
	h := newHarness(t)
	for i, c := range []struct {
		user  string
		allow bool
	}{{"alice", true}, {"alice", true}, {"mallory-7731", false}} {
		_, m := h.post("/v1/decide", "application/json", body(c.user, "read", "alice"))
		if allow, _ := decision(t, m); allow != c.allow {
			t.Fatalf("%s: %v", c.user, m)
		}
		if i == 0 {
			h.srv.dec.WaitCache() // the second alice is a hit
		}
	}
	// A batch with one invalid item: an error, with the invalid-input reason.
	h.post(authzenEvaluations, "application/json", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},`+
		`"evaluations":[{"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}},{"resource":{"type":"document"}}]}`)
	h.get("/v1/bundles/rev-secret-4242") // 401: no verifier
	h.get("/no/such/route/id-8080")      // 404
	h.do(h.request(http.MethodPut, "/healthz", "", ""))

	s := h.scrape(t)
	s.want(t, 2, "verdict_decisions_total", "endpoint", "decide", "outcome", "allow")
	s.want(t, 1, "verdict_decisions_total", "endpoint", "decide", "outcome", "deny")
	s.want(t, 0, "verdict_decisions_total", "endpoint", "decide", "outcome", "error")
	s.want(t, 1, "verdict_decisions_total", "endpoint", "authzen", "outcome", "allow")
	s.want(t, 1, "verdict_decisions_total", "endpoint", "authzen", "outcome", "error")
	s.want(t, 1, "verdict_decision_reasons_total", "reason", "verdict:no-matching-allow")
	s.want(t, 1, "verdict_decision_reasons_total", "reason", pdp.ReasonInvalidInput)
	s.want(t, 0, "verdict_decision_reasons_total", "reason", "verdict:timeout")
	s.want(t, 3, "verdict_http_requests_total", "route", "/v1/decide", "method", "POST", "code", "200")
	s.want(t, 3, "verdict_http_request_duration_seconds", "route", "/v1/decide", "method", "POST")
	s.want(t, 1, "verdict_http_requests_total", "route", "/v1/bundles/:revision", "method", "GET", "code", "401")
	s.want(t, 1, "verdict_http_requests_total", "route", unmatchedRoute, "method", "GET", "code", "404")
	s.want(t, 1, "verdict_http_requests_total", "route", "/healthz", "method", "PUT", "code", "405")
	s.want(t, 1, "verdict_caller_auth_failures_total", "code", CodeUnauthorized)
	hits, misses := h.srv.dec.CacheStats()
	if hits < 1 {
		t.Errorf("the second alice was not a cache hit (%d hits)", hits)
	}
	s.want(t, float64(hits), "verdict_decision_cache_hits_total")
	s.want(t, float64(misses), "verdict_decision_cache_misses_total")
	// Only misses were evaluated by the engine.
	s.want(t, float64(misses), "verdict_decision_evaluation_seconds")
	s.want(t, 1, "verdict_bundle_generation")
	s.want(t, 1, "verdict_bundle_info", "revision", "v1")
	s.want(t, 1, "verdict_bundle_activations_total")
	s.want(t, 0, "verdict_bundle_rejections_total", "stage", bundles.StageCompile)
	s.want(t, 0, "verdict_panics_total")
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "promhttp_metric_handler_errors_total"} {
		if _, ok := s.fams[name]; !ok {
			t.Errorf("no %s (Go runtime and process collectors)", name)
		}
	}
	for _, raw := range []string{"rev-secret-4242", "id-8080", "mallory-7731", "/no/such"} {
		if strings.Contains(s.raw, raw) {
			t.Errorf("a raw path or id %q is in the metrics", raw)
		}
	}
	if _, ok := s.fams["verdict_replica_healthy"]; ok {
		t.Error("replica series without a replica")
	}
}

// TestMetricsOff: server.metrics false serves no /metrics (404) and still
// decides.
func TestMetricsOff(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	cfg := DefaultConfig()
	cfg.Metrics = false
	h := start(t, cfg, mgr)
	if _, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice")); m["decision"] != true {
		t.Fatalf("decide: %v", m)
	}
	resp, m := h.get(MetricsPath)
	if resp.StatusCode != 404 || errCode(m) != CodeNotFound {
		t.Fatalf("metrics off: %d %v", resp.StatusCode, m)
	}
	if DefaultConfig().Metrics != true {
		t.Fatal("metrics are off by default")
	}
}

// panicky is a bundle source that panics while armed.
type panicky struct {
	Bundles
	armed atomic.Bool
}

func (p *panicky) Active() *bundles.Active {
	if p.armed.Load() {
		panic("boom")
	}
	return p.Bundles.Active()
}

// TestPanicIsA500AndAMetric: a recovered panic answers 500 and counts in
// verdict_panics_total and in the HTTP series with its code.
func TestPanicIsA500AndAMetric(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	p := &panicky{Bundles: mgr}
	srv, err := New(DefaultConfig(), p, nil, WithAuth(nil, true))
	if err != nil {
		t.Fatal(err)
	}
	h := serveOn(t, srv)
	p.armed.Store(true)
	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	p.armed.Store(false)
	if resp.StatusCode != 500 || errCode(m) != CodeInternal {
		t.Fatalf("panic: %d %v", resp.StatusCode, m)
	}
	s := h.scrape(t)
	s.want(t, 1, "verdict_panics_total")
	s.want(t, 1, "verdict_http_requests_total", "route", "/v1/decide", "method", "POST", "code", "500")
}

// TestTokenAndCallerMetrics: issued tokens by grant, refused token requests
// by OAuth code (the other token routes are not counted), caller
// authentication failures by code, and the verification cache.
func TestTokenAndCallerMetrics(t *testing.T) {
	kit := newAuthKit(t)
	h := newHarness(t, WithTokens(&fakeTokens{}, "http://x"), WithAuth(kit.verifier, false))
	const form = "application/x-www-form-urlencoded"
	formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=right")
	formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=wrong")
	formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=down")
	h.post("/oauth2/revoke", form, "token=x&client_id=gw&client_secret=wrong")
	tok := "Bearer " + kit.token(t, "gw", ScopeDecide)
	for range 2 {
		h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "Authorization", tok)
	}
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "Authorization", "Bearer "+kit.token(t, "gw", ScopeBundlesRead))
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "Authorization", "Bearer not-a-jwt")

	s := h.scrape(t)
	s.want(t, 1, "verdict_tokens_issued_total", "grant", oauth.GrantClientCredentials)
	s.want(t, 1, "verdict_token_failures_total", "reason", oauth.OAuthInvalidClient)
	s.want(t, 1, "verdict_token_failures_total", "reason", oauthUnavailable)
	s.want(t, 0, "verdict_token_failures_total", "reason", labelOther)
	s.want(t, 2, "verdict_caller_auth_failures_total", "code", CodeUnauthorized)
	s.want(t, 1, "verdict_caller_auth_failures_total", "code", CodeForbidden)
	s.want(t, 2, "verdict_decisions_total", "endpoint", "decide", "outcome", "allow")
	hits, misses := kit.verifier.CacheStats()
	if misses == 0 {
		t.Fatal("the verifier counted no verification")
	}
	s.want(t, float64(hits), "verdict_token_cache_hits_total")
	s.want(t, float64(misses), "verdict_token_cache_misses_total")
}

// TestBundleMetrics: pushes rejected at each stage and activations are
// counted, and bundle_info follows the active revision in one series.
func TestBundleMetrics(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	if code, m := k.push(t, bundleArchive(t, "one", goodFiles(policyV1)), ""); code != 201 {
		t.Fatalf("push: %d %v", code, m)
	}
	k.push(t, nil, "") // unreadable
	k.push(t, bundleArchive(t, "bad", map[string]string{"a.verdict.yaml": strings.Replace(policyV1, "variables.is_owner", "variables.is_owner &&", 1)}), "")
	k.push(t, bundleArchive(t, "bad2", map[string]string{"docs.verdict.yaml": policyV1, "docs_test.yaml": strings.Replace(ownerTests, "expect: false", "expect: true", 1)}), "")
	if code, m := k.push(t, bundleArchive(t, "two", goodFiles(policyV2)), ""); code != 201 {
		t.Fatalf("push: %d %v", code, m)
	}
	s := k.scrape(t)
	s.want(t, 2, "verdict_bundle_activations_total")
	s.want(t, 2, "verdict_bundle_generation")
	s.want(t, 1, "verdict_bundle_rejections_total", "stage", bundles.StageRead)
	s.want(t, 1, "verdict_bundle_rejections_total", "stage", bundles.StageCompile)
	s.want(t, 1, "verdict_bundle_rejections_total", "stage", bundles.StageTests)
	s.want(t, 0, "verdict_bundle_rejections_total", "stage", bundles.StageSignature)
	s.want(t, 1, "verdict_bundle_info", "revision", "two")
	if n := len(s.fams["verdict_bundle_info"].GetMetric()); n != 1 {
		t.Errorf("verdict_bundle_info has %d series, want 1", n)
	}
}

// repairingReplica is a replica status that also counts repairs.
type repairingReplica struct {
	replicaStatus
	repairs uint64
}

func (r repairingReplica) Repairs() uint64 { return r.repairs }

type mirrorCount uint64

func (m mirrorCount) MirrorAnswers() uint64 { return uint64(m) }

// TestReplicaMetrics: a replica's generation, staleness, health, repairs
// and mirror answers are read at scrape time.
func TestReplicaMetrics(t *testing.T) {
	r := repairingReplica{replicaStatus{healthy: false, since: 90 * time.Second, gen: 17}, 3}
	h := newHarness(t, WithReplica(r), WithMirrorAnswers(mirrorCount(5)))
	s := h.scrape(t)
	s.want(t, 17, "verdict_replica_generation")
	s.want(t, 90, "verdict_replica_seconds_since_sync")
	s.want(t, 0, "verdict_replica_healthy")
	s.want(t, 3, "verdict_replica_repairs_total")
	s.want(t, 5, "verdict_replica_mirror_answers_total")
}

// TestForwardAuthAndSearchMetrics: forward-auth decisions and every search
// candidate are counted under their endpoints.
func TestForwardAuthAndSearchMetrics(t *testing.T) {
	h, _ := forwardHarness(t, nil)
	if resp, m := h.forward("GET", "/v1/forward-auth", "X-Original-URI", "/health"); resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	s := h.scrape(t)
	s.want(t, 1, "verdict_decisions_total", "endpoint", "forward_auth", "outcome", "allow")
	s.want(t, 1, "verdict_http_requests_total", "route", ForwardAuthPath, "method", "GET", "code", "200")

	h = recordsHarness(t, DefaultConfig())
	if resp, m := h.post(authzenSearchSubject, "application/json", eval(`{"type":"user"}`, read, rec1)); resp.StatusCode != 200 {
		t.Fatalf("search: %d %v", resp.StatusCode, m)
	}
	h.scrape(t).want(t, 5, "verdict_decisions_total", "endpoint", "search", "outcome", "allow")
}
