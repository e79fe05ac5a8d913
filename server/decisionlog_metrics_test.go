package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// TestDecisionLogMetrics: the decision log's counts are exported when it
// is on, read from it at scrape time, and absent when it is off.
func TestDecisionLogMetrics(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		s := newHarness(t).scrape(t)
		if _, ok := s.fams["verdict_decision_logs_written_total"]; ok {
			t.Error("decision log series without a decision log")
		}
	})
	t.Run("file", func(t *testing.T) {
		dl, stop := runDecisionLog(t, nil)
		h := newHarness(t, WithDecisionLog(dl))
		for range 2 {
			h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		}
		stop()
		s := h.scrape(t)
		s.want(t, 2, "verdict_decision_logs_written_total")
		s.want(t, 0, "verdict_decision_logs_failed_total")
		s.want(t, 0, "verdict_decision_logs_dropped_total", "reason", "queue_full")
		s.want(t, 0, "verdict_decision_logs_buffered")
	})
	t.Run("http", func(t *testing.T) {
		// A receiver that refuses every batch.
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
		t.Cleanup(rcv.Close)
		cfg := decisionlog.Default()
		cfg.Sink, cfg.HTTP.URL = decisionlog.SinkHTTP, rcv.URL
		cfg.HTTP.MinDelay, cfg.HTTP.MaxDelay, cfg.HTTP.BatchMaxRecords = time.Hour, time.Hour, 2
		dl, err := decisionlog.New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { dl.Run(ctx) })
		t.Cleanup(func() { cancel(); wg.Wait() })
		h := newHarness(t, WithDecisionLog(dl))
		// Two make a full batch, refused at once; the third then waits
		// for the next upload (an hour away).
		for range 2 {
			h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		}
		testutil.WaitFor(t, "the refused batch", 5*time.Millisecond, func() bool {
			st := dl.Stats()
			return st.DroppedRejected == 2 && st.Buffered == 0
		})
		h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		testutil.WaitFor(t, "the third record buffered", 5*time.Millisecond, func() bool { return dl.Stats().Buffered == 1 })
		s := h.scrape(t)
		s.want(t, 2, "verdict_decision_logs_dropped_total", "reason", "rejected")
		s.want(t, 0, "verdict_decision_logs_dropped_total", "reason", "buffer_full")
		s.want(t, 1, "verdict_decision_logs_upload_failures_total", "reason", "rejected")
		s.want(t, 0, "verdict_decision_logs_upload_failures_total", "reason", "network")
		s.want(t, 1, "verdict_decision_logs_buffered")
		s.want(t, 0, "verdict_decision_logs_written_total")
	})
}
