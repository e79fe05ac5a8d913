package rego_test

import (
	"context"
	"slices"
	"testing"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/rego"
)

const coveredPolicy = `package verdict

decision := {"decision": false, "reasons": ["suspended"]} if {
	input.subject.properties.suspended == true
} else := {"decision": true, "reasons": sort(allows)} if {
	count(allows) > 0
} else := {"decision": false, "reasons": ["none"]}

allows contains "owner" if input.resource.properties.owner == input.subject.id

allows contains "admin" if {
	input.subject.id == "root"
}

is_even(n) if n % 2 == 0

default fallback := false

fallback if is_even(count(allows))
`

func TestEvaluateCovered(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("p.rego", coveredPolicy)}, rego.Options{})
	var names []string
	for _, r := range p.Rules() {
		names = append(names, r.Rule)
	}
	want := []string{"decision", "decision (else)", "decision (else)", `allows contains "owner"`, `allows contains "admin"`, "is_even(_)", "fallback"}
	if !slices.Equal(names, want) {
		t.Fatalf("Rules() = %q, want %q", names, want)
	}
	if r := p.Rules()[3]; r.File != "p.rego" || r.Line != 9 || r.Policy != "rego:data.verdict.decision" {
		t.Fatalf("owner rule = %+v", r)
	}
	in := input("alice")
	in.Resource.Properties = map[string]any{"owner": "alice"}
	out, hit := p.EvaluateCovered(context.Background(), in)
	if out.Err != nil || out.Effect != engine.Allow {
		t.Fatalf("outcome = %+v", out)
	}
	var got []string
	for _, r := range hit {
		got = append(got, r.Rule)
	}
	// The first branch was evaluated but failed; the second decided. The
	// one-line admin rule was evaluated and failed: it is not hit.
	if want := []string{"decision (else)", `allows contains "owner"`}; !slices.Equal(got, want) {
		t.Fatalf("hit = %q, want %q", got, want)
	}
	if hit[0].Line != 5 {
		t.Fatalf("the else branch hit is at line %d, want 5", hit[0].Line)
	}
	if plain := p.Evaluate(context.Background(), in, false); plain.Effect != out.Effect || !slices.Equal(plain.Rules, out.Rules) {
		t.Fatalf("EvaluateCovered decided %+v, Evaluate %+v", out, plain)
	}
}
