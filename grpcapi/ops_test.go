package grpcapi_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	vtest "github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/server"
)

func TestHealthReflectionAndMetrics(t *testing.T) {
	h := forwardHarness(t, nil)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(h.conn)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization", "verdict.access.v1.Access"} {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r, err)
		}
	}
	// Without a bundle the server is not ready: NOT_SERVING.
	empty := start(t, harnessOpts{})
	if r, err := healthpb.NewHealthClient(empty.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health without a bundle: %v %v", r, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"envoy.service.auth.v3.Authorization", "verdict.access.v1.Access", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, not %s", names, want)
		}
	}
	_ = stream.CloseSend()

	// Calls are counted beside the HTTP metrics, on the same registry.
	for range 3 {
		h.viaGRPC(ctx, checkRequest(envoyCase{"", "GET", "/health", "api.test", nil}, "HTTP/1.1", false, ""))
	}
	reg := h.srv.Registry()
	if n := metricValue(t, reg, "verdict_grpc_requests_total", map[string]string{"method": "/envoy.service.auth.v3.Authorization/Check", "code": "OK"}); n != 3 {
		t.Errorf("verdict_grpc_requests_total Check OK = %v, want 3", n)
	}
	if n := metricValue(t, reg, "verdict_decisions_total", map[string]string{"endpoint": "ext_authz", "outcome": "allow"}); n != 3 {
		t.Errorf("verdict_decisions_total ext_authz allow = %v, want 3", n)
	}
}

// metricValue is the value of one counter series of reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return 0
}

func TestTLSAndMTLS(t *testing.T) {
	pki := vtest.NewPKI(t, "verdict-grpc")
	_, certFile, keyFile := pki.Issue("server", false)
	clientCert, _, _ := pki.Issue("envoy", true)
	cfg := server.DefaultConfig()
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	ok := checkRequest(envoyCase{"", "GET", "/health", "api.test", nil}, "HTTP/2", false, "")
	fc := forward.DefaultConfig()
	fc.Routes = []forward.Route{{Path: "/health"}}

	t.Run("TLS", func(t *testing.T) {
		h := start(t, harnessOpts{cfg: cfg, forward: fc, files: map[string]string{"fa.verdict.yaml": forwardPolicy},
			clientTLS: &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}})
		resp, err := authv3.NewAuthorizationClient(h.conn).Check(context.Background(), ok)
		if err != nil || resp.GetStatus().GetCode() != 0 {
			t.Fatalf("over TLS: %v %v", resp, err)
		}
		// Plain text on the TLS port never gets an answer.
		plain, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := authv3.NewAuthorizationClient(plain).Check(ctx, ok); status.Code(err) != codes.Unavailable {
			t.Fatal("a plain-text call was answered on the TLS listener")
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		mcfg := cfg
		mcfg.TLS.ClientCAFile = pki.CAFile
		mcfg.GRPCAddr, mcfg.GRPCClientCert = "127.0.0.1:0", true
		h := start(t, harnessOpts{cfg: mcfg, forward: fc, grpcClientCert: true, files: map[string]string{"fa.verdict.yaml": forwardPolicy},
			clientTLS: &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{clientCert}}})
		if resp, err := authv3.NewAuthorizationClient(h.conn).Check(context.Background(), ok); err != nil || resp.GetStatus().GetCode() != 0 {
			t.Fatalf("with a client certificate: %v %v", resp, err)
		}
		noCert, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})))
		if err != nil {
			t.Fatal(err)
		}
		defer noCert.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Refused in the handshake: the call never reaches a service
		// (which would answer UNAUTHENTICATED for the missing token).
		if _, err := accessv1.NewAccessClient(noCert).Evaluation(ctx, &accessv1.EvaluationRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("a client without a certificate: %v, want UNAVAILABLE (handshake refused)", err)
		}
		// HTTP keeps its own rule (no client_cert_routes: none needed).
		if code, _, _ := h.httpDo("GET", "/healthz", "", nil); code != 200 {
			t.Errorf("HTTP /healthz: %d", code)
		}
	})
}

// TestTracing: a Check is a server span continuing the original request's
// trace (Envoy passes its traceparent), the decision's span its child; a
// call's own metadata wins; without a provider nothing is traced.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	fc := forward.DefaultConfig()
	fc.Routes = []forward.Route{{Path: "/health"}}
	h := start(t, harnessOpts{forward: fc, tp: tp, files: map[string]string{"fa.verdict.yaml": forwardPolicy}})
	const trace1 = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := checkRequest(envoyCase{"", "GET", "/health", "api.test", map[string]string{"traceparent": "00-" + trace1 + "-00f067aa0ba902b7-01"}}, "HTTP/2", false, "")
	if got, _ := h.viaGRPC(context.Background(), req); got.status != 200 {
		t.Fatalf("%+v", got)
	}
	spans := exp.GetSpans()
	var server, decide *tracetest.SpanStub
	for i := range spans {
		switch spans[i].Name {
		case "envoy.service.auth.v3.Authorization/Check":
			server = &spans[i]
		case "verdict.decide":
			decide = &spans[i]
		}
	}
	if server == nil || decide == nil {
		t.Fatalf("spans %v", spans)
	}
	if server.SpanContext.TraceID().String() != trace1 || server.Parent.SpanID().String() != "00f067aa0ba902b7" || server.SpanKind != oteltrace.SpanKindServer {
		t.Errorf("server span %v, parent %v", server.SpanContext, server.Parent)
	}
	if decide.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("the decision's span is not the call's child")
	}
	exp.Reset()
	const trace2 = "0af7651916cd43dd8448eb211c80319c"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+trace2+"-b7ad6b7169203331-01")
	h.viaGRPC(ctx, req)
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() != trace2 {
			t.Errorf("span %s in trace %s, want the call's %s", s.Name, s.SpanContext.TraceID(), trace2)
		}
	}
}
