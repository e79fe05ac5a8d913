package decisionlog

import (
	"context"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// Recent is one of the last decisions logged, as the console's tail
// shows it: the record with its input redacted as the log writes it.
type Recent struct {
	Time       time.Time
	DecisionID string
	Endpoint   string
	Revision   string
	Allow      bool
	Reasons    []string
	Error      string
	// Input is redacted; nil for a decision logged without one.
	Input *engine.Input
}

// remember keeps r as the newest of the last cfg.History decisions.
func (l *Logger) remember(r Recent) {
	if len(l.ring) == 0 {
		return
	}
	l.mu.Lock()
	l.ring[l.next] = r
	l.next = (l.next + 1) % len(l.ring)
	l.entries = min(l.entries+1, len(l.ring))
	l.mu.Unlock()
}

// last calls f with the remembered decisions, newest first, until it
// returns false.
func (l *Logger) last(f func(Recent) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 1; i <= l.entries; i++ {
		if !f(l.ring[(l.next-i+len(l.ring))%len(l.ring)]) {
			return
		}
	}
}

// RecentInputs returns up to n of the last redacted inputs logged, newest
// first (pdp.DecisionHistory). It never fails; with decision_logs.history
// 0 it returns none. Inputs are shared: callers must not change them.
func (l *Logger) RecentInputs(_ context.Context, n int) ([]*engine.Input, error) {
	var out []*engine.Input
	l.last(func(r Recent) bool {
		if len(out) == n {
			return false
		}
		if r.Input != nil {
			out = append(out, r.Input)
		}
		return true
	})
	return out, nil
}

// RecentDecisions returns up to n of the last decisions logged that keep
// returns true for, newest first (the console's tail). Their inputs are
// shared: callers must not change them.
func (l *Logger) RecentDecisions(_ context.Context, n int, keep func(Recent) bool) []Recent {
	var out []Recent
	l.last(func(r Recent) bool {
		if len(out) == n {
			return false
		}
		if keep == nil || keep(r) {
			out = append(out, r)
		}
		return true
	})
	return out
}
