package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

func testInput(id string) *engine.Input {
	return &engine.Input{
		Subject: engine.Entity{Type: "user", ID: id, Properties: map[string]any{
			"email": id + "@example.com", "dept": "eng"}},
		Action:   engine.Action{Name: "read"},
		Resource: engine.Entity{Type: "doc", ID: "d1", Properties: map[string]any{"owner": id}},
		Context: map[string]any{
			"headers": map[string]any{"authorization": "Bearer secret", "x-tenant": "t1"},
			"nested":  map[string]any{"subject_token": "eyJ.jwt", "keep": true},
		},
		Token: map[string]any{"sub": id, "iss": "https://idp", "client_id": "app", "email": id + "@example.com", "groups": []any{"a"}},
		Now:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func testRecord(id string, allow bool) Record {
	return Record{DecisionID: "dec-" + id, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RequestID: "req-" + id,
		Endpoint: "decide", Revision: "rev1", Allow: allow, Reasons: []string{"r"}, Duration: 1500 * time.Microsecond,
		CacheHit: true, Input: testInput(id)}
}

// run starts l.Run and returns a stop that cancels it and waits.
func run(t *testing.T, l *Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func readLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is no JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestFileSinkWritesRedactedJSONLines(t *testing.T) {
	cfg := Default()
	cfg.Sink, cfg.Path = SinkFile, filepath.Join(t.TempDir(), "decisions.log")
	cfg.Redact = append(cfg.Redact, "/subject/properties/email", "/token/groups")
	sink, err := OpenSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	rec := testRecord("alice", false)
	rec.Error = engine.ReasonTimeout
	l.Log(rec)
	stop()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, raw)
	if len(lines) != 1 {
		t.Fatalf("want 1 line, got %d: %s", len(lines), raw)
	}
	got := lines[0]
	for k, want := range map[string]any{"decision_id": "dec-alice", "request_id": "req-alice", "endpoint": "decide",
		"revision": "rev1", "decision": false, "error": engine.ReasonTimeout, "duration_ms": 1.5, "cache_hit": true,
		"time": "2026-01-02T03:04:05Z"} {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	in := got["input"].(map[string]any)
	subj := in["subject"].(map[string]any)
	if _, ok := subj["properties"].(map[string]any)["email"]; ok || subj["id"] != "alice" {
		t.Errorf("subject not redacted as configured: %v", subj)
	}
	if want := map[string]any{"sub": "alice", "iss": "https://idp", "client_id": "app"}; !reflect.DeepEqual(in["token"], want) {
		t.Errorf("token = %v, want only the allowed claims %v", in["token"], want)
	}
	ctx := in["context"].(map[string]any)
	if want := map[string]any{"x-tenant": "t1"}; !reflect.DeepEqual(ctx["headers"], want) {
		t.Errorf("headers = %v, want authorization removed", ctx["headers"])
	}
	if want := map[string]any{"keep": true}; !reflect.DeepEqual(ctx["nested"], want) {
		t.Errorf("nested = %v, want the subject_token removed", ctx["nested"])
	}
	if strings.Contains(string(raw), "secret") || strings.Contains(string(raw), "eyJ.jwt") || strings.Contains(string(raw), "@example.com") {
		t.Errorf("a redacted value reached the log: %s", raw)
	}
	// The decided input is left as it was: a batch's items share maps.
	if !reflect.DeepEqual(rec.Input, testInput("alice")) {
		t.Errorf("Log changed the input: %+v", rec.Input)
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.buf.Write(p)
}

func TestFullBufferDropsWithoutBlocking(t *testing.T) {
	cfg := Default()
	cfg.Buffer = 2
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := New(cfg, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, l)
	l.Log(testRecord("first", true))
	<-w.entered // the writer holds the first record and is stuck
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range 10 {
			l.Log(testRecord(fmt.Sprint(i), true))
		}
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a full buffer")
	}
	if got := l.Dropped(); got != 8 {
		t.Errorf("Dropped() = %d, want 8 (10 logged, 2 buffered)", got)
	}
	close(w.release)
	stop()
	if got := l.Written(); got != 3 {
		t.Errorf("Written() = %d, want 3 (the first and the 2 buffered)", got)
	}
	if n := len(readLines(t, w.buf.Bytes())); n != 3 {
		t.Errorf("%d lines written, want 3", n)
	}
}

func TestShutdownFlushesBuffered(t *testing.T) {
	cfg := Default()
	var buf bytes.Buffer
	l, err := New(cfg, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		l.Log(testRecord(fmt.Sprint(i), i%2 == 0))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run sees a done context at once: it must still write all
	l.Run(ctx)
	lines := readLines(t, buf.Bytes())
	if len(lines) != 100 {
		t.Fatalf("%d lines after shutdown, want 100", len(lines))
	}
	if lines[99]["decision_id"] != "dec-99" {
		t.Errorf("last line = %v, want dec-99", lines[99]["decision_id"])
	}
}

func TestSamplingLogsEveryDeny(t *testing.T) {
	cfg := Default()
	cfg.SampleRatio = 0
	var buf bytes.Buffer
	l, err := New(cfg, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		l.Log(testRecord(fmt.Sprint(i), i%10 != 0)) // 5 denies
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx)
	lines := readLines(t, buf.Bytes())
	if len(lines) != 5 {
		t.Fatalf("%d lines, want the 5 denies", len(lines))
	}
	for _, ln := range lines {
		if ln["decision"] != false {
			t.Errorf("an allow was logged at sample_ratio 0: %v", ln)
		}
	}
	if in, _ := l.RecentInputs(context.Background(), 100); len(in) != 5 {
		t.Errorf("history has %d inputs, want 5", len(in))
	}
}

func TestRecentInputsNewestFirstRedacted(t *testing.T) {
	cfg := Default()
	cfg.History = 3
	cfg.Redact = []string{"/subject/properties/email"}
	l, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := l.RecentInputs(context.Background(), 10); len(in) != 0 {
		t.Fatalf("empty history returned %d inputs", len(in))
	}
	for i := range 5 {
		l.Log(testRecord(fmt.Sprint(i), true))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx)
	got, err := l.RecentInputs(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range got {
		ids = append(ids, in.Subject.ID)
		if _, ok := in.Subject.Properties["email"]; ok {
			t.Errorf("history input %s keeps the redacted email", in.Subject.ID)
		}
		if _, ok := in.Token["email"]; ok {
			t.Errorf("history input %s keeps a token claim off the allow-list", in.Subject.ID)
		}
	}
	if want := []string{"4", "3", "2"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("RecentInputs = %v, want %v", ids, want)
	}
	if got, _ := l.RecentInputs(context.Background(), 2); len(got) != 2 || got[0].Subject.ID != "4" {
		t.Errorf("RecentInputs(2) = %d inputs", len(got))
	}
}

func TestRedactIDAndEscapes(t *testing.T) {
	cfg := Default()
	cfg.Redact = []string{"/subject/id", "/context/a~1b", "/context/headers/nope/deeper"}
	r, err := newRedactor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := testInput("bob")
	in.Context["a/b"] = 1
	out := r.input(in)
	if out.Subject.ID != "" || in.Subject.ID != "bob" {
		t.Errorf("subject id: redacted %q, original %q", out.Subject.ID, in.Subject.ID)
	}
	if _, ok := out.Context["a/b"]; ok {
		t.Error("/context/a~1b did not remove key a/b")
	}
	if _, ok := in.Context["a/b"]; !ok {
		t.Error("the original context lost a/b")
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"sink":        {func(c *Config) { c.Sink = "kafka" }, "decision_logs.sink"},
		"file path":   {func(c *Config) { c.Sink = SinkFile }, "decision_logs.path"},
		"buffer":      {func(c *Config) { c.Buffer = 0 }, "decision_logs.buffer"},
		"ratio":       {func(c *Config) { c.SampleRatio = 1.5 }, "sample_ratio"},
		"history":     {func(c *Config) { c.History = -1 }, "decision_logs.history"},
		"size":        {func(c *Config) { c.MaxSizeMB = 0 }, "max_size_mb"},
		"path root":   {func(c *Config) { c.Redact = []string{"/now"} }, "/subject, /resource"},
		"no slash":    {func(c *Config) { c.Redact = []string{"subject/id"} }, "starts with /"},
		"entity type": {func(c *Config) { c.Redact = []string{"/subject/type"} }, "properties"},
		"empty":       {func(c *Config) { c.Redact = []string{"/context//x"} }, "empty segment"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default() is invalid: %v", err)
	}
}
