package decisionlog

import (
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// receiver is a real decision-log service: an HTTP server on 127.0.0.1
// that checks each upload as OPA's API has it (POST, gzipped JSON array)
// and keeps the events it accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// status, when not 0, is the answer instead of 200; nothing is kept.
	status atomic.Int32
	// hold, when not nil, blocks every upload until it is closed.
	hold     chan struct{}
	attempts atomic.Int32

	mu      sync.Mutex
	batches [][]map[string]any
	raw     []string
	auth    []string
	tenant  []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.attempts.Add(1)
	if r.hold != nil {
		<-r.hold
	}
	if req.Method != http.MethodPost || req.URL.Path != "/logs" || req.Header.Get("Content-Encoding") != "gzip" ||
		req.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(req.Header.Get("User-Agent"), "verdict/") {
		r.t.Errorf("upload %s %s with headers %v: not as OPA's decision log API has it", req.Method, req.URL.Path, req.Header)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	zr, err := gzip.NewReader(req.Body)
	if err != nil {
		r.t.Errorf("the upload is not gzipped: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		r.t.Errorf("the upload's gzip: %v", err)
	}
	var events []map[string]any
	if err := json.Unmarshal(raw, &events); err != nil {
		r.t.Errorf("the upload is no JSON array: %v: %s", err, raw)
	}
	if s := r.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	r.mu.Lock()
	r.batches = append(r.batches, events)
	r.raw = append(r.raw, string(raw))
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	r.tenant = append(r.tenant, req.Header.Get("X-Tenant"))
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// newReceiver starts a receiver; it is closed when the test ends (after
// the Logger the test starts later has stopped).
func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// events are every event accepted so far, in arrival order.
func (r *receiver) events() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}

func (r *receiver) count() int { return len(r.events()) }

// shipConfig is sink http to url with quick uploads.
func shipConfig(url string) Config {
	cfg := Default()
	cfg.Sink = SinkHTTP
	cfg.HTTP.URL = url
	cfg.HTTP.MinDelay, cfg.HTTP.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	return cfg
}

func newShipping(t *testing.T, cfg Config, log *slog.Logger) *Logger {
	t.Helper()
	l, err := New(cfg, nil, log, WithVersion("1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ids are the decision ids of events, each once; a repeat fails t.
func ids(t *testing.T, events []map[string]any) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range events {
		id, _ := e["decision_id"].(string)
		if out[id] {
			t.Errorf("%s shipped twice", id)
		}
		out[id] = true
	}
	return out
}

func TestShipOPAEvents(t *testing.T) {
	r := newReceiver(t)
	cfg := shipConfig(r.srv.URL + "/logs")
	cfg.Redact = append(cfg.Redact, "/subject/properties/email", "/token/groups")
	cfg.HTTP.BatchMaxRecords = 10
	cfg.HTTP.Labels = map[string]string{"env": "test"}
	l := newShipping(t, cfg, nil)
	stop := run(t, l)
	const n = 25
	for i := range n {
		rec := testRecord(fmt.Sprint(i), i%2 == 0)
		if i == 1 {
			rec.Error = engine.ReasonTimeout
		}
		l.Log(rec)
	}
	stop()

	r.mu.Lock()
	batches, raw := r.batches, strings.Join(r.raw, "\n")
	r.mu.Unlock()
	for _, b := range batches {
		if len(b) > 10 {
			t.Errorf("a batch of %d events, want at most batch_max_records 10", len(b))
		}
	}
	events := r.events()
	if len(events) != n || len(ids(t, events)) != n || l.Written() != n {
		t.Fatalf("%d events (%d written), want %d", len(events), l.Written(), n)
	}
	e0, e1 := events[0], events[1]
	labels := e0["labels"].(map[string]any)
	if id, _ := labels["id"].(string); len(id) != 36 || labels["version"] != "1.2.3" || labels["env"] != "test" || len(labels) != 3 {
		t.Errorf("labels %v: want id (a UUID), version and the configured env", labels)
	}
	for k, want := range map[string]any{"decision_id": "dec-0", "path": "verdict/decide", "requested_by": "",
		"timestamp": "2026-01-02T03:04:05Z", "bundles": map[string]any{"verdict": map[string]any{"revision": "rev1"}},
		"result":          map[string]any{"decision": true, "reasons": []any{"r"}},
		"metrics":         map[string]any{"timer_server_handler_ns": 1.5e6, "counter_server_query_cache_hit": 1.0},
		"request_context": map[string]any{"http": map[string]any{"headers": map[string]any{"X-Request-Id": []any{"req-0"}}}},
	} {
		if !reflect.DeepEqual(e0[k], want) {
			t.Errorf("%s = %#v, want %#v", k, e0[k], want)
		}
	}
	if _, ok := e0["error"]; ok {
		t.Errorf("a decision that did not fail has an error: %v", e0["error"])
	}
	if want := map[string]any{"code": engine.ReasonTimeout, "message": "the decision failed and was denied: " + engine.ReasonTimeout}; !reflect.DeepEqual(e1["error"], want) ||
		e1["result"].(map[string]any)["decision"] != false {
		t.Errorf("failed decision: error %v, result %v", e1["error"], e1["result"])
	}
	if !reflect.DeepEqual(e1["labels"], e0["labels"]) {
		t.Errorf("labels differ between events: %v, %v", e0["labels"], e1["labels"])
	}
	// Redacted as the other sinks redact.
	in := e0["input"].(map[string]any)
	if want := map[string]any{"sub": "0", "iss": "https://idp", "client_id": "app"}; !reflect.DeepEqual(in["token"], want) {
		t.Errorf("token = %v, want only the allowed claims", in["token"])
	}
	if props := in["subject"].(map[string]any)["properties"].(map[string]any); props["email"] != nil || props["dept"] != "eng" {
		t.Errorf("subject properties %v: want the email removed", props)
	}
	ctx := in["context"].(map[string]any)
	if !reflect.DeepEqual(ctx["headers"], map[string]any{"x-tenant": "t1"}) || !reflect.DeepEqual(ctx["nested"], map[string]any{"keep": true}) {
		t.Errorf("context %v: want authorization and subject_token removed", ctx)
	}
	for _, secret := range []string{"Bearer secret", "eyJ.jwt", "@example.com"} {
		if strings.Contains(raw, secret) {
			t.Errorf("a redacted value %q was shipped", secret)
		}
	}
	if h, _ := l.RecentInputs(t.Context(), 100); len(h) != n {
		t.Errorf("history has %d inputs, want %d: shipping keeps it", len(h), n)
	}
}

func TestShipBatchMaxBytes(t *testing.T) {
	r := newReceiver(t)
	cfg := shipConfig(r.srv.URL + "/logs")
	cfg.HTTP.BatchMaxBytes = 1 // every record is larger: each goes alone
	l := newShipping(t, cfg, nil)
	stop := run(t, l)
	for i := range 5 {
		l.Log(testRecord(fmt.Sprint(i), true))
	}
	stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 5 {
		t.Fatalf("%d batches, want 5 of one event", len(r.batches))
	}
	for _, b := range r.batches {
		if len(b) != 1 {
			t.Errorf("a batch of %d events", len(b))
		}
	}
}

// TestShipRetriesUntilReceiverBack: while the receiver cannot be reached
// (nothing listens) or answers 503, records are kept and retried; all
// arrive once it is back.
func TestShipRetriesUntilReceiverBack(t *testing.T) {
	t.Run("closed listener", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		l := newShipping(t, shipConfig("http://"+addr+"/logs"), nil)
		stop := run(t, l)
		for i := range 50 {
			l.Log(testRecord(fmt.Sprint(i), true))
		}
		testutil.WaitFor(t, "failed uploads", 5*time.Millisecond, func() bool { return l.Stats().UploadFailures[FailNetwork] >= 2 })
		r := &receiver{t: t}
		r.srv = httptest.NewUnstartedServer(r)
		testutil.WaitFor(t, "the address again", 10*time.Millisecond, func() bool {
			ln, err = net.Listen("tcp", addr)
			if errors.Is(err, syscall.EADDRINUSE) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			return true
		})
		r.srv.Listener = ln
		r.srv.Start()
		t.Cleanup(r.srv.Close)
		testutil.WaitFor(t, "every record", 5*time.Millisecond, func() bool { return r.count() == 50 })
		stop()
		if st := l.Stats(); st.Written != 50 || st.DroppedBufferFull+st.DroppedUnsent+st.DroppedRejected != 0 || st.Buffered != 0 {
			t.Errorf("stats %+v", st)
		}
		ids(t, r.events())
	})
	t.Run("503", func(t *testing.T) {
		r := newReceiver(t)
		r.status.Store(http.StatusServiceUnavailable)
		l := newShipping(t, shipConfig(r.srv.URL+"/logs"), nil)
		stop := run(t, l)
		for i := range 50 {
			l.Log(testRecord(fmt.Sprint(i), true))
		}
		testutil.WaitFor(t, "failed uploads", 5*time.Millisecond, func() bool { return l.Stats().UploadFailures[FailUnavailable] >= 3 })
		r.status.Store(0)
		testutil.WaitFor(t, "every record", 5*time.Millisecond, func() bool { return r.count() == 50 })
		stop()
		if st := l.Stats(); st.Written != 50 || st.DroppedBufferFull != 0 || st.UploadFailures[FailRejected] != 0 {
			t.Errorf("stats %+v", st)
		}
		ids(t, r.events())
	})
}

// TestShipSmallBufferDropsOldest: while the receiver answers 503 only
// buffer records (and the batch held for retry) are kept; the oldest
// beyond are dropped, and every record is either shipped or counted.
func TestShipSmallBufferDropsOldest(t *testing.T) {
	r := newReceiver(t)
	r.status.Store(http.StatusServiceUnavailable)
	cfg := shipConfig(r.srv.URL + "/logs")
	cfg.HTTP.Buffer, cfg.HTTP.BatchMaxRecords = 5, 3
	l := newShipping(t, cfg, nil)
	stop := run(t, l)
	const n = 50
	for i := range n {
		l.Log(testRecord(fmt.Sprint(i), true))
	}
	testutil.WaitFor(t, "every record buffered or dropped", 5*time.Millisecond, func() bool {
		st := l.Stats()
		return st.UploadFailures[FailUnavailable] >= 1 && uint64(st.Buffered)+st.DroppedBufferFull == n
	})
	r.status.Store(0)
	testutil.WaitFor(t, "the buffer shipped", 5*time.Millisecond, func() bool { return l.Stats().Buffered == 0 })
	stop()
	st := l.Stats()
	got := ids(t, r.events())
	if uint64(len(got)) != st.Written || st.Written+st.DroppedBufferFull != n {
		t.Fatalf("%d shipped, stats %+v: want every record shipped or dropped", len(got), st)
	}
	if len(got) > 5+3 {
		t.Errorf("%d shipped, want at most buffer 5 + a batch of 3", len(got))
	}
	for i := n - 5; i < n; i++ {
		if !got[fmt.Sprintf("dec-%d", i)] {
			t.Errorf("dec-%d, one of the newest, was not shipped: the oldest are dropped", i)
		}
	}
	if st.DroppedQueueFull != 0 {
		t.Errorf("%d dropped from the queue: the log's goroutine waited for the receiver", st.DroppedQueueFull)
	}
}

// TestShipSlowReceiverNeverBlocksLog: with an upload stuck at the
// receiver every Log call returns and the log's goroutine keeps taking
// records into the buffer; they all arrive once the receiver answers.
func TestShipSlowReceiverNeverBlocksLog(t *testing.T) {
	r := &receiver{t: t, hold: make(chan struct{})}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	released := false
	release := func() {
		if !released {
			released = true
			close(r.hold)
		}
	}
	cfg := shipConfig(r.srv.URL + "/logs")
	cfg.HTTP.BatchMaxRecords, cfg.HTTP.Timeout = 100, time.Minute
	l := newShipping(t, cfg, nil)
	stop := run(t, l)
	t.Cleanup(release) // on failure: before the Logger stops and the server closes
	const n = 1000
	var returned atomic.Int64
	go func() {
		for i := range n {
			l.Log(testRecord(fmt.Sprint(i), true))
			returned.Add(1)
		}
	}()
	testutil.WaitFor(t, "an upload at the receiver", time.Millisecond, func() bool { return r.attempts.Load() >= 1 })
	testutil.WaitFor(t, "every Log call to return", time.Millisecond, func() bool { return returned.Load() == n })
	testutil.WaitFor(t, "every record taken into the buffer", time.Millisecond, func() bool { return l.Stats().Buffered == n })
	if got := r.count(); got != 0 || r.attempts.Load() != 1 {
		t.Fatalf("%d events accepted in %d attempts while the receiver holds the first upload", got, r.attempts.Load())
	}
	release()
	testutil.WaitFor(t, "every record", 5*time.Millisecond, func() bool { return r.count() == n })
	stop()
	if st := l.Stats(); st.DroppedQueueFull+st.DroppedBufferFull != 0 || st.Written != n {
		t.Errorf("stats %+v", st)
	}
}

func TestShipBearerTokenAndHeaders(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		mod  func(*HTTP)
		want string
	}{
		"inline": {func(h *HTTP) { h.BearerToken = "tok-inline" }, "Bearer tok-inline"},
		"file":   {func(h *HTTP) { h.BearerTokenFile = tokenFile }, "Bearer tok-from-file"},
		"none":   {func(*HTTP) {}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := newReceiver(t)
			cfg := shipConfig(r.srv.URL + "/logs")
			cfg.HTTP.Headers = map[string]string{"X-Tenant": "acme"}
			c.mod(&cfg.HTTP)
			l := newShipping(t, cfg, nil)
			stop := run(t, l)
			l.Log(testRecord("a", true))
			stop()
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.auth) != 1 || r.auth[0] != c.want || r.tenant[0] != "acme" {
				t.Errorf("Authorization %q, X-Tenant %q; want %q and acme", r.auth, r.tenant, c.want)
			}
		})
	}
}

