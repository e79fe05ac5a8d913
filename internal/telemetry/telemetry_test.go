package telemetry

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/verdictpdp/verdict/internal/testutil"
)

func TestValidate(t *testing.T) {
	ca := testutil.NewPKI(t, "ca").CAFile
	noCert := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(noCert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Traces)
		want string
	}{
		{"default", func(*Traces) {}, ""},
		{"otlp-http url", func(c *Traces) { c.Exporter, c.Endpoint = ExporterOTLPHTTP, "https://collector:4318/v1/traces" }, ""},
		{"otlp-grpc host", func(c *Traces) { c.Exporter, c.Endpoint = ExporterOTLPGRPC, "collector:4317" }, ""},
		{"unknown exporter", func(c *Traces) { c.Exporter = "jaeger" }, "traces.exporter"},
		{"empty exporter", func(c *Traces) { c.Exporter = "" }, "traces.exporter"},
		{"ratio above 1", func(c *Traces) { c.SampleRatio = 1.5 }, "sample_ratio"},
		{"ratio below 0", func(c *Traces) { c.SampleRatio = -0.1 }, "sample_ratio"},
		{"no service name", func(c *Traces) { c.ServiceName = " " }, "service_name"},
		{"bad scheme", func(c *Traces) { c.Endpoint = "ftp://collector" }, "endpoint"},
		{"ca_file https url", func(c *Traces) { c.Exporter, c.Endpoint, c.CAFile = ExporterOTLPHTTP, "https://collector:4318", ca }, ""},
		{"ca_file grpc host", func(c *Traces) { c.Exporter, c.Endpoint, c.CAFile = ExporterOTLPGRPC, "collector:4317", ca }, ""},
		{"ca_file insecure", func(c *Traces) { c.Exporter, c.Insecure, c.CAFile = ExporterOTLPGRPC, true, ca }, "traces.ca_file: spans go without TLS"},
		{"ca_file http url", func(c *Traces) { c.Exporter, c.Endpoint, c.CAFile = ExporterOTLPHTTP, "http://collector:4318", ca }, "traces.ca_file: spans go without TLS"},
		{"ca_file missing", func(c *Traces) { c.Exporter, c.CAFile = ExporterOTLPHTTP, noCert+".nope" }, "traces.ca_file: open "},
		{"ca_file no certificate", func(c *Traces) { c.Exporter, c.CAFile = ExporterOTLPHTTP, noCert }, "traces.ca_file: " + noCert + " holds no PEM CERTIFICATE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c.Traces)
			err := c.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	c := Default()
	c.Traces.Exporter, c.Traces.SampleRatio = "x", 2
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "exporter") || !strings.Contains(err.Error(), "sample_ratio") {
		t.Fatalf("every problem is reported: %v", err)
	}
	if _, _, err := NewTracerProvider(t.Context(), c); err == nil {
		t.Fatal("NewTracerProvider accepted an invalid config")
	}
}

