package bundles

import (
	"context"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

const directoryPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: directory
rules:
  - id: engineers-deploy
    effect: allow
    actions: ["deploy"]
    condition: >
      has(data.directory) && subject.id in data.directory.users &&
      "Engineering" in data.directory.users[subject.id].groups
`

func decideDeploy(t *testing.T, m *Manager, who string) bool {
	t.Helper()
	d := m.Active().Snapshot.Decide(context.Background(), &engine.Input{
		Subject: engine.Entity{Type: "user", ID: who}, Action: engine.Action{Name: "deploy"}, Resource: engine.Entity{Type: "app", ID: "a"},
	}, false)
	return d.Allow
}

// TestOverlayReapply: provisioned data reaches the active bundle without
// a push, as a new generation; a bundle that defines the overlay's key
// itself is refused and the active bundle stays.
func TestOverlayReapply(t *testing.T) {
	m := NewManager(DefaultConfig(), nil)
	b := fromStrings(t, map[string]string{"d.verdict.yaml": directoryPolicy})
	a, err := m.Prepare(context.Background(), []*Bundle{b})
	if err != nil {
		t.Fatal(err)
	}
	m.Activate(a)
	if decideDeploy(t, m, "alice") {
		t.Fatal("allowed before anything was provisioned")
	}
	gen := m.Active().Generation
	m.SetOverlay(Overlay{"directory": map[string]any{"users": map[string]any{"alice": map[string]any{"groups": []any{"Engineering"}}}},
		CatalogKey: map[string]any{"user": []any{map[string]any{"id": "alice"}}}})
	if err := m.Reapply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !decideDeploy(t, m, "alice") || decideDeploy(t, m, "bob") {
		t.Fatal("the provisioned data is not what the policy sees")
	}
	if m.Active().Generation <= gen {
		t.Fatal("no new generation: cached decisions of the old data could be served")
	}
	if got := m.Active().Catalog.Entities["user"]; len(got) != 1 || got[0].ID != "alice" {
		t.Fatalf("search candidates %v", got)
	}
	if err := m.Reapply(context.Background()); err != nil || m.Active().Generation != gen+1 {
		t.Fatalf("a second Reapply with the same data activated again: %v", err)
	}
	// A bundle with its own data.directory does not compile beside it.
	clash := fromStrings(t, map[string]string{"d.verdict.yaml": directoryPolicy, "data.json": `{"directory": {"x": 1}}`})
	if _, err := m.Prepare(context.Background(), []*Bundle{clash}); err == nil || !strings.Contains(err.Error(), "data.directory is provided by the server") {
		t.Fatalf("a clashing bundle: %v", err)
	}
	if !decideDeploy(t, m, "alice") {
		t.Fatal("the refused bundle replaced the active one")
	}
}