// TestShipMutualTLS: a receiver that requires a client certificate gets
// the batches with the configured one, and none without.
func TestShipMutualTLS(t *testing.T) {
	pki := testutil.NewPKI(t, "logs")
	serverCert, _, _ := pki.Issue("127.0.0.1", false)
	_, certFile, keyFile := pki.Issue("verdict", true)
	r := &receiver{t: t}
	r.srv = httptest.NewUnstartedServer(r)
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pki.Pool, MinVersion: tls.VersionTLS12}
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)

	for name, c := range map[string]struct {
		tls     ClientTLS
		shipped int
	}{
		"client certificate": {ClientTLS{CAFile: pki.CAFile, CertFile: certFile, KeyFile: keyFile}, 3},
		"no certificate":     {ClientTLS{CAFile: pki.CAFile}, 0},
		"system roots":       {ClientTLS{CertFile: certFile, KeyFile: keyFile}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			before := r.count()
			cfg := shipConfig(r.srv.URL + "/logs")
			cfg.HTTP.TLS = c.tls
			cfg.HTTP.Timeout = 5 * time.Second
			l := newShipping(t, cfg, nil)
			stop := run(t, l)
			for i := range 3 {
				l.Log(testRecord(name+fmt.Sprint(i), true))
			}
			if c.shipped == 0 {
				testutil.WaitFor(t, "a refused upload", 5*time.Millisecond, func() bool { return l.Stats().UploadFailures[FailNetwork] >= 1 })
			}
			stop()
			st := l.Stats()
			if got := r.count() - before; got != c.shipped || st.Written != uint64(c.shipped) || st.DroppedUnsent != uint64(3-c.shipped) {
				t.Errorf("%d shipped, stats %+v; want %d shipped and the rest unsent", got, st, c.shipped)
			}
		})
	}
}

