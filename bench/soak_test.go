package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// soakFor is how long TestSoak runs; without the flag it is skipped.
var soakFor = flag.Duration("soak", 0, "run TestSoak against a real `verdict serve` for this long (1m in CI, 30m for docs/performance.md); 0 skips it")

// soakShare is the open-loop rate, as a share of the capacity measured at
// the start: 0.8 by default; CI's one minute runs at 0.5, as a shared
// machine can lose a third of its CPU for a while after the measurement
// (the backlog then pushes decisions past engine.timeout, which the soak
// counts as errors).
var soakShare = flag.Float64("soak-load", 0.8, "TestSoak's open-loop rate as a share of the measured capacity, in (0, 1]")

// What TestSoak drives and what it tolerates. The tolerances are generous
// on purpose: a leak grows with the requests (millions of them in a long
// run) or with the pushes, and shows far past them, while the noise of a
// shared machine (the garbage collector's target, connections opened and
// closed, a push compiling next to the old bundle) stays inside them.
const (
	soakWorkers   = 32              // load generator: connections of the closed loop, workers of the open loop
	soakRSSGrowth = 0.20            // RSS of the second half: at most 20% ...
	soakRSSSlack  = 16 << 20        // ... plus 16 MiB over the steady first half's highest sample
	soakGoSlack   = 20              // goroutines of the second half: at most 20 over the first half's highest
	soakEvery     = 5 * time.Second // RSS, goroutines and open files are sampled this often
)

// The request mix, per 50 requests: 24 decisions from a working set of
// 4,096 distinct bodies (the decision cache's steady case), 12 with a
// `context.time` (never cached: the engine runs every time), 12 AuthZEN
// evaluations, one client-credentials token and one introspection of the
// newest token. Every decision carries the newest token.
const (
	soakDecide = iota
	soakFresh
	soakAuthZEN
	soakToken
	soakIntrospect
	soakKinds
)

var soakKindNames = [soakKinds]string{"decide (cacheable)", "decide (context.time, uncached)", "AuthZEN evaluation", "token (client_credentials)", "introspection"}

func soakKind(seq int64) int {
	switch slot := seq % 50; {
	case slot == 0:
		return soakToken
	case slot == 25:
		return soakIntrospect
	case slot%4 < 2:
		return soakDecide
	case slot%4 == 2:
		return soakFresh
	default:
		return soakAuthZEN
	}
}

