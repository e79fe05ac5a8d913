package server

import (
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// traced is a harness whose server exports every span, synchronously, to
// the returned in-memory exporter.
func traced(t *testing.T, opts ...Option) (*harness, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return newHarness(t, append([]Option{WithTracerProvider(tp)}, opts...)...), exp
}

func spansNamed(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// one is the only span named name, or a failure.
func one(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	got := spansNamed(spans, name)
	if len(got) != 1 {
		t.Fatalf("%d spans named %q, want 1; all: %v", len(got), name, names(spans))
	}
	return got[0]
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func TestTraceDecideSpans(t *testing.T) {
	h, exp := traced(t)
	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "X-Request-ID", "req-7")
	if resp.StatusCode != 200 || m["decision"] != true {
		t.Fatalf("decide: %d %v", resp.StatusCode, m)
	}
	spans := exp.GetSpans()
	srv := one(t, spans, "/v1/decide")
	if srv.SpanKind != trace.SpanKindServer {
		t.Fatalf("server span kind %v", srv.SpanKind)
	}
	a := attrs(srv)
	if a[attrHTTPMethod].AsString() != "POST" || a[attrHTTPRoute].AsString() != "/v1/decide" ||
		a[attrHTTPStatus].AsInt64() != 200 || a[attrRequestID].AsString() != "req-7" {
		t.Fatalf("server span attributes %v", srv.Attributes)
	}
	dec := one(t, spans, spanDecide)
	if dec.Parent.SpanID() != srv.SpanContext.SpanID() || dec.SpanContext.TraceID() != srv.SpanContext.TraceID() {
		t.Fatalf("decide span's parent %v, want the server span %v", dec.Parent.SpanID(), srv.SpanContext.SpanID())
	}
	d := attrs(dec)
	want := map[attribute.Key]string{attrRevision: "v1", attrOutcome: "allow", attrEndpoint: "decide", attrCache: string(pdp.CacheMiss)}
	for k, v := range want {
		if d[k].AsString() != v {
			t.Fatalf("decide span %s = %q, want %q (all: %v)", k, d[k].AsString(), v, dec.Attributes)
		}
	}
	if _, ok := d[attrReason]; ok {
		t.Fatalf("an allow by a policy rule carries no Verdict reason: %v", dec.Attributes)
	}

	// The same input again is a cache hit.
	exp.Reset()
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	if got := attrs(one(t, exp.GetSpans(), spanDecide))[attrCache].AsString(); got != string(pdp.CacheHit) {
		t.Fatalf("second decide: cache %q, want hit", got)
	}
	// Explain bypasses the cache.
	exp.Reset()
	h.post("/v1/decide", "application/json", `{"explain":true,`+body("bob", "read", "alice")[1:])
	d = attrs(one(t, exp.GetSpans(), spanDecide))
	if d[attrCache].AsString() != string(pdp.CacheBypass) || d[attrOutcome].AsString() != "deny" || d[attrReason].AsString() != engine.ReasonNoMatch {
		t.Fatalf("explained deny: %v", d)
	}
}

func TestTraceNoActiveBundleIsAnErrorSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithTracerProvider(tp))
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	dec := one(t, exp.GetSpans(), spanDecide)
	if d := attrs(dec); d[attrOutcome].AsString() != "error" || d[attrReason].AsString() != "verdict:no-policy" || dec.Status.Code != codes.Error {
		t.Fatalf("no bundle: %v %v", dec.Attributes, dec.Status)
	}
}

func TestTraceContinuesTraceparent(t *testing.T) {
	h, exp := traced(t)
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"),
		"traceparent", "00-"+traceID+"-"+spanID+"-01", "tracestate", "gw=abc")
	srv := one(t, exp.GetSpans(), "/v1/decide")
	if srv.SpanContext.TraceID().String() != traceID || srv.Parent.SpanID().String() != spanID || !srv.Parent.IsRemote() {
		t.Fatalf("server span trace %s parent %s remote %v; want trace %s parent %s", srv.SpanContext.TraceID(),
			srv.Parent.SpanID(), srv.Parent.IsRemote(), traceID, spanID)
	}
	if got := srv.SpanContext.TraceState().Get("gw"); got != "abc" {
		t.Fatalf("tracestate gw=%q, want abc", got)
	}
	// A malformed traceparent starts a new trace.
	exp.Reset()
	h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "traceparent", "00-zz-"+spanID+"-01")
	if srv := one(t, exp.GetSpans(), "/v1/decide"); srv.Parent.IsValid() {
		t.Fatalf("a malformed traceparent became the parent: %v", srv.Parent)
	}
}

