package rego

import (
	"math/rand/v2"
	"testing"

	"github.com/verdictpdp/verdict/engine/plan"
)

// TestSatisfiable: satisfiable agrees with a search over many values on
// random conditions over two attributes (its candidates must leave out no
// class of values).
func TestSatisfiable(t *testing.T) {
	paths := [][]string{{"properties", "a"}, {"properties", "b"}}
	consts := []any{int64(1), int64(3), 2.5, "a", "ab", "b", "", true, false}
	values := []any{absent, int64(0), int64(1), int64(2), int64(3), int64(4), 0.5, 1.0, 1.5, 2.5, 2.75, 3.0, 3.5,
		"", "a", "a\x00", "aa", "ab", "ab\x00", "abc", "ac", "b", "b\x00", "ba", "c", true, false,
		[]any{}, []any{"a"}, []any{int64(1)}, []any{"a", int64(1)}, map[string]any{}}
	rnd := rand.New(rand.NewPCG(9, 10))
	leaf := func() *plan.Node {
		p := paths[rnd.IntN(len(paths))]
		c := consts[rnd.IntN(len(consts))]
		switch rnd.IntN(7) {
		case 0:
			return plan.Has(p)
		case 1:
			return plan.In(p, []any{c, consts[rnd.IntN(len(consts))]})
		case 2:
			return plan.Compare(plan.OpContains, p, c)
		case 3:
			if s, ok := c.(string); ok {
				return plan.Compare(plan.OpStartsWith, p, s)
			}
			return plan.Compare(plan.OpEq, p, c)
		case 4:
			types := []string{plan.TypeString, plan.TypeBool, plan.TypeInt, plan.TypeDouble, plan.TypeList, plan.TypeMap}
			return plan.Compare(plan.OpType, p, types[rnd.IntN(len(types))])
		}
		ops := []string{plan.OpEq, plan.OpNe, plan.OpLt, plan.OpLe, plan.OpGt, plan.OpGe}
		return plan.Compare(ops[rnd.IntN(len(ops))], p, c)
	}
	var gen func(depth int) *plan.Node
	gen = func(depth int) *plan.Node {
		if depth == 0 || rnd.IntN(3) == 0 {
			if rnd.IntN(3) == 0 {
				return plan.Not(leaf())
			}
			return leaf()
		}
		args := []*plan.Node{gen(depth - 1), gen(depth - 1), gen(depth - 1)}
		switch rnd.IntN(3) {
		case 0:
			return plan.Or(args...)
		case 1:
			return plan.Not(plan.And(args...))
		}
		return plan.And(args...)
	}
	sats := 0
	for range 3000 {
		n := gen(3)
		sat, decided := satisfiable(n)
		if !decided {
			t.Fatalf("undecided: %s", n)
		}
		found := false
		for _, a := range values {
			for _, b := range values {
				res := map[string]any{"type": "t", "id": "1", "properties": map[string]any{}}
				if a != absent {
					res["properties"].(map[string]any)["a"] = a
				}
				if b != absent {
					res["properties"].(map[string]any)["b"] = b
				}
				if n.Eval(res) {
					found = true
				}
			}
		}
		if found && !sat {
			t.Fatalf("satisfiable(%s) = false, but a resource satisfies it", n)
		}
		if sat {
			sats++
		}
	}
	t.Logf("%d of 3000 satisfiable", sats)
}

// TestSimplify: simplify keeps the meaning of a condition.
func TestSimplify(t *testing.T) {
	p := []string{"properties", "a"}
	for _, tc := range []struct{ in, want *plan.Node }{
		{plan.And(plan.Has(p), plan.Compare(plan.OpEq, p, "x")), plan.Compare(plan.OpEq, p, "x")},
		{plan.And(plan.Has(p), plan.Has(p)), plan.Has(p)},
		{plan.And(plan.Has(p), plan.Not(plan.Compare(plan.OpEq, p, "x"))), plan.And(plan.Has(p), plan.Not(plan.Compare(plan.OpEq, p, "x")))},
		{plan.And(plan.Compare(plan.OpEq, p, "x"), plan.Not(plan.Or(plan.Compare(plan.OpEq, p, "x"), plan.Has(p)))), plan.False()},
	} {
		if got := simplify(tc.in); got.String() != tc.want.String() {
			t.Errorf("simplify(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
