package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"
)

// target is one server under load: where to POST, the bodies to rotate
// through and the headers every request carries.
type target struct {
	name   string
	url    string // http://127.0.0.1:port/path
	bodies [][]byte
	header map[string]string
}

// throughput drives t closed-loop, as wrk does: conns connections, each
// sending its next request as soon as the last answer arrived, for d
// after a warm-up of d/4. It returns the answers per second and the CPU
// time the process spent per answer (server and load generator: the
// floor's shows what the two cost without Verdict). Any answer but 200
// fails tb: a server that fails fast must not look fast.
func throughput(tb testing.TB, t target, conns int, d time.Duration) (rps float64, cpu time.Duration) {
	tb.Helper()
	addr, path := hostPath(t.url)
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxIdleConnDuration: time.Minute,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	return closedLoop(tb, t.name, conns, d, func(int) (func(int) error, func()) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(path)
		req.Header.SetHost(addr)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		for k, v := range t.header {
			req.Header.Set(k, v)
		}
		call := func(i int) error {
			req.SetBodyRaw(t.bodies[i%len(t.bodies)])
			if err := hc.Do(req, resp); err != nil {
				return err
			}
			if resp.StatusCode() != http.StatusOK {
				return fmt.Errorf("status %d: %.200s", resp.StatusCode(), resp.Body())
			}
			return nil
		}
		return call, func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) }
	})
}

// closedLoop runs workers loops, each making its next call as soon as the
// last returned (newWorker gives worker w its call, made with 0, 1, 2, …,
// and a release for when it stops), for d after a warm-up of d/4, and
// returns the calls per second and the CPU time the process spent per
// call. Any failed call fails tb: a server that fails fast must not look
// fast.
func closedLoop(tb testing.TB, name string, workers int, d time.Duration, newWorker func(w int) (call func(i int) error, release func())) (rps float64, cpu time.Duration) {
	tb.Helper()
	var done, failed atomic.Int64
	var firstErr atomic.Value
	var measuring atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		call, release := newWorker(w)
		wg.Go(func() {
			defer release()
			for i := w; ctx.Err() == nil; i++ {
				err := call(i)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case measuring.Load():
					done.Add(1)
				}
			}
		})
	}
	time.Sleep(d / 4)
	measuring.Store(true)
	start, cpu0 := time.Now(), processCPU()
	time.Sleep(d)
	n := done.Load()
	elapsed, used := time.Since(start), processCPU()-cpu0
	cancel()
	wg.Wait()
	if f := failed.Load(); f > 0 {
		tb.Fatalf("%s: %d requests failed, the first: %v", name, f, firstErr.Load())
	}
	if n == 0 {
		tb.Fatalf("%s: no answer in %v", name, d)
	}
	return float64(n) / elapsed.Seconds(), used / time.Duration(n)
}

// hostPath splits http://host:port/path into host:port and /path.
func hostPath(url string) (addr, path string) {
	addr, path = url[len("http://"):], "/"
	for i := range addr {
		if addr[i] == '/' {
			return addr[:i], addr[i:]
		}
	}
	return addr, path
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latency drives t open-loop (vegeta: requests start on schedule whether
// or not earlier ones answered, so a stall shows in the tail) at rate per
// second for d, and returns the 50th and 99th percentile.
func latency(tb testing.TB, t target, rate int, d time.Duration) (p50, p99 time.Duration) {
	tb.Helper()
	hdr := http.Header{"Content-Type": {"application/json"}}
	for k, v := range t.header {
		hdr.Set(k, v)
	}
	targets := make([]vegeta.Target, len(t.bodies))
	for i, b := range t.bodies {
		targets[i] = vegeta.Target{Method: http.MethodPost, URL: t.url, Body: b, Header: hdr}
	}
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(64), vegeta.Timeout(5*time.Second),
		vegeta.LocalAddr(net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	var m vegeta.Metrics
	for res := range atk.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: rate, Per: time.Second}, d, t.name) {
		m.Add(res)
	}
	m.Close()
	if m.Success < 1 {
		tb.Fatalf("%s: %.2f%% of %d requests succeeded (status codes %v, errors %v)", t.name, 100*m.Success, m.Requests, m.StatusCodes, m.Errors)
	}
	return m.Latencies.P50, m.Latencies.P99
}