// TestShipRejectedBatchDropped: a 400 drops the batch, counted and logged
// once; the next batch still goes.
func TestShipRejectedBatchDropped(t *testing.T) {
	r := newReceiver(t)
	r.status.Store(http.StatusBadRequest)
	cfg := shipConfig(r.srv.URL + "/logs")
	// Uploads only when a batch is full, or at stop.
	cfg.HTTP.MinDelay, cfg.HTTP.MaxDelay, cfg.HTTP.BatchMaxRecords = time.Hour, time.Hour, 5
	var out testutil.SyncBuffer
	l := newShipping(t, cfg, slog.New(slog.NewTextHandler(&out, nil)))
	stop := run(t, l)
	for i := range 5 {
		l.Log(testRecord(fmt.Sprint(i), true))
	}
	testutil.WaitFor(t, "the rejected batch", 5*time.Millisecond, func() bool { return l.Stats().DroppedRejected == 5 })
	r.status.Store(0)
	for i := 5; i < 8; i++ {
		l.Log(testRecord(fmt.Sprint(i), true))
	}
	stop()
	st := l.Stats()
	if st.Written != 3 || r.count() != 3 || st.UploadFailures[FailRejected] != 1 || st.UploadFailures[FailUnavailable] != 0 {
		t.Errorf("stats %+v, %d shipped: want 5 rejected once, then 3 shipped", st, r.count())
	}
	logs := out.String()
	if strings.Count(logs, "rejected a batch") != 1 || !strings.Contains(logs, "status 400") || !strings.Contains(logs, "level=WARN") {
		t.Errorf("want one WARN with the status:\n%s", logs)
	}
}