func TestTraceBatchSpanPerItem(t *testing.T) {
	h, exp := traced(t)
	b := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[` +
		`{"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}},` +
		`{"resource":{"type":"document","id":"2","properties":{"owner":"bob"}}},` +
		`{"resource":{"type":"document","id":"3","properties":{"owner":"alice"}}}]}`
	if resp, m := h.post("/v1/decide", "application/json", b); resp.StatusCode != 200 {
		t.Fatalf("batch: %d %v", resp.StatusCode, m)
	}
	spans := exp.GetSpans()
	srv := one(t, spans, "/v1/decide")
	decs := spansNamed(spans, spanDecide)
	if len(decs) != 3 {
		t.Fatalf("%d decide spans for 3 items", len(decs))
	}
	var outcomes []string
	for _, d := range decs {
		if d.Parent.SpanID() != srv.SpanContext.SpanID() {
			t.Fatalf("a batch item's span is not a child of the server span")
		}
		outcomes = append(outcomes, attrs(d)[attrOutcome].AsString())
	}
	if strings.Join(outcomes, ",") != "allow,deny,allow" {
		t.Fatalf("item outcomes %v", outcomes)
	}
}

func TestTraceAttributesHoldNothingSensitive(t *testing.T) {
	h, exp := traced(t)
	secrets := []string{"subject-id-s3cr3t", "resource-owner-s3cr3t", "bearer-t0ken-s3cr3t", "doc-id-s3cr3t", "ctx-value-s3cr3t"}
	b := fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":"read"},"resource":{"type":"document","id":%q,"properties":{"owner":%q}},"context":{"ip":%q}}`,
		secrets[0], secrets[3], secrets[1], secrets[4])
	h.post("/v1/decide", "application/json", b, "Authorization", "Bearer "+secrets[2])
	h.post("/access/v1/evaluation", "application/json", b, "Authorization", "Bearer "+secrets[2])
	h.post("/v1/decide?x="+secrets[3], "application/json", b)
	spans := exp.GetSpans()
	if len(spansNamed(spans, spanDecide)) != 3 {
		t.Fatalf("spans %v", names(spans))
	}
	for _, s := range spans {
		all := s.Name + " " + s.Status.Description
		for _, kv := range s.Attributes {
			all += " " + string(kv.Key) + "=" + kv.Value.Emit()
		}
		for _, sec := range secrets {
			if strings.Contains(all, sec) {
				t.Fatalf("span %q holds %q: %s", s.Name, sec, all)
			}
		}
	}
}

func TestTraceRoutesByTemplate(t *testing.T) {
	h, exp := traced(t)
	h.get("/v1/bundles/some-revision-id")
	h.get("/no/such/path")
	spans := exp.GetSpans()
	if len(spansNamed(spans, "/v1/bundles/:revision")) != 1 || len(spansNamed(spans, unmatchedRoute)) != 1 {
		t.Fatalf("spans %v, want /v1/bundles/:revision and unmatched", names(spans))
	}
	if code := attrs(one(t, spans, unmatchedRoute))[attrHTTPStatus].AsInt64(); code != 404 {
		t.Fatalf("unmatched status %d", code)
	}
}

func TestTraceTokenIssuance(t *testing.T) {
	h, exp := traced(t, WithTokens(&fakeTokens{}, "http://verdict.test/"))
	const form = "application/x-www-form-urlencoded"
	formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=right")
	spans := exp.GetSpans()
	tok := one(t, spans, spanToken)
	if tok.Parent.SpanID() != one(t, spans, "/oauth2/token").SpanContext.SpanID() {
		t.Fatal("the token span is not a child of the server span")
	}
	if g := attrs(tok)[attrGrantType].AsString(); g != "client_credentials" || tok.Status.Code == codes.Error {
		t.Fatalf("token span: grant %q status %v", g, tok.Status)
	}
	exp.Reset()
	formPost(t, h, form, "grant_type=made-up-grant&client_id=gw&client_secret=wrong")
	tok = one(t, exp.GetSpans(), spanToken)
	if g := attrs(tok)[attrGrantType].AsString(); g != labelOther || tok.Status.Code != codes.Error {
		t.Fatalf("refused token span: grant %q status %v", g, tok.Status)
	}
}

func TestTraceOffWithNoopProvider(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		h := newHarness(t, WithTracerProvider(tp))
		if h.srv.tracer != nil {
			t.Fatalf("%T: tracing is on", tp)
		}
		if resp, _ := h.post("/v1/decide", "application/json", body("alice", "read", "alice")); resp.StatusCode != 200 {
			t.Fatalf("decide with tracing off: %d", resp.StatusCode)
		}
	}
}
