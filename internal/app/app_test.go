package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// notOurs are the goroutines of libraries that outlive any one server:
// fasthttp's worker-pool janitor (it sleeps up to its idle period before it
// sees the pool stopped) and date updater, and the limiter's clock (one per
// process, named as inlined under -race and as itself without).
var notOurs = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
}

// TestMain fails the package if any test leaves a goroutine of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, notOurs...)
}

func TestUnspecifiedAddr(t *testing.T) {
	for addr, want := range map[string]bool{"0.0.0.0:8700": true, "[::]:8700": true, ":8700": true, "127.0.0.1:8700": false, "example.com:80": false, "nonsense": false} {
		if got := unspecifiedAddr(addr); got != want {
			t.Errorf("unspecifiedAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

// devConfig serves bundle in --dev on a free loopback port over a fresh
// data dir.
func devConfig(t *testing.T, bundle string) Config {
	t.Helper()
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dev = true
	cfg.DataDir = t.TempDir()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Bundles.Paths = []string{bundle}
	cfg.Bundles.RequireSignature = new(bool)
	return cfg
}

// TestStartServeClose: an app started from a configuration serves
// decisions, and Close leaves no goroutine of its own running.
func TestStartServeClose(t *testing.T) {
	defer goleak.VerifyNone(t, append(notOurs, goleak.IgnoreCurrent())...)
	cfg := devConfig(t, "../../policies/quickstart")
	cfg.Server.GRPCAddr = "127.0.0.1:0"
	a, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	grpcDecides(t, a.GRPCAddr().String())
	base := "http://" + a.Addr().String()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	resp, err = http.Post(base+"/v1/decide", "application/json", strings.NewReader(
		`{"subject":{"type":"user","id":"ed","properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("decide: %d", resp.StatusCode)
	}
	a.Reload()
	http.DefaultClient.CloseIdleConnections()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done is not closed after Close")
	}
}

// TestFailedStartLeavesNothing: a start that fails half-way (the address
// is taken) stops what it had started: no goroutine, and the data dir is
// free for another app.
func TestFailedStartLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, append(notOurs, goleak.IgnoreCurrent())...)
	first, err := New(devConfig(t, "../../policies/quickstart"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cfg := devConfig(t, "../../policies/quickstart")
	cfg.Server.Addr = first.Addr().String()
	second, _ := New(cfg, Options{})
	if err := second.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("a taken address: %v", err)
	}
	// The gRPC listener starts last: its failure stops the HTTP server
	// that had started.
	cfg.Server.Addr, cfg.Server.GRPCAddr = "127.0.0.1:0", first.Addr().String()
	fourth, _ := New(cfg, Options{})
	if err := fourth.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "server.grpc_addr") {
		t.Fatalf("a taken gRPC address: %v", err)
	}
	cfg.Server.GRPCAddr = ""
	// Its data dir was closed: a third app opens it.
	cfg.Server.Addr = "127.0.0.1:0"
	third, _ := New(cfg, Options{})
	if err := third.Start(context.Background()); err != nil {
		t.Fatalf("the data dir stayed held: %v", err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	http.DefaultClient.CloseIdleConnections()
}

// grpcDecides asks the app's gRPC listener for a decision (--dev: no
// token) and its health, as a client would.
func grpcDecides(t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	props, _ := structpb.NewStruct(map[string]any{"roles": []any{"editor"}})
	r, err := accessv1.NewAccessClient(conn).Evaluation(ctx, &accessv1.EvaluationRequest{
		Subject: &accessv1.Subject{Type: "user", Id: "ed", Properties: props}, Action: &accessv1.Action{Name: "update"},
		Resource: &accessv1.Resource{Type: "document", Id: "42"}})
	if err != nil || !r.GetDecision() {
		t.Fatalf("gRPC evaluation: %v %v", r, err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", h, err)
	}
}
