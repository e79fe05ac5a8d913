package server

import (
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
