package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/verdictpdp/verdict/engine"
)

// BundleName names Verdict's active bundles in an event's bundles map
// (OPA keys it by bundle name; Verdict decides with one snapshot).
const BundleName = "verdict"

// event is one decision in OPA's decision-log format (the elements of the
// array the decision log service API receives), so that OPA's log
// collectors accept it. Fields OPA has and Verdict does not know are left
// out; Verdict adds none of its own at the top level.
type event struct {
	Labels     map[string]string `json:"labels"`
	DecisionID string            `json:"decision_id"`
	// TraceID and SpanID name the decision's span when it was traced.
	TraceID string                `json:"trace_id,omitempty"`
	SpanID  string                `json:"span_id,omitempty"`
	Bundles map[string]bundleInfo `json:"bundles,omitempty"`
	// Path is verdict/<endpoint>: verdict/decide, verdict/authzen or
	// verdict/forward_auth.
	Path  string         `json:"path"`
	Input map[string]any `json:"input,omitempty"`
	// Result is what was decided: {"decision": bool, "reasons": [...]}.
	Result eventResult `json:"result"`
	// Error is set for a failed decision (a deny by failure).
	Error *eventError `json:"error,omitempty"`
	// RequestedBy is the address the request came from (host:port), as
	// OPA logs it; "" for a decision made in-process.
	RequestedBy string `json:"requested_by"`
	// Timestamp is when the decision started, RFC 3339 with nanoseconds.
	Timestamp string `json:"timestamp"`
	// Metrics are timer_server_handler_ns (time spent deciding) and, for
	// a decision answered from the cache, counter_server_query_cache_hit.
	Metrics        map[string]int64 `json:"metrics"`
	RequestContext *requestContext  `json:"request_context,omitempty"`
}

type bundleInfo struct {
	Revision string `json:"revision"`
}

type eventResult struct {
	Decision bool     `json:"decision"`
	Reasons  []string `json:"reasons"`
}

type eventError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// requestContext carries the request's X-Request-Id as OPA carries the
// request headers it is configured to log (OPA's req_id is a number and
// cannot hold it).
type requestContext struct {
	HTTP struct {
		Headers map[string][]string `json:"headers"`
	} `json:"http"`
}

// newEvent is rec, with its input already redacted to in, as an event
// labelled labels.
func newEvent(rec Record, in *engine.Input, labels map[string]string) event {
	e := event{Labels: labels, DecisionID: rec.DecisionID, Path: "verdict/" + rec.Endpoint,
		Result:    eventResult{Decision: rec.Allow, Reasons: rec.Reasons},
		Timestamp: rec.Time.UTC().Format(time.RFC3339Nano), RequestedBy: rec.RemoteAddr,
		TraceID: rec.TraceID, SpanID: rec.SpanID,
		Metrics: map[string]int64{"timer_server_handler_ns": rec.Duration.Nanoseconds()}}
	if e.Result.Reasons == nil {
		e.Result.Reasons = []string{}
	}
	if rec.Revision != "" {
		e.Bundles = map[string]bundleInfo{BundleName: {Revision: rec.Revision}}
	}
	if in != nil {
		e.Input = in.Doc()
	}
	if rec.Error != "" {
		e.Error = &eventError{Code: rec.Error, Message: "the decision failed and was denied: " + rec.Error}
	}
	if rec.CacheHit {
		e.Metrics["counter_server_query_cache_hit"] = 1
	}
	if rec.RequestID != "" {
		e.RequestContext = &requestContext{}
		e.RequestContext.HTTP.Headers = map[string][]string{"X-Request-Id": {rec.RequestID}}
	}
	return e
}

// Reasons an upload failed, as Stats counts them.
const (
	// FailNetwork: no response (connection refused, timeout, TLS).
	FailNetwork = iota
	// FailUnavailable: 5xx, 429 or 408; the batch is retried.
	FailUnavailable
	// FailRejected: any other status but 2xx; the batch is dropped.
	FailRejected
	numFails
)

// batch is records taken from the buffer for one upload, gzipped once and
// retried as they are.
type batch struct {
	n    int
	body []byte
}

// shipper uploads encoded events in batches on its own goroutine (run),
// retrying with back-off while the Logger keeps adding to its bounded
// buffer.
type shipper struct {
	cfg     HTTP
	client  *http.Client
	token   string
	agent   string
	labels  map[string]string
	log     *slog.Logger
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	pending [][]byte // encoded events, oldest first
	bytes   int      // of pending
	flying  int      // records in the batch being uploaded or retried

	shipped, overflow, rejected, unsent atomic.Uint64
	fails                               [numFails]atomic.Uint64
	lastDropWarn                        time.Time // run's goroutine only
	warnedDrops                         uint64
}