func TestNoneIsNoop(t *testing.T) {
	tp, shutdown, err := NewTracerProvider(t.Context(), Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("exporter none gave %T, want a no-op provider", tp)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSamplerFollowsParent(t *testing.T) {
	// Ratio 0 keeps no new trace, but a sampled parent's child is kept.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(Sampler(0)))
	_, root := tp.Tracer("t").Start(t.Context(), "root")
	if root.SpanContext().IsSampled() {
		t.Fatal("ratio 0 sampled a new trace")
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
		TraceFlags: trace.FlagsSampled, Remote: true})
	_, child := tp.Tracer("t").Start(trace.ContextWithRemoteSpanContext(t.Context(), parent), "child")
	if !child.SpanContext().IsSampled() {
		t.Fatal("a sampled caller's trace was not continued")
	}
}

// endSpan makes one span with tp and flushes it.
func endSpan(t *testing.T, tp trace.TracerProvider, shutdown func(context.Context) error) {
	t.Helper()
	_, span := tp.Tracer("test").Start(t.Context(), "probe")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestOTLPHTTPExports sends a span to a real HTTP listener that decodes the
// OTLP request.
func TestOTLPHTTPExports(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *coltrace.ExportTraceServiceRequest, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := &coltrace.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(raw, req) != nil {
			http.Error(w, "bad export", 400)
			return
		}
		select {
		case got <- req:
		default:
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	cfg := Default()
	cfg.Traces.Exporter, cfg.Traces.Endpoint, cfg.Traces.ServiceName = ExporterOTLPHTTP, "http://"+ln.Addr().String(), "verdict-test"
	tp, shutdown, err := NewTracerProvider(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	endSpan(t, tp, shutdown)
	checkExport(t, received(t, got))
}

func received(t *testing.T, got chan *coltrace.ExportTraceServiceRequest) *coltrace.ExportTraceServiceRequest {
	t.Helper()
	select {
	case req := <-got:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("the collector received no span")
		return nil
	}
}

func checkExport(t *testing.T, req *coltrace.ExportTraceServiceRequest) {
	t.Helper()
	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "probe" {
		t.Fatalf("export %v", req)
	}
	var service string
	for _, kv := range rs[0].GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" {
			service = kv.GetValue().GetStringValue()
		}
	}
	if service != "verdict-test" {
		t.Fatalf("service.name %q", service)
	}
}

type collector struct {
	coltrace.UnimplementedTraceServiceServer
	got chan *coltrace.ExportTraceServiceRequest
	n   atomic.Int32
}

func (c *collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	if c.n.Add(1) == 1 {
		c.got <- req
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// TestOTLPGRPCExports sends a span to a real gRPC OTLP collector.
func TestOTLPGRPCExports(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	col := &collector{got: make(chan *coltrace.ExportTraceServiceRequest, 1)}
	coltrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	cfg := Default()
	cfg.Traces.Exporter, cfg.Traces.Endpoint, cfg.Traces.Insecure, cfg.Traces.ServiceName = ExporterOTLPGRPC, ln.Addr().String(), true, "verdict-test"
	tp, shutdown, err := NewTracerProvider(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	endSpan(t, tp, shutdown)
	checkExport(t, received(t, col.got))
}

func TestHTTPTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":            "http://c:4318/v1/traces",
		"https://c:4318/":          "https://c:4318/v1/traces",
		"https://c/otlp/v1/traces": "https://c/otlp/v1/traces",
	} {
		if got := httpTracesURL(in); got != want {
			t.Errorf("httpTracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStdoutBuilds(t *testing.T) {
	cfg := Default()
	cfg.Traces.Exporter = ExporterStdout
	tp, shutdown, err := NewTracerProvider(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		t.Fatal("stdout gave a no-op provider")
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// tlsCollector is an OTLP/HTTP receiver on HTTPS (httptest's self-signed
// certificate) that counts the export requests it accepts; its
// certificate is written as PEM to certFile.
type tlsCollector struct {
	srv      *httptest.Server
	certFile string
	requests atomic.Int32
	bytes    atomic.Int64
}

func newTLSCollector(t *testing.T) *tlsCollector {
	t.Helper()
	c := &tlsCollector{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "not an OTLP traces export", http.StatusNotFound)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		c.bytes.Add(n)
		c.requests.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	c.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	c.certFile = writeCert(t, "collector.pem", c.srv.Certificate().Raw)
	return c
}

func writeCert(t *testing.T, name string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flushSpan makes one span with a provider of cfg and pushes it out with
// ForceFlush, whose error it returns; the provider is shut down after.
func flushSpan(t *testing.T, cfg Config) error {
	t.Helper()
	tp, shutdown, err := NewTracerProvider(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.WithoutCancel(t.Context())) }()
	_, span := tp.Tracer("test").Start(t.Context(), "probe")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return tp.(*sdktrace.TracerProvider).ForceFlush(ctx)
}

// TestOTLPHTTPCAFile: a collector on HTTPS with a certificate no system
// root vouches for receives spans only when ca_file holds its
// certificate; without it, or with another CA, the export fails on the
// certificate and nothing arrives.
func TestOTLPHTTPCAFile(t *testing.T) {
	col := newTLSCollector(t)
	other := testutil.NewPKI(t, "other")
	cfg := func(caFile string) Config {
		c := Default()
		c.Traces.Exporter, c.Traces.Endpoint, c.Traces.CAFile = ExporterOTLPHTTP, col.srv.URL, caFile
		return c
	}

	for _, tt := range []struct{ name, caFile string }{{"system roots", ""}, {"another CA", other.CAFile}} {
		err := flushSpan(t, cfg(tt.caFile))
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("%s: ForceFlush = %v, want an unknown authority error", tt.name, err)
		}
		if n := col.requests.Load(); n != 0 {
			t.Fatalf("%s: the collector received %d exports", tt.name, n)
		}
	}

	if err := flushSpan(t, cfg(col.certFile)); err != nil {
		t.Fatalf("ForceFlush with the collector's certificate as ca_file: %v", err)
	}
	if n, b := col.requests.Load(), col.bytes.Load(); n != 1 || b == 0 {
		t.Fatalf("the collector received %d exports of %d bytes, want 1 non-empty", n, b)
	}
}

// TestOTLPGRPCCAFile sends a span over TLS to a gRPC OTLP collector whose
// certificate a private CA signed, given as ca_file.
func TestOTLPGRPCCAFile(t *testing.T) {
	pki := testutil.NewPKI(t, "collector")
	cert, _, _ := pki.Issue("127.0.0.1", false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	col := &collector{got: make(chan *coltrace.ExportTraceServiceRequest, 1)}
	coltrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	cfg := Default()
	cfg.Traces.Exporter, cfg.Traces.Endpoint, cfg.Traces.CAFile, cfg.Traces.ServiceName = ExporterOTLPGRPC, ln.Addr().String(), pki.CAFile, "verdict-test"
	if err := flushSpan(t, cfg); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	checkExport(t, received(t, col.got))
}
