package bundles

import (
	"context"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// RuleCoverage is one rule of a bundle and the number of test cases that
// exercised it.
type RuleCoverage struct {
	engine.RuleInfo
	// Hits counts the cases in which the rule matched (CEL: it applied and
	// its condition was true; Rego: its body succeeded).
	Hits int `json:"hits"`
}

// Coverage says which rules of a bundle its test cases exercised. The zero
// value covers no rule.
type Coverage struct {
	// Rules lists every rule in module order, then file order.
	Rules []RuleCoverage `json:"rules"`
}

// Exercised returns how many rules some case exercised.
func (c *Coverage) Exercised() int {
	n := 0
	for _, r := range c.Rules {
		if r.Hits > 0 {
			n++
		}
	}
	return n
}

// NotExercised returns the rules no case exercised, in order.
func (c *Coverage) NotExercised() []RuleCoverage {
	var out []RuleCoverage
	for _, r := range c.Rules {
		if r.Hits == 0 {
			out = append(out, r)
		}
	}
	return out
}

// ruleLister is a module that can list its rules (CEL policies and the Rego
// query both can).
type ruleLister interface {
	Rules() []engine.RuleInfo
}

// coveredEvaluator is a module whose explain trace does not name the rules
// it ran (Rego) but that can trace an evaluation to find them.
type coveredEvaluator interface {
	EvaluateCovered(ctx context.Context, in *engine.Input) (engine.Outcome, []engine.RuleInfo)
}

// CaseResult is the outcome of one case run by RunTestsCovered.
type CaseResult struct {
	TestResult
	// Elapsed is how long the decision took (with tracing).
	Elapsed time.Duration
}

// RunTestsCovered is RunTests that also measures how long each case took and
// which rules the cases exercised. The decisions are made with explain on,
// whose trace says which CEL rules matched; Rego modules are evaluated a
// second time with a tracer, for test runs only. Rule lists come from the
// modules, so a rule no case reaches is in the coverage with no hits.
func RunTestsCovered(ctx context.Context, snap *engine.Snapshot, cases []TestCase) ([]CaseResult, *Coverage) {
	cov := &Coverage{}
	// Rules the explain trace reports are found by policy and id; traced
	// (Rego) rules by position, as their heads need not be unique.
	byName, byPos := map[[2]string]int{}, map[engine.RuleInfo]int{}
	var traced []coveredEvaluator
	for _, m := range snap.Modules() {
		if w, ok := m.(cachedAnyway); ok {
			m = w.Evaluator
		}
		l, ok := m.(ruleLister)
		if !ok {
			continue
		}
		ce, isTraced := m.(coveredEvaluator)
		if isTraced {
			traced = append(traced, ce)
		}
		for _, r := range l.Rules() {
			if isTraced {
				byPos[r] = len(cov.Rules)
			} else {
				byName[[2]string{r.Policy, r.Rule}] = len(cov.Rules)
			}
			cov.Rules = append(cov.Rules, RuleCoverage{RuleInfo: r})
		}
	}
	out := make([]CaseResult, 0, len(cases))
	for _, tc := range cases {
		in := *tc.Input
		start := time.Now()
		d := snap.Decide(ctx, &in, true)
		hit := map[int]bool{}
		for _, t := range d.Explain {
			if i, ok := byName[[2]string{t.Policy, t.Rule}]; ok && t.Matched {
				hit[i] = true
			}
		}
		for _, ce := range traced {
			_, rules := ce.EvaluateCovered(ctx, &in)
			for _, r := range rules {
				if i, ok := byPos[r]; ok {
					hit[i] = true
				}
			}
		}
		elapsed := time.Since(start)
		for i := range hit {
			cov.Rules[i].Hits++
		}
		d.Explain = nil
		out = append(out, CaseResult{TestResult: result(tc, d), Elapsed: elapsed})
	}
	return out, cov
}