func newShipper(cfg HTTP, version string, log *slog.Logger) (*shipper, error) {
	client, err := cfg.client()
	if err != nil {
		return nil, err
	}
	tok, err := cfg.token()
	if err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(cfg.Labels)+2)
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	labels["id"], labels["version"] = uuid.NewString(), version
	return &shipper{cfg: cfg, client: client, token: tok, agent: "verdict/" + version, labels: labels, log: log,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}, nil
}

// add queues the encoded event b, dropping the oldest waiting when the
// buffer is over its bounds, and wakes run when a batch is full. It only
// takes the buffer's lock: it never waits for an upload.
func (s *shipper) add(b []byte) {
	s.mu.Lock()
	s.pending = append(s.pending, b)
	s.bytes += len(b)
	var dropped uint64
	for len(s.pending) > 0 && (len(s.pending) > s.cfg.Buffer || s.bytes > s.cfg.BufferMaxBytes) {
		s.bytes -= len(s.pending[0])
		s.pending[0] = nil
		s.pending = s.pending[1:]
		dropped++
	}
	full := s.fullLocked()
	s.mu.Unlock()
	s.overflow.Add(dropped)
	if full {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// fullLocked reports whether a whole batch waits (or the buffer is full):
// then it goes without waiting for the interval.
func (s *shipper) fullLocked() bool {
	return len(s.pending) >= s.cfg.BatchMaxRecords || s.bytes >= s.cfg.BatchMaxBytes || len(s.pending) >= s.cfg.Buffer
}

func (s *shipper) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fullLocked()
}

// take removes the next batch from the buffer, oldest first, and gzips it
// as a JSON array; ok is false when nothing waits.
func (s *shipper) take() (b batch, ok bool) {
	s.mu.Lock()
	n, size := 0, 2
	for n < len(s.pending) && n < s.cfg.BatchMaxRecords {
		next := size + len(s.pending[n]) + 1
		if n > 0 && next > s.cfg.BatchMaxBytes {
			break
		}
		size, n = next, n+1
	}
	events := make([][]byte, n)
	copy(events, s.pending[:n])
	clear(s.pending[:n])
	s.pending = s.pending[n:]
	for _, e := range events {
		s.bytes -= len(e)
	}
	s.flying = n
	s.mu.Unlock()
	if n == 0 {
		return b, false
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = zw.Write([]byte{'['})
	_, _ = zw.Write(bytes.Join(events, []byte{','}))
	_, _ = zw.Write([]byte{']'})
	_ = zw.Close()
	return batch{n: n, body: buf.Bytes()}, true
}

// landed ends the batch in flight.
func (s *shipper) landed() {
	s.mu.Lock()
	s.flying = 0
	s.mu.Unlock()
}

// drain empties the buffer and returns how many records it held.
func (s *shipper) drain() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pending)
	s.pending, s.bytes = nil, 0
	return n
}

func (s *shipper) buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) + s.flying
}

// outcome of one upload.
type outcome int

const (
	delivered outcome = iota
	retry
	rejected
)

// upload posts b once, bounded by ctx, and says what became of it.
func (s *shipper) upload(ctx context.Context, b batch) (outcome, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(b.body))
	if err != nil {
		return rejected, err
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", s.agent)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.fails[FailNetwork].Add(1)
		return retry, err
	}
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return delivered, nil
	case c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout:
		s.fails[FailUnavailable].Add(1)
		return retry, fmt.Errorf("status %d", c)
	default:
		s.fails[FailRejected].Add(1)
		return rejected, fmt.Errorf("status %d", c)
	}
}

// send uploads b and accounts for it; it returns false when b is to be
// retried.
func (s *shipper) send(ctx context.Context, b batch, failures *int) bool {
	out, err := s.upload(ctx, b)
	switch out {
	case delivered:
		s.shipped.Add(uint64(b.n))
		if *failures > 0 {
			s.log.Info("decision log: upload recovered", "url", s.cfg.URL, "failed_attempts", *failures)
		}
		*failures = 0
	case rejected:
		// Permanent: the same body would be refused again.
		s.rejected.Add(uint64(b.n))
		s.log.Warn("decision log: the receiver rejected a batch; its records are dropped", "url", s.cfg.URL,
			"error", err, "records", b.n)
		*failures = 0
	case retry:
		if *failures == 0 {
			s.log.Warn("decision log: upload failed; retrying with back-off, records are buffered (decision_logs.http.buffer)",
				"url", s.cfg.URL, "error", err, "records", b.n)
		} else {
			s.log.Debug("decision log: upload failed again", "url", s.cfg.URL, "error", err, "attempt", *failures+1)
		}
		*failures++
		return false
	}
	s.landed()
	return true
}

