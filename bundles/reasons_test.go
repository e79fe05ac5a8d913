package bundles

import (
	"context"
	"slices"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestTwoBundlesGiveEachReasonOnce: served together, rbac-cel and rbac-rego
// allow through rules of the same id; the reasons name it once (issue 10:
// ["role-permission","role-permission"]), and the explain trace keeps both
// rules apart, each with the bundle it is in.
func TestTwoBundlesGiveEachReasonOnce(t *testing.T) {
	var bs []*Bundle
	for _, dir := range []string{rbacCELDir, rbacRegoDir} {
		b, err := Load(dir, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	c, err := CompileEach(context.Background(), bs, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	admin := func() *engine.Input {
		return &engine.Input{
			Subject:  engine.Entity{Type: "user", ID: "alice", Properties: map[string]any{"roles": []any{"admin"}}},
			Action:   engine.Action{Name: "read"},
			Resource: engine.Entity{Type: "document", ID: "1"},
		}
	}
	d := c.Snapshot.Decide(context.Background(), admin(), false)
	if !d.Allow || !slices.Equal(d.Reasons, []string{"role-permission"}) {
		t.Fatalf("decision %v, reasons %q; want allow, [role-permission]", d.Allow, d.Reasons)
	}
	d = c.Snapshot.Decide(context.Background(), admin(), true)
	var from []string
	for _, tr := range d.Explain {
		if tr.Rule == "role-permission" && tr.Matched {
			from = append(from, tr.Bundle)
		}
	}
	if !slices.Equal(from, []string{"rbac-cel-1", "rbac-rego-1"}) {
		t.Errorf("role-permission traced from bundles %q, want rbac-cel-1 and rbac-rego-1: %+v", from, d.Explain)
	}
	// A bundle alone does not name itself in traces.
	d = c.PerBundle[0].Decide(context.Background(), admin(), true)
	for _, tr := range d.Explain {
		if tr.Bundle != "" {
			t.Errorf("a single bundle's trace names its bundle: %+v", tr)
		}
	}
}