// TestShipStop: at stop everything buffered goes in one last attempt; if
// that fails, what is left is counted as unsent, exactly.
func TestShipStop(t *testing.T) {
	for name, status := range map[string]int32{"receiver up": 0, "receiver failing": http.StatusBadGateway} {
		t.Run(name, func(t *testing.T) {
			r := newReceiver(t)
			r.status.Store(status)
			cfg := shipConfig(r.srv.URL + "/logs")
			cfg.HTTP.MinDelay, cfg.HTTP.MaxDelay, cfg.HTTP.BatchMaxRecords = time.Hour, time.Hour, 10
			l := newShipping(t, cfg, nil)
			stop := run(t, l)
			for i := range 7 {
				l.Log(testRecord(fmt.Sprint(i), true))
			}
			stop()
			st := l.Stats()
			if status == 0 && (r.count() != 7 || st.Written != 7 || st.DroppedUnsent != 0) ||
				status != 0 && (r.count() != 0 || st.Written != 0 || st.DroppedUnsent != 7 || r.attempts.Load() != 1) {
				t.Errorf("%d shipped in %d attempts, stats %+v", r.count(), r.attempts.Load(), st)
			}
			if st.Buffered != 0 {
				t.Errorf("%d still buffered after stop", st.Buffered)
			}
		})
	}
}