// TestSoak runs a real `verdict serve` (built from ./cmd/verdict, signed
// bundles, callers with tokens, as in production) for -soak: it measures
// the server's capacity on the mix above with closed-loop bursts, then
// drives it open-loop at -soak-load (80%) of that, pushing a signed bundle every
// minute (every third of the run when shorter; CEL and Rego versions of
// the same logic in turn, so every decision's expected answer holds
// throughout). It fails on any error (a transport error, an unexpected
// status or decision, a failed push or scrape, an ERROR in the server's
// log, an unclean stop) and when RSS or the goroutine count of the second
// half rises past the steady first half's (see the tolerances above).
//
//	go test -count=1 -run '^TestSoak$' -v -timeout 2h ./bench -soak=30m   # make soak
func TestSoak(t *testing.T) {
	d := *soakFor
	if d <= 0 {
		t.Skip("run with -soak=DURATION (make soak)")
	}
	if d < 30*time.Second {
		t.Fatalf("-soak=%v: a soak needs at least 30s (warm-up, two pushes, two halves to compare)", d)
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < d+3*time.Minute {
		t.Fatalf("-soak=%v does not fit in the test's -timeout (%v left): pass -timeout %v", d, time.Until(dl).Round(time.Second), d+10*time.Minute)
	}
	srv := startSoakServer(t)
	load := newSoakLoad(t, srv)

	// Capacity: the same mix, closed loop, as compare_test measures, on
	// the CEL bundle the server started with and on the Rego one pushed
	// next (Rego decides at about half CEL's rate); the soak runs at -soak-load (80%)
	// of the lower, so that either engine can serve it. A saturated server
	// may deny a decision past engine.timeout (verdict:timeout): that is
	// tolerated in the bursts only, any other error fails them.
	capWarm, capRun := time.Second, 4*time.Second
	if d >= 10*time.Minute {
		capWarm, capRun = 3*time.Second, 15*time.Second
	}
	capCEL := load.closed(capWarm, capRun)
	if err := srv.pushNew(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	capRego := load.closed(capWarm, capRun)
	if load.errors() > 0 {
		t.Fatalf("capacity bursts: %d errors: %s", load.errors(), load.firstErrors())
	}
	capacity := min(capCEL, capRego)
	if *soakShare <= 0 || *soakShare > 1 {
		t.Fatalf("-soak-load %v: must be in (0, 1]", *soakShare)
	}
	rate := *soakShare * capacity
	t.Logf("capacity %.0f req/s with the CEL bundle, %.0f with the Rego one (closed loop, %d connections, %v each; %d decisions past engine.timeout); soaking for %v at %.0f req/s",
		capCEL, capRego, soakWorkers, capRun, load.timeouts.Load(), d, rate)
	load.reset()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	wg.Go(func() { load.open(ctx, rate, start, end) })
	pushEvery := min(time.Minute, d/3)
	var pushes []time.Duration
	wg.Go(func() { pushes = srv.pushEvery(ctx, load, pushEvery, end) })

	report := min(time.Minute, max(10*time.Second, d/6)).Truncate(soakEvery)
	var samples []procSample
	var rows []soakRow
	prev := srv.sample(load) // the CPU the server used until now is not the soak's
	prev.at = time.Since(start)
	tick := time.NewTicker(soakEvery)
	for i := 1; ; i++ {
		<-tick.C
		s := srv.sample(load)
		s.at = time.Since(start)
		samples = append(samples, s)
		last := s.at >= d
		if i%int(report/soakEvery) == 0 || last {
			rows = append(rows, load.row(prev, s))
			prev = s
			t.Logf("%s", rows[len(rows)-1].line())
		}
		if last {
			break
		}
	}
	tick.Stop()
	cancel()
	wg.Wait()
	stopErr := srv.stop()
	elapsed := time.Since(start)

	tbl := soakTable(d, capacity, rate, pushEvery, rows, samples, load, pushes, elapsed)
	t.Log("\n" + tbl)
	if out := os.Getenv("VERDICT_BENCH_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(tbl), 0o644); err != nil {
			t.Error(err)
		}
	}

	if n := load.errors(); n > 0 {
		t.Errorf("%d errors: %s", n, load.firstErrors())
	}
	if want := int(d/pushEvery) - 1; len(pushes) < want {
		t.Errorf("%d bundle pushes succeeded, want at least %d", len(pushes), want)
	}
	if stopErr != nil {
		t.Errorf("verdict serve did not stop cleanly on SIGTERM: %v", stopErr)
	}
	if n := srv.log.errorLines.Load(); n > 0 {
		t.Errorf("the server logged %d ERROR lines; its log ends with:\n%s", n, srv.log.String())
	}
	if total := load.total.Load(); float64(total) < 0.5*rate*d.Seconds() {
		t.Errorf("%d requests answered in %v: under half the %.0f req/s asked for (the server stalled, or the machine is too busy to soak)", total, d, rate)
	}
	checkFlat(t, samples, d)
}

// checkFlat compares every sample of the second half with the highest of
// the steady first half (after a warm-up of a sixth of the run, 10 s to 3
// min: caches and the garbage collector's target settle).
func checkFlat(t *testing.T, samples []procSample, d time.Duration) {
	t.Helper()
	warm := min(3*time.Minute, max(10*time.Second, d/6))
	var base procSample
	for _, s := range samples {
		if s.at >= warm && s.at < d/2 {
			base.rss, base.goroutines = max(base.rss, s.rss), max(base.goroutines, s.goroutines)
		}
	}
	if base.rss == 0 {
		t.Fatalf("no steady sample between %v and %v", warm, d/2)
	}
	rssLimit := int64(float64(base.rss)*(1+soakRSSGrowth)) + soakRSSSlack
	for _, s := range samples {
		if s.at < d/2 {
			continue
		}
		if s.rss > rssLimit {
			t.Errorf("at %v RSS is %.1f MiB: over %.1f MiB (steady first half at most %.1f MiB, +%.0f%% +%d MiB)",
				s.at.Round(time.Second), mib(s.rss), mib(rssLimit), mib(base.rss), 100*soakRSSGrowth, soakRSSSlack>>20)
		}
		if s.goroutines > base.goroutines+soakGoSlack {
			t.Errorf("at %v the server runs %d goroutines: over %d (steady first half at most %d, +%d)",
				s.at.Round(time.Second), s.goroutines, base.goroutines+soakGoSlack, base.goroutines, soakGoSlack)
		}
	}
}

// soakLoad sends the mix to the server and counts what comes back.
type soakLoad struct {
	hc      *fasthttp.HostClient
	addr    string
	gateway string                 // Basic credentials of the gateway client
	bearer  atomic.Pointer[string] // the newest access token

	bursting atomic.Bool  // a closed-loop burst saturates the server: ...
	timeouts atomic.Int64 // ... and its decisions past engine.timeout are denied
	total    atomic.Int64
	byKind   [soakKinds]atomic.Int64
	winN     atomic.Int64
	nerrs    atomic.Int64

	mu      sync.Mutex
	lat     []time.Duration // of the current report window
	winErrs int64
	winFrom time.Time
	errs    []string         // the first few error messages
	byCause map[string]int64 // every error, by errCause
}

func newSoakLoad(t *testing.T, s *soakServer) *soakLoad {
	t.Helper()
	l := &soakLoad{addr: strings.TrimPrefix(s.base, "http://"),
		gateway: "Basic " + base64.StdEncoding.EncodeToString([]byte("gateway:"+s.secret["gateway"]))}
	l.hc = &fasthttp.HostClient{Addr: l.addr, MaxConns: soakWorkers, MaxIdleConnDuration: time.Hour,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	t.Cleanup(l.hc.CloseIdleConnections)
	tok, err := s.token(context.Background(), "gateway", "verdict:decide")
	if err != nil {
		t.Fatal(err)
	}
	l.bearer.Store(&tok)
	l.winFrom = time.Now()
	return l
}

// soakBody writes request seq's decision: one of the four cases of
// inputs() (allow by role, allow by ownership, deny by department, deny
// by clearance), for one of 1,024 users, or a new user and a
// context.time when fresh. It returns the body and the expected decision.
func soakBody(dst []byte, seq int64, fresh bool) ([]byte, bool) {
	user, ctx := seq%1024, ""
	if fresh {
		user, ctx = seq, fmt.Sprintf(`,"time":"%d"`, seq)
	}
	id := "u" + strconv.FormatInt(user, 10)
	switch (seq / 3) % 4 {
	case 0:
		return fmt.Appendf(dst, `{"subject":{"type":"user","id":%q,"properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42","properties":{"owner":"someone"}},"context":{"ip":"10.0.0.1"%s}}`, id, ctx), true
	case 1:
		return fmt.Appendf(dst, `{"subject":{"type":"user","id":%q,"properties":{"roles":[]}},"action":{"name":"delete"},"resource":{"type":"document","id":"7","properties":{"owner":%q}},"context":{"ip":"10.0.0.1"%s}}`, id, id, ctx), true
	case 2:
		return fmt.Appendf(dst, `{"subject":{"type":"user","id":%q,"properties":{"department":"sales","roles":["guest"]}},"action":{"name":"read"},"resource":{"type":"report","id":"q3","properties":{"department":"finance"}},"context":{"ip":"10.0.0.1"%s}}`, id, ctx), false
	default:
		return fmt.Appendf(dst, `{"subject":{"type":"user","id":%q,"properties":{"roles":["admin"],"clearance":1}},"action":{"name":"read"},"resource":{"type":"document","id":"s","properties":{"sensitivity":3}},"context":{"ip":"10.0.0.1"%s}}`, id, ctx), false
	}
}

// do sends request seq of the mix and checks its answer: the status, the
// decision, a token, an active introspection.
func (l *soakLoad) do(seq int64, req *fasthttp.Request, resp *fasthttp.Response, buf []byte) ([]byte, error) {
	kind := soakKind(seq)
	req.Reset()
	req.Header.SetHost(l.addr)
	req.Header.SetMethod(fasthttp.MethodPost)
	var want bool
	switch kind {
	case soakDecide, soakFresh, soakAuthZEN:
		buf, want = soakBody(buf[:0], seq, kind == soakFresh)
		req.SetRequestURI("/v1/decide")
		if kind == soakAuthZEN {
			req.SetRequestURI("/access/v1/evaluation")
		}
		req.Header.SetContentType("application/json")
		req.Header.Set("Authorization", "Bearer "+*l.bearer.Load())
	case soakToken:
		req.SetRequestURI("/oauth2/token")
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.Header.Set("Authorization", l.gateway)
		buf = append(buf[:0], "grant_type=client_credentials&scope=verdict:decide"...)
	case soakIntrospect:
		req.SetRequestURI("/oauth2/introspect")
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.Header.Set("Authorization", l.gateway)
		buf = append(append(buf[:0], "token="...), *l.bearer.Load()...)
	}
	req.SetBodyRaw(buf)
	if err := l.hc.Do(req, resp); err != nil {
		return buf, fmt.Errorf("%s: %w", soakKindNames[kind], err)
	}
	body := resp.Body()
	if resp.StatusCode() != http.StatusOK {
		return buf, fmt.Errorf("%s: status %d: %.200s", soakKindNames[kind], resp.StatusCode(), body)
	}
	switch kind {
	case soakDecide, soakFresh, soakAuthZEN:
		if prefix := fmt.Sprintf(`{"decision":%t`, want); !bytes.HasPrefix(body, []byte(prefix)) {
			if l.bursting.Load() && bytes.Contains(body, []byte(`"verdict:timeout"`)) {
				l.timeouts.Add(1) // a saturated server past engine.timeout: denied, by design
				break
			}
			return buf, fmt.Errorf("%s: want %s, got %.200s (request %s)", soakKindNames[kind], prefix, body, req.Body())
		}
	case soakToken:
		var r struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
			return buf, fmt.Errorf("token: %.200s", body)
		}
		l.bearer.Store(&r.AccessToken)
	case soakIntrospect:
		if !bytes.Contains(body, []byte(`"active":true`)) {
			return buf, fmt.Errorf("introspection of a fresh token: %.200s", body)
		}
	}
	l.byKind[kind].Add(1)
	return buf, nil
}

// worker sends requests until next returns false; next gives the
// request's sequence number and when it was due (latency counts from
// there: a late start is the server's fault in an open loop).
func (l *soakLoad) worker(next func() (int64, time.Time, bool)) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var buf []byte
	for {
		seq, due, ok := next()
		if !ok {
			return
		}
		var err error
		buf, err = l.do(seq, req, resp, buf)
		took := time.Since(due)
		l.total.Add(1)
		l.winN.Add(1)
		l.mu.Lock()
		l.lat = append(l.lat, took)
		l.mu.Unlock()
		if err != nil {
			l.fail(err.Error())
		}
	}
}

