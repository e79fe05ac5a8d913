package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/telemetry"
	"github.com/verdictpdp/verdict/server"
)

const (
	celBundle  = "../policies/rbac-cel"
	regoBundle = "../policies/rbac-rego"
)

// inputs is a small rotating set of realistic requests: an allow by role, an
// allow by ownership, a deny by department mismatch, a deny by clearance.
func inputs(n int) []*engine.Input {
	out := make([]*engine.Input, 0, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("user-%d", i)
		var in engine.Input
		switch i % 4 {
		case 0:
			in = engine.Input{Subject: engine.Entity{Type: "user", ID: id, Properties: map[string]any{"roles": []any{"editor"}}},
				Action: engine.Action{Name: "update"}, Resource: engine.Entity{Type: "document", ID: "42", Properties: map[string]any{"owner": "someone"}}}
		case 1:
			in = engine.Input{Subject: engine.Entity{Type: "user", ID: id, Properties: map[string]any{"roles": []any{}}},
				Action: engine.Action{Name: "delete"}, Resource: engine.Entity{Type: "document", ID: "7", Properties: map[string]any{"owner": id}}}
		case 2:
			in = engine.Input{Subject: engine.Entity{Type: "user", ID: id, Properties: map[string]any{"department": "sales", "roles": []any{"guest"}}},
				Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "report", ID: "q3", Properties: map[string]any{"department": "finance"}}}
		default:
			in = engine.Input{Subject: engine.Entity{Type: "user", ID: id, Properties: map[string]any{"roles": []any{"admin"}, "clearance": int64(1)}},
				Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "document", ID: "s", Properties: map[string]any{"sensitivity": int64(3)}}}
		}
		in.Context = map[string]any{"ip": "10.0.0.1"}
		in.SizeBound = len(body(&in)) // as pdp.Parse sets it
		out = append(out, &in)
	}
	return out
}

func body(in *engine.Input) []byte {
	b, err := json.Marshal(map[string]any{"subject": engine.EntityDoc(in.Subject), "action": engine.ActionDoc(in.Action),
		"resource": engine.EntityDoc(in.Resource), "context": in.Context})
	if err != nil {
		panic(err)
	}
	return b
}

func manager(tb testing.TB, path string) *bundles.Manager {
	tb.Helper()
	m := bundles.NewManager(bundles.DefaultConfig(), nil)
	if _, err := m.LoadPaths(context.Background(), []string{path}); err != nil {
		tb.Fatal(err)
	}
	return m
}

func newServer(tb testing.TB, path string, cached bool) *server.Server {
	tb.Helper()
	cfg := server.DefaultConfig()
	if !cached {
		cfg.Cache.MaxCost = 0
	}
	return newServerWith(tb, path, cfg)
}

