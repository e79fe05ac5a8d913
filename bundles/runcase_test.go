package bundles

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestTimedOutCaseRunsAgain: a test case that fails only by the engine's
// deadline is decided again, up to three times in all, and passes if a
// later attempt does; any other failure, a case that expects the timeout,
// and a cancelled run are judged on the first decision.
func TestTimedOutCaseRunsAgain(t *testing.T) {
	allow := engine.Decision{Allow: true, Reasons: []string{"r"}}
	timeout := engine.Decision{Reasons: []string{engine.ReasonTimeout}, Err: engine.ModuleError("p", engine.ErrTimeout)}
	wrong := engine.Decision{Reasons: []string{"deny-rule"}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		tc      TestCase
		answers []engine.Decision
		calls   int
		passed  bool
	}{
		{"passes after two timeouts", context.Background(), TestCase{Want: true}, []engine.Decision{timeout, timeout, allow}, 3, true},
		{"times out every time", context.Background(), TestCase{Want: true}, []engine.Decision{timeout, timeout, timeout, allow}, 3, false},
		{"a wrong decision is not retried", context.Background(), TestCase{Want: true}, []engine.Decision{wrong, allow}, 1, false},
		{"passes at once", context.Background(), TestCase{Want: true}, []engine.Decision{allow}, 1, true},
		{"expects the timeout", context.Background(), TestCase{Want: false, WantReasons: []string{engine.ReasonTimeout}}, []engine.Decision{timeout, allow}, 1, true},
		{"cancelled", cancelled, TestCase{Want: true}, []engine.Decision{timeout, allow}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			r := runCase(tc.ctx, tc.tc, func() engine.Decision {
				calls++
				return tc.answers[calls-1]
			})
			if calls != tc.calls || r.Passed() != tc.passed {
				t.Fatalf("%d decisions, passed %v (%s); want %d, %v", calls, r.Passed(), r.Failure, tc.calls, tc.passed)
			}
		})
	}
}
