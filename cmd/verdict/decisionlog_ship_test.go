package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins/logs"
)

// opaReceiver is a decision-log service on 127.0.0.1: it takes what OPA's
// decision log plugin sends (POST, gzipped JSON array) and decodes it
// strictly into OPA's own event type, so that a field OPA does not know
// fails the test.
type opaReceiver struct {
	t     *testing.T
	token string

	mu     sync.Mutex
	events []logs.EventV1
	auth   []string
}

func (r *opaReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Authorization") != "Bearer "+r.token {
		w.WriteHeader(http.StatusUnauthorized)
		r.t.Errorf("upload with Authorization %q", req.Header.Get("Authorization"))
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Encoding") != "gzip" || req.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		r.t.Errorf("upload %s with %v", req.Method, req.Header)
		return
	}
	zr, err := gzip.NewReader(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		r.t.Errorf("not gzipped: %v", err)
		return
	}
	raw, _ := io.ReadAll(zr)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var batch []logs.EventV1
	if err := dec.Decode(&batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		r.t.Errorf("the batch is not OPA's []EventV1: %v\n%s", err, raw)
		return
	}
	r.mu.Lock()
	r.events = append(r.events, batch...)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *opaReceiver) received() []logs.EventV1 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logs.EventV1(nil), r.events...)
}

// TestServeShipsDecisionLogs: a real verdict serve with decision_logs sink
// http. The receiver is down (nothing listens) while the first decisions
// are made: the uploads fail and are retried, and once it listens every
// decision arrives once, as an OPA event, redacted, with the bearer token
// read from a file relative to the configuration. Decisions made just
// before a stop are shipped by the last attempt.
func TestServeShipsDecisionLogs(t *testing.T) {
	dir := t.TempDir()
	rcvAddr := freeAddr(t)
	writeFile(t, filepath.Join(dir, "token"), "s3cret-token\n")
	cfg := filepath.Join(dir, "verdict.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\n"+
		"decision_logs:\n  sink: http\n  redact: [/subject/properties/email]\n"+
		"  http:\n    url: http://"+rcvAddr+"/logs\n    bearer_token_file: token\n    min_delay: 20ms\n    max_delay: 100ms\n"+
		"    labels: {env: test}\n")
	addr := freeAddr(t)
	base := "http://" + addr
	stop := serveDev(t, addr, t.TempDir(), "--config", cfg, "--bundle", bundleDir(t, map[string]string{"p.verdict.yaml": policy}))
	decide := func(n int) []string {
		var ids []string
		for range n {
			resp, err := http.Post(base+"/v1/decide", "application/json", strings.NewReader(
				`{"subject":{"type":"user","id":"alice","properties":{"email":"a@example.com"}},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Context struct {
					DecisionID string `json:"decision_id"`
				} `json:"context"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != 200 || out.Context.DecisionID == "" {
				t.Fatalf("decide: %d %+v", resp.StatusCode, out)
			}
			ids = append(ids, out.Context.DecisionID)
		}
		return ids
	}

	// Down: nothing listens, so uploads fail and the records wait.
	want := decide(30)
	within(t, 10*time.Second, "a failed upload", func() bool {
		return metric(t, base, `verdict_decision_logs_upload_failures_total{reason="network"}`) > 0
	})
	if got := metric(t, base, "verdict_decision_logs_buffered"); got != 30 {
		t.Fatalf("%v records buffered while the receiver is down, want 30", got)
	}

	// Up: the receiver listens on the address, and the buffer empties.
	rcv := &opaReceiver{t: t, token: "s3cret-token"}
	ln, err := net.Listen("tcp", rcvAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	within(t, 20*time.Second, "every decision shipped", func() bool {
		return metric(t, base, "verdict_decision_logs_written_total") == 30
	})
	if got := len(rcv.received()); got != 30 {
		t.Fatalf("%d events at the receiver, want 30", got)
	}

	// Just before a stop: shipped by the last attempt.
	want = append(want, decide(5)...)
	stop()

	events := rcv.received()
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.DecisionID] {
			t.Errorf("%s shipped twice", e.DecisionID)
		}
		seen[e.DecisionID] = true
		if e.Path != "verdict/decide" || e.Bundles["verdict"].Revision == "" || e.Labels["env"] != "test" ||
			e.Labels["id"] == "" || e.Labels["version"] == "" || !strings.HasPrefix(e.RequestedBy, "127.0.0.1:") || e.Timestamp.IsZero() {
			t.Fatalf("event %+v", e)
		}
		res, _ := json.Marshal(e.Result)
		if string(res) != `{"decision":true,"reasons":["owners"]}` {
			t.Fatalf("result %s", res)
		}
		in, _ := json.Marshal(e.Input)
		if !strings.Contains(string(in), `"owner":"alice"`) || strings.Contains(string(in), "a@example.com") {
			t.Fatalf("input %s: not as decided, or not redacted", in)
		}
		if _, ok := e.Metrics["timer_server_handler_ns"]; !ok {
			t.Fatalf("metrics %v", e.Metrics)
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("decision %s never reached the receiver", id)
		}
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
}
