package decisionlog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DeRuina/timberjack"

	"github.com/verdictpdp/verdict/engine"
)

// Record is one decision as the server hands it to the log. Input is the
// decided input, unredacted; the Logger never changes it.
type Record struct {
	DecisionID string
	Time       time.Time
	RequestID  string
	// Endpoint is where the decision was asked for: decide, authzen or
	// forward_auth.
	Endpoint string
	Revision string
	Allow    bool
	Reasons  []string
	// Error is the reason code of a failed decision (verdict:timeout, ...),
	// empty when it did not fail.
	Error    string
	Duration time.Duration
	CacheHit bool
	Input    *engine.Input
	// RemoteAddr is the address the request came from (host:port), ""
	// when unknown.
	RemoteAddr string
	// TraceID and SpanID name the decision's span (hex) when it was
	// traced.
	TraceID, SpanID string
}

// line is the JSON form of a record.
type line struct {
	DecisionID string         `json:"decision_id"`
	Time       string         `json:"time"`
	RequestID  string         `json:"request_id,omitempty"`
	RemoteAddr string         `json:"remote_addr,omitempty"`
	TraceID    string         `json:"trace_id,omitempty"`
	Endpoint   string         `json:"endpoint"`
	Revision   string         `json:"revision"`
	Decision   bool           `json:"decision"`
	Reasons    []string       `json:"reasons"`
	Error      string         `json:"error,omitempty"`
	DurationMS float64        `json:"duration_ms"`
	CacheHit   bool           `json:"cache_hit"`
	Input      map[string]any `json:"input"`
}

// Logger writes decision records as JSON lines on its own goroutine (Run)
// and keeps the last redacted inputs. Build it with New; Log is safe for
// concurrent use and never blocks.
type Logger struct {
	cfg    Config
	log    *slog.Logger
	sink   io.Writer
	w      *bufio.Writer
	redact redactor
	ch     chan Record
	// shipper uploads the records of sink http; nil for the other sinks.
	shipper *shipper

	dropped atomic.Uint64
	written atomic.Uint64
	failed  atomic.Uint64

	mu      sync.Mutex
	ring    []Recent
	next    int
	entries int
}

// Option changes how New builds a Logger.
type Option func(*options)

type options struct{ version string }

