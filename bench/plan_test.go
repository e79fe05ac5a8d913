package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/verdictpdp/verdict/engine"
)

// Query plans (docs/plans.md): what one plan costs, uncached, for the
// rbac example in CEL and in Rego, beside OPA's own partial evaluation of
// the same Rego module with the same unknowns (what OPA's Compile API
// runs; Verdict's Rego planner starts from it, then reads the result as a
// condition tree).
//
//	go test -run '^$' -bench 'Plan' -benchmem ./bench

// planInputs are the subjects of the rotating inputs asking which
// documents they may read; the resource is open (type only).
func planInputs() []*engine.Input {
	var out []*engine.Input
	for _, in := range inputs(4) {
		p := *in
		p.Action = engine.Action{Name: "read"}
		p.Resource = engine.Entity{Type: "document"}
		out = append(out, &p)
	}
	return out
}

func benchPlan(b *testing.B, path string) {
	snap := manager(b, path).Active().Snapshot
	ins := planInputs()
	ctx := context.Background()
	for _, in := range ins { // the first plan compiles the planner's form
		if _, err := snap.Plan(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r, err := snap.Plan(ctx, ins[i%len(ins)])
		if err != nil || r.Plan.Kind == "" {
			b.Fatalf("plan: %+v %v", r, err)
		}
	}
}

func BenchmarkPlanCEL(b *testing.B)  { benchPlan(b, celBundle) }
func BenchmarkPlanRego(b *testing.B) { benchPlan(b, regoBundle) }

// BenchmarkOPAPartial is OPA's partial evaluation of rbac.rego's decision
// with input.resource.id and input.resource.properties unknown, prepared
// once, as OPA's Compile API runs it.
func BenchmarkOPAPartial(b *testing.B) {
	src, err := os.ReadFile(filepath.Join(regoBundle, "rbac.rego"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(regoBundle, "data.json"))
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pq, err := rego.New(rego.Query("data.verdict.decision"), rego.Module("rbac.rego", string(src)),
		rego.Store(inmem.NewFromObject(data)),
		rego.Unknowns([]string{"input.resource.id", "input.resource.properties"})).PrepareForPartial(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var docs []any
	for _, in := range planInputs() {
		docs = append(docs, map[string]any{"subject": engine.EntityDoc(in.Subject), "action": engine.ActionDoc(in.Action),
			"resource": map[string]any{"type": in.Resource.Type}, "context": in.Context})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pqs, err := pq.Partial(ctx, rego.EvalInput(docs[i%len(docs)]))
		if err != nil || pqs == nil {
			b.Fatalf("partial: %v", err)
		}
	}
}