// closed drives the mix closed loop (each worker sends as soon as its
// last answer came) and returns the answers per second after warm.
func (l *soakLoad) closed(warm, run time.Duration) float64 {
	l.bursting.Store(true)
	defer l.bursting.Store(false)
	var seq atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range soakWorkers {
		wg.Go(func() {
			l.worker(func() (int64, time.Time, bool) { return seq.Add(1), time.Now(), !stop.Load() })
		})
	}
	time.Sleep(warm)
	n0, t0 := l.total.Load(), time.Now()
	time.Sleep(run)
	n1, t1 := l.total.Load(), time.Now()
	stop.Store(true)
	wg.Wait()
	return float64(n1-n0) / t1.Sub(t0).Seconds()
}

// open drives the mix open loop at rate from start until end: request n
// is due at start + n/rate whatever the earlier ones are doing.
func (l *soakLoad) open(ctx context.Context, rate float64, start, end time.Time) {
	var seq atomic.Int64
	var wg sync.WaitGroup
	for range soakWorkers {
		wg.Go(func() {
			l.worker(func() (int64, time.Time, bool) {
				n := seq.Add(1) - 1
				due := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
				if !due.Before(end) || ctx.Err() != nil {
					return 0, due, false
				}
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				return n, due, true
			})
		})
	}
	wg.Wait()
}

