package decisionlog

import (
	"context"

	"github.com/verdictpdp/verdict/engine"
)

// remember keeps in, already redacted, as the newest of the last
// cfg.History inputs.
func (l *Logger) remember(in *engine.Input) {
	if len(l.ring) == 0 {
		return
	}
	l.mu.Lock()
	l.ring[l.next] = in
	l.next = (l.next + 1) % len(l.ring)
	l.entries = min(l.entries+1, len(l.ring))
	l.mu.Unlock()
}

// RecentInputs returns up to n of the last redacted inputs logged, newest
// first (pdp.DecisionHistory). It never fails; with decision_logs.history
// 0 it returns none. Inputs are shared: callers must not change them.
func (l *Logger) RecentInputs(_ context.Context, n int) ([]*engine.Input, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, l.entries)
	out := make([]*engine.Input, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.ring[(l.next-i+len(l.ring))%len(l.ring)])
	}
	return out, nil
}
