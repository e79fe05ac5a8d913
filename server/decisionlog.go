package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/pdp"
)

// DecisionLog receives one record per decision of /v1/decide, the AuthZEN
// evaluation routes and /v1/forward-auth (decisionlog.Logger).
type DecisionLog = pdp.DecisionLog

// WithDecisionLog hands every decision to l. A nil l (the default) logs
// none.
func WithDecisionLog(l DecisionLog) Option {
	return func(s *Server) { s.dlog = l }
}

// DecisionLogStats is a decision log that counts what became of its
// records (decisionlog.Logger): the verdict_decision_logs_* metrics.
type DecisionLogStats interface {
	Stats() decisionlog.Stats
}

var _ DecisionLogStats = (*decisionlog.Logger)(nil)

// decisionLogMetrics registers the decision log's series, read from l when
// scraped; none when there is no decision log or it counts nothing.
func decisionLogMetrics(f factory, l DecisionLog) {
	ds, ok := l.(DecisionLogStats)
	if !ok {
		return
	}
	f.counterFunc("verdict_decision_logs_written_total", "Decision records written: lines of sink stdout or file, or records the receiver of sink http accepted.",
		func() float64 { return float64(ds.Stats().Written) })
	f.counterFunc("verdict_decision_logs_failed_total", "Decision records that could not be encoded or written (a write error of sink stdout or file).",
		func() float64 { return float64(ds.Stats().Failed) })
	for reason, of := range map[string]func(decisionlog.Stats) uint64{
		"queue_full":  func(s decisionlog.Stats) uint64 { return s.DroppedQueueFull },
		"buffer_full": func(s decisionlog.Stats) uint64 { return s.DroppedBufferFull },
		"rejected":    func(s decisionlog.Stats) uint64 { return s.DroppedRejected },
		"unsent":      func(s decisionlog.Stats) uint64 { return s.DroppedUnsent },
	} {
		f.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "verdict_decision_logs_dropped_total",
			Help:        "Decision records lost, by reason: queue_full (decision_logs.buffer full), buffer_full (sink http: the oldest waiting to ship), rejected (sink http: a 4xx for their batch), unsent (sink http: left at stop).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(of(ds.Stats())) }))
	}
	for reason, i := range map[string]int{"network": decisionlog.FailNetwork, "unavailable": decisionlog.FailUnavailable, "rejected": decisionlog.FailRejected} {
		f.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "verdict_decision_logs_upload_failures_total",
			Help:        "Failed uploads of sink http, by reason: network (no response), unavailable (5xx, 429 or 408: retried), rejected (any other status: the batch is dropped).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(ds.Stats().UploadFailures[i]) }))
	}
	f.gaugeFunc("verdict_decision_logs_buffered", "Decision records of sink http waiting to ship, the batch being uploaded included.",
		func() float64 { return float64(ds.Stats().Buffered) })
}
