package cel

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestRuleIndexFindsEveryApplicableRuleInOrder checks the index against a
// walk over every rule, on random policies: the candidates are ascending,
// hold every rule that applies, and are never more than the shorter of the
// two lists they are chosen from.
func TestRuleIndexFindsEveryApplicableRuleInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b", "c", "d", "e"}
	pick := func() map[string]bool {
		if rng.IntN(3) == 0 {
			return nil // any
		}
		m := map[string]bool{}
		for range 1 + rng.IntN(2) {
			m[names[rng.IntN(len(names))]] = true
		}
		return m
	}
	for trial := range 300 {
		rules := make([]compiledRule, rng.IntN(12))
		for i := range rules {
			rules[i] = compiledRule{actions: pick(), resources: pick()}
		}
		ix := newRuleIndex(rules)
		for _, act := range append(names, "z") {
			for _, typ := range append(names, "z") {
				in := &engine.Input{Action: engine.Action{Name: act}, Resource: engine.Entity{Type: typ}}
				var want, got []int
				for i := range rules {
					if rules[i].applies(in) {
						want = append(want, i)
					}
				}
				var walked []int
				for it := ix.candidates(in); ; {
					i, ok := it.next()
					if !ok {
						break
					}
					walked = append(walked, i)
					if rules[i].applies(in) {
						got = append(got, i)
					}
				}
				if !slices.IsSorted(walked) || len(slices.Compact(slices.Clone(walked))) != len(walked) {
					t.Fatalf("trial %d (%s, %s): candidates %v are not ascending and distinct", trial, act, typ, walked)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("trial %d (%s, %s): applicable rules %v through the index, %v by a full walk", trial, act, typ, got, want)
				}
			}
		}
	}
}

// BenchmarkRuleIndex decides on a policy of many rules, one per resource
// type: the cost must not grow with the rules a request does not touch.
func BenchmarkRuleIndex(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			rules := make([]compiledRule, n)
			for i := range rules {
				rules[i] = compiledRule{resources: map[string]bool{strconv.Itoa(i): true}}
			}
			p := &Policy{rules: rules, index: newRuleIndex(rules), combining: DenyOverrides}
			in := &engine.Input{Resource: engine.Entity{Type: strconv.Itoa(n / 2)}}
			for b.Loop() {
				if out := p.Evaluate(b.Context(), in, false); out.Effect != engine.Allow {
					b.Fatal(out)
				}
			}
		})
	}
}
