package bundles

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestPrepareSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	m := NewManager(DefaultConfig(), nil, WithTracerProvider(tp))
	b, err := Load("../policies/rbac-cel", DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Prepare(context.Background(), []*Bundle{b})
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	prep, compile, tests := byName["verdict.bundle.prepare"], byName["verdict.bundle.compile"], byName["verdict.bundle.tests"]
	if len(spans) != 3 || !prep.SpanContext.IsValid() {
		t.Fatalf("spans %v", spans)
	}
	if compile.Parent.SpanID() != prep.SpanContext.SpanID() || tests.Parent.SpanID() != prep.SpanContext.SpanID() {
		t.Fatal("compile and tests are not children of prepare")
	}
	if !hasAttr(prep.Attributes, attribute.String("verdict.revision", a.Snapshot.Revision())) ||
		!hasAttr(tests.Attributes, attribute.Int("verdict.tests.passed", a.Tests.Passed)) || a.Tests.Passed == 0 {
		t.Fatalf("prepare %v, tests %v", prep.Attributes, tests.Attributes)
	}

	// A bundle that does not compile: prepare and compile fail.
	exp.Reset()
	bad, err := FromFiles(map[string][]byte{"x.verdict.yaml": []byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nrules:\n  - id: r\n    effect: allow\n    condition: 'nope('\n")}, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prepare(context.Background(), []*Bundle{bad}); err == nil {
		t.Fatal("a broken bundle was prepared")
	}
	for _, s := range exp.GetSpans() {
		if s.Status.Code != codes.Error {
			t.Fatalf("span %s of a rejected bundle is not failed", s.Name)
		}
	}
	if n := len(exp.GetSpans()); n != 2 {
		t.Fatalf("%d spans for a bundle that does not compile, want prepare and compile", n)
	}
}

func hasAttr(kvs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, kv := range kvs {
		if kv == want {
			return true
		}
	}
	return false
}