// run uploads until closing is closed, then makes the last attempt. Call
// it once, on its own goroutine; done is closed when it returned.
func (s *shipper) run(ctx context.Context) {
	defer close(s.done)
	defer s.client.CloseIdleConnections()
	var (
		cur      batch
		holding  bool // cur failed and waits for its retry
		failures int
		retries  = newBackoff(s.cfg.MinDelay, s.cfg.MaxDelay)
	)
	t := time.NewTimer(between(s.cfg.MinDelay, s.cfg.MaxDelay))
	defer t.Stop()
	for {
		wake := s.wake
		if holding {
			wake = nil // backing off: a full batch waits too
		}
		select {
		case <-s.closing:
			s.last(ctx, cur, holding)
			return
		case <-t.C:
		case <-wake:
		}
		next := between(s.cfg.MinDelay, s.cfg.MaxDelay)
		for {
			var more bool
			if cur, more = s.nextBatch(cur, holding); !more {
				break
			}
			uctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			ok := s.send(uctx, cur, &failures)
			cancel()
			if holding = !ok; holding {
				next = min(retries.NextBackOff(), s.cfg.MaxDelay)
				break
			}
			retries.Reset()
			if closed(s.closing) || !s.full() {
				break
			}
		}
		s.warnDrops()
		t.Reset(next)
	}
}

// nextBatch is the batch to upload: cur again while it is held for a
// retry, else the next one taken from the buffer; more is false when
// nothing waits.
func (s *shipper) nextBatch(cur batch, holding bool) (b batch, more bool) {
	if holding {
		return cur, true
	}
	if b, more = s.take(); !more {
		s.landed()
	}
	return b, more
}

// last is the attempt at stop: the batch held for retry, then everything
// buffered, all within one timeout; what a failure leaves is unsent.
func (s *shipper) last(ctx context.Context, cur batch, holding bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var failures int
	for {
		var more bool
		if cur, more = s.nextBatch(cur, holding); !more {
			break
		}
		if holding = !s.send(ctx, cur, &failures); holding {
			n := cur.n + s.drain()
			s.unsent.Add(uint64(n))
			s.landed()
			s.log.Warn("decision log: records not shipped at stop", "url", s.cfg.URL, "unsent", n)
			break
		}
	}
	s.lastDropWarn = time.Time{}
	s.warnDrops()
}

// warnDrops logs buffer overflows at WARN, at most every 10 s.
func (s *shipper) warnDrops() {
	d := s.overflow.Load()
	if d == s.warnedDrops || time.Since(s.lastDropWarn) < 10*time.Second {
		return
	}
	s.warnedDrops, s.lastDropWarn = d, time.Now()
	s.log.Warn("decision log: records dropped, the receiver does not keep up (decision_logs.http.buffer)",
		"dropped", d, "buffer", s.cfg.Buffer)
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// between is a random duration in [lo, hi].
func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// newBackoff is the wait after each failed upload in a row: from lo,
// doubling up to hi, each randomised by ±50% (cenkalti/backoff, which the
// OpenTelemetry exporters use too) so that replicas retrying a receiver that
// came back do not arrive together; the caller caps it at hi. It never
// gives up: records wait in the bounded buffer instead.
func newBackoff(lo, hi time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier, b.RandomizationFactor = lo, hi, 2, 0.5
	b.Reset()
	return b
}

// ship hands rec, redacted to in, to the shipper as the JSON of one event;
// what cannot be encoded is counted as failed.
func (l *Logger) ship(rec Record, in *engine.Input, warn func(string, ...any)) {
	b, err := json.Marshal(newEvent(rec, in, l.shipper.labels))
	if err != nil {
		// An input holds only JSON-decoded values; this is a bug, not a
		// reason to stop shipping.
		l.failed.Add(1)
		warn("decision log: record not encodable; skipped", "decision_id", rec.DecisionID, "error", err)
		return
	}
	l.shipper.add(b)
}
