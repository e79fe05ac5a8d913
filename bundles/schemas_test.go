package bundles

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// docSchema requires a document's owner (a string) and allows only the
// actions read and update.
const docSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "action": {"properties": {"name": {"enum": ["read", "update"]}}},
    "resource": {
      "properties": {"properties": {"$ref": "common/owned.json"}}
    }
  }
}`

const ownedSchema = `{"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string", "minLength": 1}}}`

// allowAllCEL and allowAllRego allow everything, so that any deny comes from
// the schema.
const allowAllCEL = `apiVersion: verdict.dev/v1
kind: Policy
name: all
rules:
  - id: everyone
    effect: allow
    condition: "true"
`

const allowAllRego = `package verdict
decision := {"decision": true, "reasons": ["everyone"]}
`

func schemaBundle(t *testing.T, policy map[string]string, extra map[string]string) *Bundle {
	t.Helper()
	files := map[string]string{"schemas/document.json": docSchema, "schemas/common/owned.json": ownedSchema}
	maps.Copy(files, policy)
	maps.Copy(files, extra)
	return fromStrings(t, files)
}

func docInput(action string, props map[string]any) *engine.Input {
	return &engine.Input{
		Subject:  engine.Entity{Type: "user", ID: "alice"},
		Action:   engine.Action{Name: action},
		Resource: engine.Entity{Type: "document", ID: "1", Properties: props},
	}
}

func TestSchemasGuardBothEngines(t *testing.T) {
	engines := map[string]map[string]string{
		"cel":  {"all.verdict.yaml": allowAllCEL},
		"rego": {"all.rego": allowAllRego},
	}
	for name, policy := range engines {
		t.Run(name, func(t *testing.T) {
			snap, err := Compile(context.Background(), []*Bundle{schemaBundle(t, policy, nil)}, engine.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			good := snap.Decide(context.Background(), docInput("read", map[string]any{"owner": "alice"}), false)
			if !good.Allow || good.Violation != nil {
				t.Fatalf("a matching input: %+v", good)
			}
			for _, bad := range []*engine.Input{
				docInput("read", nil),                                // no owner
				docInput("read", map[string]any{"owner": int64(7)}),  // wrong type
				docInput("delete", map[string]any{"owner": "alice"}), // action not in the enum
			} {
				d := snap.Decide(context.Background(), bad, true)
				if d.Allow || !slices.Equal(d.Reasons, []string{engine.ReasonSchemaViolation}) || d.Err != nil {
					t.Fatalf("a violating input: %+v", d)
				}
				if d.Violation == nil || !d.Violation.Enforced || len(d.Violation.Problems) == 0 ||
					!strings.HasPrefix(d.Violation.Problems[0], "at /") {
					t.Fatalf("violation: %+v", d.Violation)
				}
				if len(d.Explain) != 1 || d.Explain[0].Policy != "schema" || d.Explain[0].Error == "" {
					t.Fatalf("explain: %+v", d.Explain)
				}
			}
			// Another resource type has no schema: decided by the policy.
			other := docInput("delete", nil)
			other.Resource.Type = "folder"
			if d := snap.Decide(context.Background(), other, false); !d.Allow {
				t.Fatalf("a type without a schema: %+v", d)
			}
		})
	}
}

func TestSchemaProblemsNameTheField(t *testing.T) {
	snap, err := Compile(context.Background(), []*Bundle{schemaBundle(t, map[string]string{"all.verdict.yaml": allowAllCEL}, nil)}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	d := snap.Decide(context.Background(), docInput("read", map[string]any{"owner": int64(7)}), false)
	if d.Violation == nil || !strings.Contains(d.Violation.Error(), "/resource/properties/owner") ||
		!strings.Contains(d.Violation.Error(), `"document"`) {
		t.Fatalf("violation: %v", d.Violation)
	}
	t.Log(d.Violation)
}

func TestSchemaWarnMode(t *testing.T) {
	m := NewManager(Config{Limits: DefaultLimits(), Engine: engine.DefaultLimits(), SchemaMode: engine.SchemaWarn}, nil)
	a, err := m.Prepare(context.Background(), []*Bundle{schemaBundle(t, map[string]string{"all.rego": allowAllRego}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	d := a.Snapshot.Decide(context.Background(), docInput("read", nil), false)
	if !d.Allow || !slices.Equal(d.Reasons, []string{"everyone"}) {
		t.Fatalf("warn mode changed the decision: %+v", d)
	}
	if d.Violation == nil || d.Violation.Enforced {
		t.Fatalf("warn mode must record the violation: %+v", d.Violation)
	}
	if err := (Config{Limits: DefaultLimits(), Engine: engine.DefaultLimits(), SchemaMode: "loose"}).Validate(); err == nil {
		t.Fatal("an unknown schema mode passed validation")
	}
}

func TestBadSchemaRejectsTheBundle(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		file  string
	}{
		"not JSON":          {map[string]string{"schemas/document.json": "{nope"}, "schemas/document.json"},
		"not a schema":      {map[string]string{"schemas/document.json": `{"type": 12}`}, "schemas/document.json"},
		"bad regexp":        {map[string]string{"schemas/folder.json": `{"properties": {"x": {"pattern": "("}}}`}, "schemas/folder.json"},
		"ref out of bundle": {map[string]string{"schemas/folder.json": `{"$ref": "file:///etc/passwd"}`}, "schemas/folder.json"},
		"missing ref":       {map[string]string{"schemas/folder.json": `{"$ref": "common/none.json"}`}, "schemas/folder.json"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs := map[string][]byte{"all.verdict.yaml": []byte(allowAllCEL)}
			for k, v := range c.files {
				fs[k] = []byte(v)
			}
			b, err := FromFiles(fs, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			m := NewManager(DefaultConfig(), nil)
			_, err = m.Prepare(context.Background(), []*Bundle{b})
			ce, ok := errors.AsType[engine.CompileErrors](err)
			if !ok || len(ce) == 0 || ce[0].File != c.file {
				t.Fatalf("want a compile error naming %s, got %v", c.file, err)
			}
			t.Log(err)
			if m.Active() != nil {
				t.Fatal("a bundle with a bad schema was activated")
			}
		})
	}
}

func TestBundleTestsSeeTheSchema(t *testing.T) {
	tests := `tests:
  - name: owner missing is a schema violation
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: document, id: "1"}}
    expect: {decision: false, reasons: [schema_violation]}
  - name: well formed
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: true
`
	m := NewManager(DefaultConfig(), nil)
	a, err := m.Prepare(context.Background(), []*Bundle{schemaBundle(t, map[string]string{"all.verdict.yaml": allowAllCEL}, map[string]string{"s_test.yaml": tests})})
	if err != nil {
		t.Fatal(err)
	}
	if a.Tests.Passed != 2 {
		t.Fatalf("tests: %+v", a.Tests)
	}
	// Without the schema the first case fails: the tests really see it.
	b, _ := FromFiles(map[string][]byte{"all.verdict.yaml": []byte(allowAllCEL), "s_test.yaml": []byte(tests)}, DefaultLimits())
	if _, err := m.Prepare(context.Background(), []*Bundle{b}); !errors.As(err, new(TestFailures)) {
		t.Fatalf("want the schema case to fail without a schema, got %v", err)
	}
}

func TestSchemasOfSeveralBundlesAllApply(t *testing.T) {
	strict := map[string][]byte{"schemas/document.json": []byte(`{"properties": {"context": {"required": ["ip"]}}}`), "x.verdict.yaml": []byte(strings.Replace(allowAllCEL, "name: all", "name: x", 1))}
	b2, err := FromFiles(strict, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Compile(context.Background(), []*Bundle{schemaBundle(t, map[string]string{"all.verdict.yaml": allowAllCEL}, nil), b2}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	in := docInput("read", map[string]any{"owner": "alice"})
	if d := snap.Decide(context.Background(), in, false); d.Allow {
		t.Fatalf("the second bundle's schema was not applied: %+v", d)
	}
	in.Context = map[string]any{"ip": "10.0.0.1"}
	if d := snap.Decide(context.Background(), in, false); !d.Allow {
		t.Fatalf("an input matching both schemas: %+v", d)
	}
}