// WithVersion is the Verdict version that events shipped by sink http
// carry as labels.version (default "dev").
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// New builds a Logger writing to w (nil: no lines, as for sink none). With
// sink http w is ignored: records are shipped to cfg.HTTP.URL. It fails on
// an invalid config, or on a bearer_token_file or TLS file that does not
// load. Nothing is written until Run runs.
func New(cfg Config, w io.Writer, log *slog.Logger, opts ...Option) (*Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := newRedactor(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{version: "dev"}
	for _, opt := range opts {
		opt(&o)
	}
	l := &Logger{cfg: cfg, log: log, redact: r, ch: make(chan Record, cfg.Buffer), ring: make([]Recent, cfg.History)}
	if cfg.Sink == SinkHTTP {
		if l.shipper, err = newShipper(cfg.HTTP, o.version, log); err != nil {
			return nil, err
		}
		return l, nil
	}
	if w != nil {
		l.sink, l.w = w, bufio.NewWriterSize(w, 64<<10)
	}
	return l, nil
}

// OpenSink opens the sink cfg names: nil for none and http, standard output (Close
// leaves it open), or the file at cfg.Path, appended to and rotated by size
// (timberjack, a maintained lumberjack fork whose Close also ends its goroutines). Close it after Run returned.
func OpenSink(cfg Config) (io.WriteCloser, error) {
	switch cfg.Sink {
	case SinkStdout:
		return nopCloser{os.Stdout}, nil
	case SinkFile:
		// Open once now, so that a path that cannot be written fails the
		// start rather than every later write.
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("decision_logs.path: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("decision_logs.path: %w", err)
		}
		return &timberjack.Logger{Filename: cfg.Path, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups,
			MaxAge: cfg.MaxAgeDays, Compress: cfg.Compress}, nil
	}
	return nil, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Log queues rec and returns at once. A sampled-out allow is skipped; when
// the buffer is full rec is dropped and counted (Dropped). A nil Logger logs
// nothing.
func (l *Logger) Log(rec Record) {
	if l == nil {
		return
	}
	if rec.Allow && l.cfg.SampleRatio < 1 && rand.Float64() >= l.cfg.SampleRatio {
		return
	}
	select {
	case l.ch <- rec:
	default:
		l.dropped.Add(1)
	}
}

// Dropped is how many records were dropped because the buffer was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Written is how many records were written to the sink; for sink http,
// how many the receiver accepted.
func (l *Logger) Written() uint64 {
	if l.shipper != nil {
		return l.shipper.shipped.Load()
	}
	return l.written.Load()
}

// Failed is how many records could not be written (sink errors).
func (l *Logger) Failed() uint64 { return l.failed.Load() }

// Run writes queued records until ctx is done, then writes what is still
// buffered, flushes and returns. Call it once; cancel ctx only after the
// HTTP server drained, so that the last decisions are logged. With sink
// http it runs the uploads on a second goroutine and, once ctx is done and
// the queue is handed over, makes one last upload attempt bounded by
// decision_logs.http.timeout (after the upload in flight, if any, ended)
// before it returns.
func (l *Logger) Run(ctx context.Context) {
	if l.shipper != nil {
		// The uploads outlive ctx by the last attempt; they end when
		// closing is closed below.
		go l.shipper.run(context.WithoutCancel(ctx))
		defer func() { close(l.shipper.closing); <-l.shipper.done }()
	}
	var lastWarn time.Time
	var reported uint64
	warn := func(msg string, args ...any) {
		if time.Since(lastWarn) >= 10*time.Second {
			lastWarn = time.Now()
			l.log.Warn(msg, args...)
		}
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case rec := <-l.ch:
					l.handle(rec, warn)
				default:
					l.flush(warn)
					if d := l.Dropped(); d > 0 {
						l.log.Warn("decision log: records were dropped (buffer full)", "dropped", d, "buffer", l.cfg.Buffer)
					}
					return
				}
			}
		case rec := <-l.ch:
			l.handle(rec, warn)
			if len(l.ch) == 0 {
				l.flush(warn)
				if d := l.Dropped(); d != reported {
					reported = d
					warn("decision log: records dropped, the writer does not keep up (decision_logs.buffer)", "dropped", d, "buffer", l.cfg.Buffer)
				}
			}
		}
	}
}

func (l *Logger) handle(rec Record, warn func(string, ...any)) {
	var in *engine.Input
	if rec.Input != nil {
		in = l.redact.input(rec.Input)
	}
	l.remember(Recent{Time: rec.Time, DecisionID: rec.DecisionID, Endpoint: rec.Endpoint, Revision: rec.Revision,
		Allow: rec.Allow, Reasons: rec.Reasons, Error: rec.Error, Input: in})
	if l.shipper != nil {
		l.ship(rec, in, warn)
		return
	}
	if l.w == nil {
		return
	}
	ln := line{DecisionID: rec.DecisionID, Time: rec.Time.UTC().Format(time.RFC3339Nano), RequestID: rec.RequestID,
		Endpoint: rec.Endpoint, Revision: rec.Revision, Decision: rec.Allow, Reasons: rec.Reasons, Error: rec.Error,
		DurationMS: float64(rec.Duration.Microseconds()) / 1000, CacheHit: rec.CacheHit,
		RemoteAddr: rec.RemoteAddr, TraceID: rec.TraceID}
	if ln.Reasons == nil {
		ln.Reasons = []string{}
	}
	if in != nil {
		ln.Input = in.Doc()
	}
	b, err := json.Marshal(ln)
	if err != nil {
		// An input holds only JSON-decoded values; this is a bug, not a
		// reason to stop logging.
		l.failed.Add(1)
		warn("decision log: record not encodable; skipped", "decision_id", rec.DecisionID, "error", err)
		return
	}
	b = append(b, '\n')
	if _, err := l.w.Write(b); err != nil {
		l.failed.Add(1)
		warn("decision log: write failed", "error", err)
		return
	}
	l.written.Add(1)
}

func (l *Logger) flush(warn func(string, ...any)) {
	if l.w == nil {
		return
	}
	if err := l.w.Flush(); err != nil {
		warn("decision log: flush failed", "error", err)
		// bufio keeps the error forever; start over so later records can
		// be written once the sink recovers.
		l.w.Reset(l.sink)
	}
}