func newServerWith(tb testing.TB, path string, cfg server.Config, opts ...server.Option) *server.Server {
	tb.Helper()
	srv, err := server.New(cfg, manager(tb, path), nil, append([]server.Option{server.WithAuth(nil, true)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv
}

// benchSnapshot measures the compiled snapshot alone: no cache, no HTTP.
func benchSnapshot(b *testing.B, path string) {
	benchDecisions(b, manager(b, path).Active().Snapshot)
}

// benchDecisions measures snap deciding the rotating inputs.
func benchDecisions(b *testing.B, snap *engine.Snapshot) {
	ins := inputs(64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		in := *ins[i%len(ins)]
		in.Now = ins[0].Now
		snap.Decide(ctx, &in, false)
	}
}

func BenchmarkDecideCEL(b *testing.B)  { benchSnapshot(b, celBundle) }
func BenchmarkDecideRego(b *testing.B) { benchSnapshot(b, regoBundle) }

// BenchmarkCacheHit measures an in-process decision answered from the cache
// (canonical hash of the input, lookup, full-key compare, fresh decision id).
func BenchmarkCacheHit(b *testing.B) {
	srv := newServer(b, celBundle, true)
	ins := inputs(64)
	ctx := context.Background()
	for _, in := range ins {
		srv.Decide(ctx, in, false)
		srv.Decide(ctx, in, false)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		srv.Decide(ctx, ins[i%len(ins)], false)
	}
}

type live struct {
	url    string
	client *http.Client
}

func serve(tb testing.TB, path string, cached bool) *live {
	tb.Helper()
	return serveServer(tb, newServer(tb, path, cached))
}

func serveServer(tb testing.TB, srv *server.Server) *live {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	tb.Cleanup(tr.CloseIdleConnections)
	return &live{url: "http://" + ln.Addr().String() + "/v1/decide", client: &http.Client{Transport: tr}}
}

func (l *live) post(tb testing.TB, b []byte) {
	resp, err := l.client.Post(l.url, "application/json", bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
}

func benchHTTP(b *testing.B, path string, cached bool) {
	benchLive(b, serve(b, path, cached))
}

// benchLive measures one client posting the rotating inputs to l.
func benchLive(b *testing.B, l *live) {
	ins := inputs(64)
	bodies := make([][]byte, len(ins))
	for i, in := range ins {
		bodies[i] = body(in)
		l.post(b, bodies[i]) // warm the connection and, when cached, the cache
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.post(b, bodies[i%len(bodies)])
	}
}

func BenchmarkHTTPDecideCEL(b *testing.B)  { benchHTTP(b, celBundle, false) }
func BenchmarkHTTPDecideRego(b *testing.B) { benchHTTP(b, regoBundle, false) }
func BenchmarkHTTPCacheHit(b *testing.B)   { benchHTTP(b, celBundle, true) }

// BenchmarkHTTPMetrics measures what server.metrics costs a decision
// over HTTP: the same cached decide with metrics on and off (the HTTP
// middleware, the decision counters; a cache hit runs no engine timer).
// Compare the two with -count and benchstat; the loopback round trip
// dominates both.
func BenchmarkHTTPMetrics(b *testing.B) {
	metricsOnOff(b, func(b *testing.B, srv *server.Server) { benchLive(b, serveServer(b, srv)) })
}

// metricsOnOff runs bench as sub-benchmarks "on" and "off", on a server of
// the CEL bundle with server.metrics so.
func metricsOnOff(b *testing.B, bench func(*testing.B, *server.Server)) {
	for _, on := range []bool{true, false} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := server.DefaultConfig()
			cfg.Metrics = on
			bench(b, newServerWith(b, celBundle, cfg))
		})
	}
}

// BenchmarkHandlerMetrics is BenchmarkHTTPMetrics without the network:
// the server's whole handler (middleware, routing, decide from the cache,
// JSON answer) called on a fasthttp request in memory, so that the
// difference metrics make is not lost in the loopback's noise.
func BenchmarkHandlerMetrics(b *testing.B) {
	metricsOnOff(b, benchHandler)
}

// BenchmarkHandlerDecisionLog is the handler of BenchmarkHandlerMetrics with
// a decision log writing to a discarding sink (redaction, JSON, the history
// ring: everything but the disk), shipping to a receiver on 127.0.0.1 over
// HTTP (sink http: OPA events, gzipped batches), and without one.
func BenchmarkHandlerDecisionLog(b *testing.B) {
	for _, name := range []string{"on", "http", "off"} {
		b.Run(name, func(b *testing.B) {
			var opts []server.Option
			if name != "off" {
				cfg, w := decisionlog.Default(), io.Writer(io.Discard)
				if name == "http" {
					rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						_, _ = io.Copy(io.Discard, r.Body)
						w.WriteHeader(http.StatusNoContent)
					}))
					b.Cleanup(rcv.Close)
					cfg.Sink, cfg.HTTP.URL, w = decisionlog.SinkHTTP, rcv.URL, nil
				}
				dl, err := decisionlog.New(cfg, w, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); dl.Run(ctx) }()
				b.Cleanup(func() {
					cancel()
					<-done
					if d := dl.Dropped(); d > 0 {
						b.Logf("%d records dropped (the writer fell behind)", d)
					}
				})
				opts = append(opts, server.WithDecisionLog(dl), server.WithDecisionHistory(dl))
			}
			srv, err := server.New(server.DefaultConfig(), manager(b, celBundle), nil, append([]server.Option{server.WithAuth(nil, true)}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(srv.Close)
			benchHandler(b, srv)
		})
	}
}

// benchHandler calls srv's whole handler on in-memory /v1/decide requests
// answered from the cache.
func benchHandler(b *testing.B, srv *server.Server) {
	h := srv.App().Handler()
	ins := inputs(64)
	reqs := make([]*fasthttp.RequestCtx, len(ins))
	for i, in := range ins {
		rc := &fasthttp.RequestCtx{}
		rc.Request.Header.SetMethod(fasthttp.MethodPost)
		rc.Request.SetRequestURI("/v1/decide")
		rc.Request.Header.SetContentType("application/json")
		rc.Request.SetBody(body(in))
		reqs[i] = rc
		h(rc) // warm the cache
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rc := reqs[i%len(reqs)]
		rc.Response.Reset()
		// As fasthttp's server does between requests: Fiber keeps the
		// request's context.Context in the user values, and a reused
		// RequestCtx would otherwise chain every earlier request's
		// context values (each lookup walking them all).
		rc.ResetUserValues()
		h(rc)
		if rc.Response.StatusCode() != 200 {
			b.Fatalf("status %d", rc.Response.StatusCode())
		}
	}
}

// BenchmarkHandlerTracing is BenchmarkHandlerMetrics for traces: "off" is
// a server without a tracer provider, "none" one with the provider of
// telemetry.traces.exporter: none (what serve passes by default; it must
// cost about nothing), and "sampled" one that records every span (server
// and verdict.decide) to an exporter that drops them, the cost of tracing
// itself without the network.
func BenchmarkHandlerTracing(b *testing.B) {
	none, _, err := telemetry.NewTracerProvider(context.Background(), telemetry.Default())
	if err != nil {
		b.Fatal(err)
	}
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSyncer(discard{}))
	b.Cleanup(func() { _ = sampled.Shutdown(context.Background()) })
	for _, c := range []struct {
		name string
		opts []server.Option
	}{{"off", nil}, {"none", []server.Option{server.WithTracerProvider(none)}}, {"sampled", []server.Option{server.WithTracerProvider(sampled)}}} {
		b.Run(c.name, func(b *testing.B) { benchHandler(b, newServerWith(b, celBundle, server.DefaultConfig(), c.opts...)) })
	}
}

// discard is a span exporter that drops every span.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkHTTPParallel measures throughput with concurrent clients.
func BenchmarkHTTPParallel(b *testing.B) {
	l := serve(b, celBundle, true)
	ins := inputs(64)
	bodies := make([][]byte, len(ins))
	for i, in := range ins {
		bodies[i] = body(in)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.post(b, bodies[i%len(bodies)])
			i++
		}
	})
}
