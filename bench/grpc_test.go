package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/valyala/fasthttp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi"
	"github.com/verdictpdp/verdict/oauth/oauthtest"
	"github.com/verdictpdp/verdict/server"
)

const forwardBundle = "testdata/forward"

// gateway is one Verdict serving forward-auth over HTTP and ext_authz over
// gRPC, with the same route table, bundle and decision service, on real
// loopback listeners; token is an end user's Bearer token.
type gateway struct {
	httpURL string
	conns   []*grpc.ClientConn
	token   string
}

// newGateway starts it; cached turns the decision cache on.
func newGateway(tb testing.TB, cached bool) *gateway {
	tb.Helper()
	iss, v := oauthtest.Tokens(tb, noRevocations{})
	at, err := iss.Issue("alice", "alice", nil, map[string]any{"roles": []any{"member"}})
	if err != nil {
		tb.Fatal(err)
	}
	fc := forward.DefaultConfig()
	fc.Routes = []forward.Route{{Path: "/todos/{id}"}}
	fa, err := forward.New(fc)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := server.DefaultConfig()
	if !cached {
		cfg.Cache.MaxCost = 0
	}
	srv, err := server.New(cfg, manager(tb, forwardBundle), nil, server.WithAuth(v, false), server.WithForwardAuth(fa))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	l := serveServer(tb, srv)
	g, err := grpcapi.New(srv, grpcapi.Config{Forward: fa, Refusal: server.Refusal, Registry: srv.Registry()})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Serve(ctx, ln); close(done) }()
	gw := &gateway{httpURL: strings.TrimSuffix(l.url, "/v1/decide"), token: at.Token}
	// Envoy keeps a few HTTP/2 connections to its authorizer; calls are
	// spread over them.
	for range 4 {
		c, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		gw.conns = append(gw.conns, c)
	}
	tb.Cleanup(func() {
		for _, c := range gw.conns {
			c.Close()
		}
		cancel()
		<-done
	})
	return gw
}

// checkRequest is what Envoy sends for GET /todos/<id> by alice over
// HTTP/2, with the headers a browser request carries.
func (g *gateway) checkRequest(id int) *authv3.CheckRequest {
	path := fmt.Sprintf("/todos/%d", id)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1234567890", Method: "GET", Path: path, Host: "api.test", Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{":authority": "api.test", ":method": "GET", ":path": path, ":scheme": "https",
				"authorization": "Bearer " + g.token, "user-agent": "Mozilla/5.0 (X11; Linux x86_64)", "accept": "application/json",
				"x-request-id": "4b4fd2a6-0f0d-4fb1-9a5b-06cde8b0b8f7", "x-forwarded-proto": "https"},
		}},
	}}
}

// httpTarget is the same question over HTTP, as Envoy's HTTP ext_authz
// service asks it (the original path under the Envoy prefix).
func (g *gateway) httpTarget() target {
	return target{name: "http forward-auth", url: g.httpURL + forward.Path + "/envoy/todos/42", bodies: [][]byte{nil},
		header: map[string]string{"Authorization": "Bearer " + g.token, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
			"Accept": "application/json", "X-Forwarded-Proto": "https"}}
}

// grpcThroughput drives Check closed-loop, as throughput does HTTP:
// workers calls at once (each its next as soon as the last answered) over
// the gateway's connections, for d after a warm-up of d/4. Any answer but
// an allow fails tb.
func grpcThroughput(tb testing.TB, conns []*grpc.ClientConn, req *authv3.CheckRequest, workers int, d time.Duration) (rps float64, cpu time.Duration) {
	tb.Helper()
	return closedLoop(tb, "gRPC Check", workers, d, func(w int) (func(int) error, func()) {
		client := authv3.NewAuthorizationClient(conns[w%len(conns)])
		return func(int) error {
			resp, err := client.Check(context.Background(), req)
			if err == nil && resp.GetStatus().GetCode() != 0 {
				err = fmt.Errorf("not an allow: %v", resp)
			}
			return err
		}, func() {}
	})
}

// okAuthorizer is the gRPC floor: an ext_authz server that allows
// everything at once, no input, no policy.
type okAuthorizer struct {
	authv3.UnimplementedAuthorizationServer
}

func (okAuthorizer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{}}, nil
}

// grpcFloor serves okAuthorizer on a real listener and returns connections
// to it, as newGateway does.
func grpcFloor(tb testing.TB) []*grpc.ClientConn {
	tb.Helper()
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, okAuthorizer{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	var conns []*grpc.ClientConn
	for range 4 {
		c, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		srv.Stop()
	})
	return conns
}