func (l *soakLoad) fail(msg string) {
	l.nerrs.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.winErrs++
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	if l.byCause == nil {
		l.byCause = map[string]int64{}
	}
	l.byCause[errCause(msg)]++
}

// errCause is the kind of an error message, for counting: what failed and
// how (a deny past engine.timeout, a status, else the message's start).
func errCause(msg string) string {
	what, rest, _ := strings.Cut(msg, ": ")
	if strings.HasPrefix(what, "push ") {
		what = "push"
	}
	switch {
	case strings.Contains(rest, `"verdict:timeout"`):
		return what + ": denied past engine.timeout"
	case strings.HasPrefix(rest, "status "):
		code, _, _ := strings.Cut(strings.TrimPrefix(rest, "status "), ":")
		return what + ": status " + code
	}
	if len(rest) > 60 {
		rest = rest[:60] + "…"
	}
	return what + ": " + rest
}

func (l *soakLoad) errors() int64 { return l.nerrs.Load() }

// firstErrors is the count of each kind of error, and the first messages.
func (l *soakLoad) firstErrors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.causes() + "; the first: " + strings.Join(l.errs, "; ")
}

// causes counts the errors of each kind, the most frequent first; l.mu is held.
func (l *soakLoad) causes() string {
	var out []string
	for c, n := range l.byCause {
		out = append(out, fmt.Sprintf("%d × %s", n, c))
	}
	slices.SortFunc(out, func(a, b string) int {
		na, _ := strconv.Atoi(a[:strings.IndexByte(a, ' ')])
		nb, _ := strconv.Atoi(b[:strings.IndexByte(b, ' ')])
		return cmp.Or(nb-na, strings.Compare(a, b))
	})
	return strings.Join(out, ", ")
}

