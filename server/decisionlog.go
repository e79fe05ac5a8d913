package server

import (
	"time"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
)

// DecisionLog receives one record per decision of /v1/decide, the AuthZEN
// evaluation routes and /v1/forward-auth (decisionlog.Logger). Log is called
// on the decision path and must return at once; it must not change the
// record's input.
type DecisionLog interface {
	Log(rec decisionlog.Record)
}

var _ DecisionLog = (*decisionlog.Logger)(nil)

// WithDecisionLog hands every decision to l. A nil l (the default) logs
// none.
func WithDecisionLog(l DecisionLog) Option {
	return func(s *Server) { s.dlog = l }
}

// logDecision hands the decision resp of in, started at start, to the
// decision log, if there is one.
func (s *Server) logDecision(e endpoint, requestID string, start time.Time, in *engine.Input, d engine.Decision, resp DecisionResponse, hit bool) {
	if s.dlog == nil {
		return
	}
	rec := decisionlog.Record{DecisionID: resp.Context.DecisionID, Time: start, RequestID: requestID,
		Endpoint: endpoints[e], Revision: d.Revision, Allow: d.Allow, Reasons: d.Reasons,
		Duration: time.Since(start), CacheHit: hit, Input: in}
	if d.Err != nil {
		rec.Error = engine.ClassifyErr(d.Err)
	} else if v := d.Violation; v != nil && v.Enforced {
		rec.Error = engine.ReasonSchemaViolation
	}
	s.dlog.Log(rec)
}
