package bench

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/verdictpdp/verdict/oauth/oauthtest"
	"github.com/verdictpdp/verdict/server"
)

// TestFloodIsolation: one client floods /v1/decide far past its rate
// (server.rate_limits.decide.per_client) while another asks at a steady
// rate. The flooder gets 429s; the other client gets every answer, and its
// latency stays within a small multiple of what it was alone (measured side
// by side in this run; the CPU is shared with the flooder, so some rise is
// the machine, not the server). Reproduce: go test -run TestFloodIsolation -v ./bench
func TestFloodIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("timings under -race mean nothing (the flood cannot even reach its limit); run `go test ./bench`")
	}
	cfg := server.DefaultConfig()
	cfg.RateLimits.Decide = server.Limit{PerClient: 500, Window: time.Second}
	iss, v := oauthtest.Tokens(t, noRevocations{})
	token := func(client string) string {
		at, err := iss.Issue(client, client, []string{server.ScopeDecide}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + at.Token
	}
	l := serveServer(t, newServerWith(t, celBundle, cfg, server.WithAuth(v, false)))
	victim := target{name: "victim", url: l.url, bodies: verdictBodies(), header: map[string]string{"Authorization": token("alice")}}
	const rate, d = 200, 2 * time.Second

	alone50, alone99 := latency(t, victim, rate, d)

	ctx, cancel := context.WithCancel(context.Background())
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	flooder := token("mallory")
	addr, _ := hostPath(l.url)
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 16, ReadTimeout: 5 * time.Second}
	bodies := verdictBodies()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("/v1/decide")
			req.Header.SetHost(addr)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			req.Header.Set("Authorization", flooder)
			for i := w; ctx.Err() == nil; i++ {
				req.SetBodyRaw(bodies[i%len(bodies)])
				if err := hc.Do(req, resp); err != nil {
					other.Add(1)
					continue
				}
				switch resp.StatusCode() {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	flood50, flood99 := latency(t, victim, rate, d) // fails t unless every answer is 200
	cancel()
	wg.Wait()

	t.Logf("victim alone: p50 %v p99 %v; during the flood: p50 %v p99 %v (p50 x%.1f)", alone50, alone99, flood50, flood99, float64(flood50)/float64(alone50))
	t.Logf("flooder: %d answered, %d refused 429, %d other", ok.Load(), limited.Load(), other.Load())
	if limited.Load() == 0 || other.Load() > 0 {
		t.Fatalf("the flooder was not limited: %d 200, %d 429, %d other", ok.Load(), limited.Load(), other.Load())
	}
	// Half a budget's slack over the 2 s run: the refused flood is cheap.
	if perSecond := float64(ok.Load()) / (float64(d+200*time.Millisecond) / float64(time.Second)); perSecond > 1.5*500 {
		t.Errorf("the flooder got %.0f answers a second past a limit of 500", perSecond)
	}
	// A generous ceiling, as the other budgets of this package: a server
	// that queued the victim behind the flood would miss it by far.
	if flood50 > 5*alone50+time.Millisecond {
		t.Errorf("victim p50 %v during the flood, %v alone: more than 5x", flood50, alone50)
	}
}