// reset forgets the capacity bursts' counts.
func (l *soakLoad) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lat, l.winErrs, l.winFrom = nil, 0, time.Now()
	l.total.Store(0)
	l.winN.Store(0)
	for i := range l.byKind {
		l.byKind[i].Store(0)
	}
}

// soakRow is one line of the report: a window of the run.
type soakRow struct {
	at            time.Duration
	rps           float64
	cores         float64 // the server's CPU time over the window's
	errs          int64
	sample        procSample
	p50, p99, max time.Duration
}

// row closes the current report window with the sample s.
func (l *soakLoad) row(prev, s procSample) soakRow {
	l.mu.Lock()
	lat, errs, from := l.lat, l.winErrs, l.winFrom
	l.lat, l.winErrs, l.winFrom = make([]time.Duration, 0, len(lat)), 0, time.Now()
	n := l.winN.Swap(0)
	l.mu.Unlock()
	r := soakRow{at: s.at, errs: errs, sample: s, rps: float64(n) / time.Since(from).Seconds(),
		cores: float64(s.cpu-prev.cpu) / float64(s.at-prev.at)}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

func (r soakRow) line() string {
	return fmt.Sprintf("| %v | %.0f | %d | %.1f MiB | %d | %d | %v | %v | %v | %.2f | %s |", r.at.Round(time.Second), r.rps, r.errs,
		mib(r.sample.rss), r.sample.goroutines, r.sample.fds, roundLatency(r.p50), roundLatency(r.p99), roundLatency(r.max), r.cores, r.sample.load)
}

func roundLatency(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Millisecond)
}

// soakTable is the report: the run's parameters, one row per window, and
// the totals.
func soakTable(d time.Duration, capacity, rate float64, pushEvery time.Duration, rows []soakRow, samples []procSample,
	l *soakLoad, pushes []time.Duration, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak %v: capacity %.0f req/s (the lower of CEL and Rego, closed loop, %d connections), open loop at %.0f req/s (%.0f%%), a signed bundle push every %v\n\n",
		d, capacity, soakWorkers, rate, 100*(*soakShare), pushEvery)
	b.WriteString("| time | req/s | errors | RSS | goroutines | open files | p50 | p99 | max | server CPU (cores) | machine load |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r.line() + "\n")
	}
	total := l.total.Load()
	fmt.Fprintf(&b, "\n%d requests in %v (%.0f req/s): ", total, d, float64(total)/d.Seconds())
	for k := range soakKinds {
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", l.byKind[k].Load(), soakKindNames[k])
	}
	l.mu.Lock()
	causes := l.causes()
	l.mu.Unlock()
	fmt.Fprintf(&b, "; %d errors", l.errors())
	if causes != "" {
		fmt.Fprintf(&b, " (%s)", causes)
	}
	b.WriteString("\n")
	slices.Sort(pushes)
	if len(pushes) > 0 {
		fmt.Fprintf(&b, "%d bundle pushes (Rego and CEL in turn), each %v to %v from the request to active\n",
			len(pushes), pushes[0].Round(time.Millisecond), pushes[len(pushes)-1].Round(time.Millisecond))
	}
	if len(samples) > 0 {
		first, last := samples[0], samples[len(samples)-1]
		lo, hi := first, first
		for _, s := range samples {
			lo.rss, hi.rss = min(lo.rss, s.rss), max(hi.rss, s.rss)
			lo.goroutines, hi.goroutines = min(lo.goroutines, s.goroutines), max(hi.goroutines, s.goroutines)
		}
		fmt.Fprintf(&b, "RSS %.1f MiB at %v, %.1f MiB at the end (%.1f–%.1f); goroutines %d, %d at the end (%d–%d); %d samples, every %v\n",
			mib(first.rss), first.at.Round(time.Second), mib(last.rss), mib(lo.rss), mib(hi.rss),
			first.goroutines, last.goroutines, lo.goroutines, hi.goroutines, len(samples), soakEvery)
	}
	fmt.Fprintf(&b, "the whole soak, stop included: %v\n", elapsed.Round(time.Second))
	return b.String()
}
