package cel

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestUntrackedOnlyWhereTheWorstCaseFits compiles conditions and checks
// which get an untracked program: only those whose worst case, for an
// input of untrackedBound bytes, stays under the cost limit.
func TestUntrackedOnlyWhereTheWorstCaseFits(t *testing.T) {
	cases := []struct {
		cond      string
		untracked bool
	}{
		{`resource.properties.owner == subject.id`, true},
		{`has(subject.properties.suspended) && subject.properties.suspended == true`, true},
		{`subject.id in data.admins`, true},

		{`variables.roles.size() > 0`, true},
		// Each of these can cost more than the limit on a 1 MiB input, or
		// cannot be bounded at all: they stay tracked.
		{`subject.properties.roles.exists(r, r == "admin")`, false},
		{`subject.id.matches(resource.id)`, false},
		{`"admin" in subject.properties.roles`, false}, // a list search: a million members
		{`lists.range(int(subject.properties.n)).size() > 0`, false},
		{`subject.properties.l.sort().size() > 0`, false},
		{`variables.roles.exists(r, r == "admin")`, false},
		{`"x" + variables.name == subject.id`, false},
	}
	for _, tc := range cases {
		src := "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\nvariables:\n  roles: subject.properties.roles\n  name: subject.id + subject.id\nrules:\n  - id: r\n    effect: allow\n    condition: >\n      " + tc.cond + "\n"
		p := compile(t, src)
		if got := p.rules[0].prg.untracked != nil; got != tc.untracked {
			t.Errorf("%s: untracked program planned = %v, want %v", tc.cond, got, tc.untracked)
		}
	}
}

// TestCostLimitHoldsForSmallInputs: a known small input does not switch
// off the cost limit of an expression that can exceed it.
func TestCostLimitHoldsForSmallInputs(t *testing.T) {
	l := engine.DefaultLimits()
	c, err := NewCompiler(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Compile("cost.verdict.yaml", []byte(`apiVersion: verdict.dev/v1
kind: Policy
name: cost
rules:
  - id: heavy
    effect: allow
    condition: lists.range(int(subject.properties.n)).map(i, i * 2).size() > 0
`))
	if err != nil {
		t.Fatal(err)
	}
	in := input("x", map[string]any{"n": int64(900_000)}, "read", "doc", "")
	in.SizeBound = 64
	out := p.Evaluate(context.Background(), in, false)
	if !errors.Is(out.Err, engine.ErrCostLimit) {
		t.Fatalf("want ErrCostLimit, got %v (effect %v)", out.Err, out.Effect)
	}
}

// TestSmallInput: untracked programs serve only inputs of a known size
// within the bound they were planned for.
func TestSmallInput(t *testing.T) {
	for _, tc := range []struct {
		bound int
		want  bool
	}{{0, false}, {-1, false}, {1, true}, {untrackedBound, true}, {untrackedBound + 1, false}} {
		if got := smallInput(&engine.Input{SizeBound: tc.bound}); got != tc.want {
			t.Errorf("SizeBound %d: smallInput = %v, want %v", tc.bound, got, tc.want)
		}
	}
}

// TestTrackedAndUntrackedDecideAlike evaluates the same conditions with
// and without a size bound and expects the same outcome.
func TestTrackedAndUntrackedDecideAlike(t *testing.T) {
	p := compile(t, docsPolicy)
	for i, props := range []map[string]any{nil, {"roles": []any{"editor"}}, {"suspended": true}, {"roles": "x"}} {
		for _, owner := range []string{"alice", "bob"} {
			in := input("alice", props, "update", "doc", owner)
			tracked := p.Evaluate(context.Background(), in, true)
			in.SizeBound = 200
			untracked := p.Evaluate(context.Background(), in, true)
			if fmt.Sprint(tracked) != fmt.Sprint(untracked) {
				t.Errorf("case %d/%s: tracked %+v, untracked %+v", i, owner, tracked, untracked)
			}
		}
	}
	var any bool
	for _, r := range p.rules {
		any = any || (r.prg != nil && r.prg.untracked != nil)
	}
	if !any {
		t.Fatal("no rule of the docs policy got an untracked program: the comparison compared nothing")
	}
}
