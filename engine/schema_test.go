package engine

import (
	"context"
	"slices"
	"testing"
)

// needsOwner is an InputValidator that wants resource.properties.owner.
type needsOwner struct{ seen *map[string]any }

func (v needsOwner) ValidateInput(doc map[string]any) []string {
	*v.seen = doc
	props := doc["resource"].(map[string]any)["properties"].(map[string]any)
	if _, ok := props["owner"]; !ok {
		return []string{"at /resource/properties: missing property 'owner'"}
	}
	return nil
}

func TestSnapshotValidatesBeforeEvaluating(t *testing.T) {
	var seen map[string]any
	for _, mode := range []SchemaMode{"", SchemaEnforce, SchemaWarn} {
		calls := 0
		snap := NewSnapshot([]Evaluator{fixed{name: "p", effect: Allow, rules: []string{"ok"}, calls: &calls}},
			SnapshotOptions{Revision: "r", Validators: map[string]InputValidator{"doc": needsOwner{&seen}}, SchemaMode: mode})
		bad := &Input{Subject: Entity{Type: "u", ID: "a"}, Action: Action{Name: "read"}, Resource: Entity{Type: "doc", ID: "1"},
			Token: map[string]any{"sub": "a"}}
		d := snap.Decide(context.Background(), bad, true)
		if _, hasToken := seen["token"]; hasToken || seen["context"] == nil {
			t.Fatalf("the validator saw %v: want {subject, action, resource, context} only", seen)
		}
		if d.Violation == nil || d.Err != nil || len(d.Explain) == 0 || d.Explain[0].Policy != "schema" {
			t.Fatalf("mode %q: %+v", mode, d)
		}
		if mode == SchemaWarn {
			if !d.Allow || d.Violation.Enforced || calls != 1 {
				t.Fatalf("warn: %+v (policy calls %d)", d, calls)
			}
			continue
		}
		if d.Allow || !slices.Equal(d.Reasons, []string{ReasonSchemaViolation}) || !d.Violation.Enforced || calls != 0 {
			t.Fatalf("enforce %q: %+v (policy calls %d)", mode, d, calls)
		}
		// A matching input, and one of a type without a validator, are decided.
		good := *bad
		good.Resource.Properties = map[string]any{"owner": "a"}
		other := *bad
		other.Resource.Type = "folder"
		for _, in := range []*Input{&good, &other} {
			if d := snap.Decide(context.Background(), in, false); !d.Allow || d.Violation != nil {
				t.Fatalf("%+v: %+v", in.Resource, d)
			}
		}
	}
	if err := SchemaMode("strict").Validate(); err == nil {
		t.Fatal("an unknown mode is valid")
	}
}