func TestBackoffAndBetween(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for range 100 {
		b := newBackoff(lo, hi)
		// The n-th wait is lo·2^(n-1) (at most hi), ±50%.
		for n, base := range []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo, 16 * lo, hi, hi, hi} {
			if d := b.NextBackOff(); d < base/2 || d > base*3/2 {
				t.Fatalf("wait after %d failures = %s, want in [%s, %s]", n+1, d, base/2, base*3/2)
			}
		}
		b.Reset()
		if d := b.NextBackOff(); d < lo/2 || d > lo*3/2 {
			t.Fatalf("after Reset the wait is %s, want about %s", d, lo)
		}
	}
	for range 100 {
		if d := between(lo, hi); d < lo || d > hi {
			t.Fatalf("between = %s", d)
		}
	}
	if d := between(lo, lo); d != lo {
		t.Fatalf("between(lo, lo) = %s", d)
	}
}

func TestValidateHTTP(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t, "logs")
	_, certFile, keyFile := pki.Issue("verdict", true)
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		mod  func(*HTTP)
		want string // "" valid
	}{
		"no url":              {func(h *HTTP) { h.URL = "" }, "decision_logs.http.url is required"},
		"scheme":              {func(h *HTTP) { h.URL = "ftp://logs/x" }, "http:// or https://"},
		"no host":             {func(h *HTTP) { h.URL = "https:///logs" }, "no host"},
		"credentials":         {func(h *HTTP) { h.URL = "https://u:p@logs/" }, "credentials"},
		"cert without key":    {func(h *HTTP) { h.TLS.CertFile = certFile }, "cert_file and key_file"},
		"key without cert":    {func(h *HTTP) { h.TLS.KeyFile = keyFile }, "cert_file and key_file"},
		"bad cert":            {func(h *HTTP) { h.TLS.CertFile, h.TLS.KeyFile = keyFile, certFile }, "client certificate"},
		"missing ca":          {func(h *HTTP) { h.TLS.CAFile = filepath.Join(dir, "nope.pem") }, "tls.ca_file"},
		"tls on http":         {func(h *HTTP) { h.URL = "http://127.0.0.1/logs"; h.TLS.CAFile = pki.CAFile }, "url is http://"},
		"token over http":     {func(h *HTTP) { h.URL = "http://logs.example/x"; h.BearerToken = "t" }, "over https only"},
		"two tokens":          {func(h *HTTP) { h.BearerToken, h.BearerTokenFile = "t", empty }, "not both"},
		"missing token file":  {func(h *HTTP) { h.BearerTokenFile = filepath.Join(dir, "nope") }, "bearer_token_file"},
		"empty token file":    {func(h *HTTP) { h.BearerTokenFile = empty }, "holds no token"},
		"reserved header":     {func(h *HTTP) { h.Headers = map[string]string{"content-encoding": "br"} }, "set by Verdict"},
		"auth header & token": {func(h *HTTP) { h.BearerToken = "t"; h.Headers = map[string]string{"Authorization": "x"} }, "set one"},
		"header name":         {func(h *HTTP) { h.Headers = map[string]string{"Bad Name": "x"} }, "no header name"},
		"header value":        {func(h *HTTP) { h.Headers = map[string]string{"X-Key": "a\r\nb"} }, "no header value"},
		"label id":            {func(h *HTTP) { h.Labels = map[string]string{"id": "x"} }, "labels: id"},
		"timeout":             {func(h *HTTP) { h.Timeout = 0 }, "http.timeout"},
		"delays":              {func(h *HTTP) { h.MaxDelay = h.MinDelay / 2 }, "max_delay at least min_delay"},
		"buffer":              {func(h *HTTP) { h.Buffer = 0 }, "http.buffer must be positive"},
		"batch bytes":         {func(h *HTTP) { h.BatchMaxBytes = -1 }, "batch_max_bytes"},
		"token to loopback":   {func(h *HTTP) { h.URL = "http://127.0.0.1:9/logs"; h.BearerToken = "t" }, ""},
		"mtls":                {func(h *HTTP) { h.TLS = ClientTLS{CAFile: pki.CAFile, CertFile: certFile, KeyFile: keyFile} }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Default()
			cfg.Sink = SinkHTTP
			cfg.HTTP.URL = "https://logs.example/logs"
			c.mod(&cfg.HTTP)
			err := cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "a\r\nb") {
				t.Error("a header value is in the error")
			}
			if _, err := New(cfg, nil, nil); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	// The section is checked with any sink, but its URL and files only
	// with sink http.
	cfg := Default()
	cfg.HTTP.BearerTokenFile = filepath.Join(dir, "nope")
	if err := cfg.Validate(); err != nil {
		t.Errorf("sink none reads the http section's files: %v", err)
	}
	cfg.HTTP.Buffer = 0
	if err := cfg.Validate(); err == nil {
		t.Error("a bad http.buffer passed with sink none")
	}
}
