package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var swapFor = flag.Duration("swap", time.Minute, "how long TestActivationUnderLoad swaps bundles (-short: 10s)")

// TestActivationUnderLoad: a real `verdict serve` (the soak's: signed
// bundles, callers with tokens) answers decisions from 16 connections in
// a closed loop while two stored revisions (the CEL and the Rego version
// of the same logic) are activated one after the other, continuously, for
// -swap (a minute). Not one answer may be an error or a no-policy
// decision, every answer must be the expected decision, and every answer
// must name one of the two revisions: an activation swaps the served
// bundle atomically and never leaves a moment without one.
//
//	go test -count=1 -run '^TestActivationUnderLoad$' -v ./bench -swap=1m
func TestActivationUnderLoad(t *testing.T) {
	if raceEnabled {
		t.Skip("a minute of load: it runs in make test's bench run without the race detector")
	}
	d := *swapFor
	if testing.Short() {
		d = 10 * time.Second
	}
	// Activations count in the bundles rate-limit group (120 a minute by
	// default): the test activates as fast as the server compiles. The
	// engine's 50 ms deadline can pass on two busy shared cores (CI once
	// refused an activation because a bundle test case timed out): this
	// test is about atomic swaps, not latency, so it allows 5 s.
	srv := startSoakServerWith(t, "server:\n  rate_limits:\n    bundles: {per_client: 0, per_ip: 0}\nengine:\n  timeout: 5s\n")
	ctx := context.Background()
	for n := 1; n <= 2; n++ { // soak-rego-1, soak-cel-2: stored, the second active
		if err := srv.pushNew(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	revisions := []string{"soak-rego-1", "soak-cel-2"}
	decide, err := srv.token(ctx, "gateway", "verdict:decide")
	if err != nil {
		t.Fatal(err)
	}
	push, err := srv.token(ctx, "ci", "verdict:bundles:write")
	if err != nil {
		t.Fatal(err)
	}

	var (
		answers, swaps atomic.Int64
		seen           [2]atomic.Int64 // answers by revision
		mu             sync.Mutex
		failures       []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for w := range 16 {
		wg.Go(func() {
			var buf []byte
			for seq := int64(w); ; seq += 16 {
				select {
				case <-stop:
					return
				default:
				}
				var want bool
				buf, want = soakBody(buf[:0], seq, false)
				req, _ := http.NewRequest(http.MethodPost, srv.base+"/v1/decide", bytes.NewReader(buf))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+decide)
				resp, err := hc.Do(req)
				if err != nil {
					fail("decide: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var a struct {
					Decision bool `json:"decision"`
					Context  struct {
						Reasons  []string `json:"reasons"`
						Revision string   `json:"revision"`
					} `json:"context"`
				}
				if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &a) != nil {
					fail("decide: %d %.200s", resp.StatusCode, body)
					continue
				}
				answers.Add(1)
				i := slices.Index(revisions, a.Context.Revision)
				switch {
				case slices.Contains(a.Context.Reasons, "verdict:error"), slices.Contains(a.Context.Reasons, "verdict:no-policy"):
					fail("an error decision during the swaps: %s", body)
				case i < 0:
					fail("an answer from revision %q, neither of %v: %s", a.Context.Revision, revisions, body)
				case a.Decision != want:
					fail("decision %v, want %v: %s", a.Decision, want, body)
				default:
					seen[i].Add(1)
				}
			}
		})
	}
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		rev := revisions[i%2]
		req, _ := http.NewRequest(http.MethodPost, srv.base+"/v1/bundles/"+rev+"/activate", nil)
		req.Header.Set("Authorization", "Bearer "+push)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"activated":true`) {
			t.Fatalf("activate %s: %d %.300s", rev, resp.StatusCode, body)
		}
		swaps.Add(1)
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d activations, %d answers; failures:\n%s", swaps.Load(), answers.Load(), strings.Join(failures, "\n"))
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 || swaps.Load() < 10 {
		t.Fatalf("the swaps were not exercised: %d activations, answers by revision %d / %d", swaps.Load(), seen[0].Load(), seen[1].Load())
	}
	t.Logf("%v: %d activations (%.1f/s), %d decisions (%d from %s, %d from %s), no error, no no-policy, every answer as expected",
		d, swaps.Load(), float64(swaps.Load())/d.Seconds(), answers.Load(), seen[0].Load(), revisions[0], seen[1].Load(), revisions[1])
}
