package bench

import (
	"testing"
	"time"
)

// budget is a ceiling for one benchmark's time per operation. The ceilings
// are generous (several times what docs/performance.md records on a 2-core
// machine) so that a slow CI machine passes and a real regression — an
// accidental compile per request, a lost cache — fails.
type budget struct {
	name string
	fn   func(*testing.B)
	max  time.Duration
}

func TestLatencyBudgets(t *testing.T) {
	if raceEnabled {
		t.Skip("timings under -race mean nothing; run `go test ./bench`")
	}
	if testing.Short() {
		t.Skip("budgets are not checked with -short")
	}
	budgets := []budget{
		{"DecideCEL", BenchmarkDecideCEL, 100 * time.Microsecond},
		{"DecideRego", BenchmarkDecideRego, 500 * time.Microsecond},
		{"CacheHit", BenchmarkCacheHit, 20 * time.Microsecond},
		{"HTTPDecideCEL", BenchmarkHTTPDecideCEL, 2 * time.Millisecond},
		{"HTTPCacheHit", BenchmarkHTTPCacheHit, 2 * time.Millisecond},
	}
	got := map[string]time.Duration{}
	for _, bg := range budgets {
		r := testing.Benchmark(bg.fn)
		if r.N == 0 {
			t.Fatalf("%s did not run", bg.name)
		}
		per := time.Duration(r.NsPerOp())
		got[bg.name] = per
		t.Logf("%-14s %10v/op %6d allocs/op %8d B/op", bg.name, per, r.AllocsPerOp(), r.AllocedBytesPerOp())
		if per > bg.max {
			t.Errorf("%s: %v per decision, budget %v", bg.name, per, bg.max)
		}
	}
	// A cache hit must be cheaper than evaluating the policy, or the cache
	// is not doing its job.
	if got["CacheHit"] >= got["DecideCEL"] {
		t.Errorf("cache hit (%v) is not faster than a CEL evaluation (%v)", got["CacheHit"], got["DecideCEL"])
	}
}