// TestGRPCBesideHTTP measures, in one process and one run, the same
// gateway question over HTTP forward-auth and gRPC ext_authz (an end
// user's JWT, a route match and a CEL rule; with and without the decision
// cache) beside each transport's floor (a server answering a fixed allow),
// interleaved in rounds so that noise hits all alike, and prints the table
// of docs/performance.md#grpc. The load generator runs in this process, so
// each CPU/request includes its client's cost (grpc-go's is higher than
// fasthttp's). It fails when gRPC answers below half of HTTP's rate: both
// share everything under the wire format, so a gap that large is a
// transport problem.
func TestGRPCBesideHTTP(t *testing.T) {
	if raceEnabled {
		t.Skip("timings under -race mean nothing; run `go test ./bench`")
	}
	if testing.Short() {
		t.Skip("the comparison is not run with -short")
	}
	d, rounds, conns := time.Second, 1, 32
	if fullCompare {
		d, rounds = 5*time.Second, 3
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "closed loop, %d concurrent requests, %s × %d round(s) (median); an end user's JWT, route /todos/{id}, one CEL rule\n", conns, d, rounds)
	fmt.Fprintf(&tbl, "| server | decision cache | req/s | CPU/request | of its floor | gRPC ÷ HTTP |\n|---|---|---:|---:|---:|---:|\n")
	probe := newGateway(t, false)
	httpFloor := target{name: "http floor", url: floorServer(t), bodies: [][]byte{nil}, header: probe.httpTarget().header}
	floorConns, floorReq := grpcFloor(t), probe.checkRequest(42)
	type sample struct {
		rps []float64
		cpu []time.Duration
	}
	measure := func(s *sample, run func() (float64, time.Duration)) {
		r, c := run()
		s.rps, s.cpu = append(s.rps, r), append(s.cpu, c)
	}
	var hf, gf sample
	gateways := map[bool]*gateway{false: probe, true: newGateway(t, true)}
	hs, gs := map[bool]*sample{false: {}, true: {}}, map[bool]*sample{false: {}, true: {}}
	for range rounds {
		measure(&hf, func() (float64, time.Duration) { return throughput(t, httpFloor, conns, d) })
		measure(&gf, func() (float64, time.Duration) { return grpcThroughput(t, floorConns, floorReq, conns, d) })
		for _, cached := range []bool{false, true} {
			g := gateways[cached]
			measure(hs[cached], func() (float64, time.Duration) { return throughput(t, g.httpTarget(), conns, d) })
			measure(gs[cached], func() (float64, time.Duration) { return grpcThroughput(t, g.conns, g.checkRequest(42), conns, d) })
		}
	}
	hFloor, gFloor := median(hf.rps), median(gf.rps)
	fmt.Fprintf(&tbl, "| bare Fiber handler, fixed answer (HTTP floor) | | %.0f | %.1f µs | 1.00 | |\n", hFloor, micro(medianD(hf.cpu)))
	fmt.Fprintf(&tbl, "| bare grpc-go ext_authz server, fixed OK (gRPC floor) | | %.0f | %.1f µs | 1.00 | %.2f× |\n", gFloor, micro(medianD(gf.cpu)), gFloor/hFloor)
	for _, cached := range []bool{false, true} {
		h, gr := median(hs[cached].rps), median(gs[cached].rps)
		label := map[bool]string{false: "off", true: "on"}[cached]
		fmt.Fprintf(&tbl, "| Verdict, HTTP /v1/forward-auth | %s | %.0f | %.1f µs | %.2f | |\n", label, h, micro(medianD(hs[cached].cpu)), h/hFloor)
		fmt.Fprintf(&tbl, "| Verdict, gRPC ext_authz Check | %s | %.0f | %.1f µs | %.2f | %.2f× |\n", label, gr, micro(medianD(gs[cached].cpu)), gr/gFloor, gr/h)
		if gr < h/2 {
			t.Errorf("gRPC Check (cache %s): %.0f req/s, below half of HTTP's %.0f", label, gr, h)
		}
	}
	t.Log("\n" + tbl.String())
	if out := os.Getenv("VERDICT_BENCH_GRPC_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(tbl.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func median(s []float64) float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[len(c)/2]
}

func medianD(s []time.Duration) time.Duration {
	f := make([]float64, len(s))
	for i, v := range s {
		f[i] = float64(v)
	}
	return time.Duration(median(f))
}

func micro(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkGRPCCheck is one ext_authz Check over a real loopback gRPC
// connection (cache off), beside BenchmarkHTTPForwardAuth.
func BenchmarkGRPCCheck(b *testing.B) {
	g := newGateway(b, false)
	req := g.checkRequest(42)
	client := authv3.NewAuthorizationClient(g.conns[0])
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Check(context.Background(), req)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				b.Fatalf("%v %v", resp, err)
			}
		}
	})
}

// BenchmarkHTTPForwardAuth is the same question over HTTP forward-auth.
func BenchmarkHTTPForwardAuth(b *testing.B) {
	g := newGateway(b, false)
	tg := g.httpTarget()
	addr, path := hostPath(tg.url)
	b.ReportAllocs()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
	defer hc.CloseIdleConnections()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(path)
		req.Header.SetHost(addr)
		for k, v := range tg.header {
			req.Header.Set(k, v)
		}
		for pb.Next() {
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d", err, resp.StatusCode())
			}
		}
	})
}
