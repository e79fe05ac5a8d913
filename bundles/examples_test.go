package bundles

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// The example bundles under policies/ and the decision cases in testdata/ are
// data, but the quickstart serves them and the docs quote them: these tests
// keep them compiling, passing their own tests, and keep the CEL and Rego
// versions of the RBAC policy giving the same answers.

const (
	quickstartDir  = "../policies/quickstart"
	rbacCELDir     = "../policies/rbac-cel"
	rbacRegoDir    = "../policies/rbac-rego"
	authzenCELDir  = "../policies/authzen-certification-cel"
	authzenRegoDir = "../policies/authzen-certification-rego"
	todoCELDir     = "../policies/authzen-todo-cel"
	todoRegoDir    = "../policies/authzen-todo-rego"
	sharedDecision = "../testdata/decisions.yaml"
)

// example is a loaded and compiled example bundle.
type example struct {
	dir    string
	bundle *Bundle
	snap   *engine.Snapshot
}

func loadExample(t *testing.T, dir string) example {
	t.Helper()
	b, err := Load(dir, DefaultLimits())
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	// The examples are checked for their decisions, not for deadlines: a
	// loaded 2-core machine under -race once took a Rego evaluation past
	// the 50 ms default (denied, fail closed) in CI.
	lim := engine.DefaultLimits()
	lim.Timeout = 5 * time.Second
	snap, err := Compile(context.Background(), []*Bundle{b}, lim)
	if err != nil {
		t.Fatalf("compile %s:\n%v", dir, err)
	}
	return example{dir: dir, bundle: b, snap: snap}
}

// ownTests returns the bundle's *_test.yaml cases, failing if it has none.
func (e example) ownTests(t *testing.T) []TestCase {
	t.Helper()
	cases, err := e.bundle.Tests()
	if err != nil {
		t.Fatalf("tests of %s:\n%v", e.dir, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s has no test cases", e.dir)
	}
	return cases
}

// sharedCases parses testdata/decisions.yaml with the parser of *_test.yaml
// files.
func sharedCases(t *testing.T) []TestCase {
	t.Helper()
	raw, err := os.ReadFile(sharedDecision)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := parseTests(filepath.ToSlash(sharedDecision), raw)
	if err != nil {
		t.Fatalf("parse %s:\n%v", sharedDecision, err)
	}
	return cases
}

// requirePass fails t for every case of cases that snap does not pass, and
// for every case that was decided by an evaluation error (RunTests lets an
// expected deny pass even when it came from an error; the examples are written
// never to fail).
func requirePass(t *testing.T, name string, snap *engine.Snapshot, cases []TestCase) {
	t.Helper()
	for _, r := range RunTests(context.Background(), snap, cases) {
		if !r.Passed() {
			t.Errorf("%s: %s:%d: %q: %s", name, r.Case.File, r.Case.Line, r.Case.Name, r.Failure)
		}
		if r.Decision.Err != nil {
			t.Errorf("%s: %s:%d: %q: evaluation error: %v", name, r.Case.File, r.Case.Line, r.Case.Name, r.Decision.Err)
		}
	}
}

func sortedReasons(d engine.Decision) []string {
	r := slices.Clone(d.Reasons)
	slices.Sort(r)
	return r
}

func TestExampleQuickstart(t *testing.T) {
	qs := loadExample(t, quickstartDir)
	if got := qs.snap.Revision(); got != "quickstart-1" {
		t.Errorf("revision = %q, want quickstart-1", got)
	}
	if !qs.snap.Cacheable() {
		t.Error("decisions should be cacheable: the quickstart must not read the time")
	}
	if got := qs.snap.Counts(); got[KindCEL] != 1 || got[KindRego] != 0 {
		t.Errorf("counts = %v, want one CEL policy", got)
	}
	requirePass(t, "quickstart", qs.snap, qs.ownTests(t))
}

func TestExampleRBACBundles(t *testing.T) {
	twinBundles(t, rbacCELDir, rbacRegoDir, "rbac-cel-1", "rbac-rego-1")
}

// TestExampleAuthZENCertificationBundles: the CEL and the Rego bundle of the
// AuthZEN certification scenario hold the same data and the same cases, pass
// each other's cases with the same reasons.
func TestExampleAuthZENCertificationBundles(t *testing.T) {
	cel, rego := twinBundles(t, authzenCELDir, authzenRegoDir,
		"authzen-certification-cel-1", "authzen-certification-rego-1")
	sameFiles(t, cel, rego, "data.json", "authzen_test.yaml")
}

// TestExampleAuthZENTodoBundles: the CEL and the Rego bundle of the AuthZEN
// interop Todo scenario hold the same data and the same cases, pass each
// other's cases with the same reasons, and their cases include every single
// evaluation of the official decision file with its expected decision.
func TestExampleAuthZENTodoBundles(t *testing.T) {
	cel, rego := twinBundles(t, todoCELDir, todoRegoDir, "authzen-todo-cel-1", "authzen-todo-rego-1")
	sameFiles(t, cel, rego, "data.json", "todo_test.yaml")

	raw, err := os.ReadFile("../testdata/authzen-todo/decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	var official struct {
		Evaluation []struct {
			Request  map[string]any `json:"request"`
			Expected bool           `json:"expected"`
		} `json:"evaluation"`
	}
	if err := json.Unmarshal(raw, &official); err != nil {
		t.Fatal(err)
	}
	cases := cel.ownTests(t)
	if len(official.Evaluation) != 40 || len(cases) < len(official.Evaluation) {
		t.Fatalf("%d official evaluations, %d cases: want 40, and a case for each", len(official.Evaluation), len(cases))
	}
	for i, ev := range official.Evaluation {
		tc := cases[i]
		want, err := engine.ParseInput(ev.Request, "")
		if err != nil {
			t.Fatalf("official evaluation %d: %v", i+1, err)
		}
		if !reflect.DeepEqual(tc.Input, want) || tc.Want != ev.Expected {
			t.Errorf("%s:%d: case %d is not official evaluation %d (%v, expected %v)", tc.File, tc.Line, i+1, i+1, ev.Request, ev.Expected)
		}
	}
}

// sameFiles fails t if one of names differs between the twin bundles, or if
// one of their cases gives no reasons (so that passing both means agreeing).
func sameFiles(t *testing.T, cel, rego example, names ...string) {
	t.Helper()
	for _, name := range names {
		a, errA := os.ReadFile(filepath.Join(cel.dir, name))
		b, errB := os.ReadFile(filepath.Join(rego.dir, name))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", name, errA, errB)
		}
		if string(a) != string(b) {
			t.Errorf("%s differs between %s and %s: the two bundles must hold the same one", name, cel.dir, rego.dir)
		}
	}
	for _, tc := range cel.ownTests(t) {
		if tc.WantReasons == nil {
			t.Errorf("%s:%d: %q gives no reasons; these cases must, so that drift shows", tc.File, tc.Line, tc.Name)
		}
	}
}

// twinBundles loads a CEL bundle and its Rego twin, checks their revisions,
// that each holds one policy of its engine and never reads the time, and that
// each passes its own cases and those of the other.
func twinBundles(t *testing.T, celDir, regoDir, celRev, regoRev string) (cel, rego example) {
	t.Helper()
	cel = loadExample(t, celDir)
	rego = loadExample(t, regoDir)

	for _, tc := range []struct {
		e        example
		revision string
		kind     string
	}{
		{cel, celRev, KindCEL},
		{rego, regoRev, KindRego},
	} {
		if got := tc.e.snap.Revision(); got != tc.revision {
			t.Errorf("%s: revision = %q, want %q", tc.e.dir, got, tc.revision)
		}
		if got := tc.e.snap.Counts(); got[tc.kind] != 1 || len(got) != 1 {
			t.Errorf("%s: counts = %v, want one %s policy", tc.e.dir, got, tc.kind)
		}
		if !tc.e.snap.Cacheable() {
			t.Errorf("%s: decisions should be cacheable: the policy must not read the time", tc.e.dir)
		}
	}

	// Both bundles hold the same logic, so each must pass its own cases and
	// those of the other.
	celCases, regoCases := cel.ownTests(t), rego.ownTests(t)
	requirePass(t, celDir, cel.snap, celCases)
	requirePass(t, celDir, cel.snap, regoCases)
	requirePass(t, regoDir, rego.snap, regoCases)
	requirePass(t, regoDir, rego.snap, celCases)
	return cel, rego
}

func TestSharedDecisionsAgreeAcrossEngines(t *testing.T) {
	cel := loadExample(t, rbacCELDir)
	rego := loadExample(t, rbacRegoDir)
	shared := sharedCases(t)
	if len(shared) < 25 {
		t.Fatalf("%s has %d cases, want at least 25", sharedDecision, len(shared))
	}
	names := map[string]bool{}
	for _, tc := range shared {
		if names[tc.Name] {
			t.Errorf("%s:%d: case name %q is used twice", tc.File, tc.Line, tc.Name)
		}
		names[tc.Name] = true
		if tc.WantReasons == nil {
			t.Errorf("%s:%d: %q gives no reasons; shared cases must, so that drift shows", tc.File, tc.Line, tc.Name)
		}
	}

	requirePass(t, "rbac-cel", cel.snap, shared)
	requirePass(t, "rbac-rego", rego.snap, shared)

	// Agreement is checked on every case either engine knows about, each case
	// in parallel to exercise the snapshots' goroutine safety under -race.
	all := append(append(slices.Clone(shared), cel.ownTests(t)...), rego.ownTests(t)...)
	for _, tc := range all {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			for _, explain := range []bool{false, true} {
				inC, inR := *tc.Input, *tc.Input
				dc := cel.snap.Decide(context.Background(), &inC, explain)
				dr := rego.snap.Decide(context.Background(), &inR, explain)
				if dc.Err != nil || dr.Err != nil {
					t.Fatalf("explain=%v: evaluation error: cel %v, rego %v", explain, dc.Err, dr.Err)
				}
				if dc.Allow != dr.Allow || !slices.Equal(sortedReasons(dc), sortedReasons(dr)) {
					t.Errorf("%s:%d: explain=%v: engines disagree: cel %v %v, rego %v %v",
						tc.File, tc.Line, explain, dc.Allow, dc.Reasons, dr.Allow, dr.Reasons)
				}
			}
		})
	}
}

// TestMixedBundleDenyOverrides checks that CEL policy files and Rego modules
// of one bundle are combined deny-overrides: any deny, from either engine,
// wins over any allow.
func TestMixedBundleDenyOverrides(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		".manifest": `{"revision": "mixed-1"}`,
		"data.json": `{"secret_types": ["secret"]}`,
		"read.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: read
rules:
  - id: cel-allow-read
    effect: allow
    actions: ["read"]
  - id: cel-deny-blocked
    effect: deny
    condition: has(subject.properties.blocked) && subject.properties.blocked == true
`,
		"policy/decision.rego": `package verdict

decision := {"decision": false, "reasons": ["rego-deny-secret"]} if {
	input.resource.type in data.secret_types
} else := {"decision": true, "reasons": ["rego-allow-read"]} if {
	input.action.name == "read"
} else := false
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mixed := loadExample(t, dir)
	if got := mixed.snap.Counts(); got[KindCEL] != 1 || got[KindRego] != 1 {
		t.Errorf("counts = %v, want one CEL policy and one Rego module", got)
	}
	if got := mixed.snap.Revision(); got != "mixed-1" {
		t.Errorf("revision = %q, want mixed-1", got)
	}

	in := func(blocked bool, action, rtype string) *engine.Input {
		return &engine.Input{
			Subject:  engine.Entity{Type: "user", ID: "u", Properties: map[string]any{"blocked": blocked}},
			Action:   engine.Action{Name: action},
			Resource: engine.Entity{Type: rtype, ID: "1"},
		}
	}
	cases := []struct {
		name    string
		in      *engine.Input
		allow   bool
		reasons []string
		// anyOf, when set, means the reasons must be a non-empty subset of it:
		// once one module denies, the others need not be asked.
		anyOf bool
	}{
		{"both allow: reasons of both", in(false, "read", "document"), true, []string{"cel-allow-read", "rego-allow-read"}, false},
		{"CEL allows, Rego denies", in(false, "read", "secret"), false, []string{"rego-deny-secret"}, false},
		{"Rego allows, CEL denies", in(true, "read", "document"), false, []string{"cel-deny-blocked"}, false},
		{"CEL not applicable, Rego false is a deny", in(false, "write", "document"), false, []string{"data.verdict.decision"}, false},
		{"both deny", in(true, "read", "secret"), false, []string{"cel-deny-blocked", "rego-deny-secret"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := mixed.snap.Decide(context.Background(), tc.in, false)
			if d.Err != nil {
				t.Fatalf("evaluation error: %v", d.Err)
			}
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v, want %v (reasons %v)", d.Allow, tc.allow, d.Reasons)
			}
			if d.Revision != "mixed-1" {
				t.Errorf("decision revision = %q, want mixed-1", d.Revision)
			}
			if tc.anyOf {
				if len(d.Reasons) == 0 {
					t.Fatalf("no reasons, want some of %v", tc.reasons)
				}
				for _, r := range d.Reasons {
					if !slices.Contains(tc.reasons, r) {
						t.Errorf("reason %q is not one of %v", r, tc.reasons)
					}
				}
				return
			}
			if !sameSet(d.Reasons, tc.reasons) {
				t.Errorf("reasons = %v, want %v", d.Reasons, tc.reasons)
			}
		})
	}

	// The same cases as a bundle test file run through the bundle's own
	// test runner.
	const testFile = `tests:
  - name: blocked reader of a document
    input: {subject: {type: user, id: u, properties: {blocked: true}}, action: {name: read}, resource: {type: document, id: "1"}}
    expect: {decision: false, reasons: [cel-deny-blocked]}
  - name: reader of a secret
    input: {subject: {type: user, id: u}, action: {name: read}, resource: {type: secret, id: "1"}}
    expect: {decision: false, reasons: [rego-deny-secret]}
  - name: reader of a document
    input: {subject: {type: user, id: u}, action: {name: read}, resource: {type: document, id: "1"}}
    expect: {decision: true, reasons: [cel-allow-read, rego-allow-read]}
`
	cases2, err := parseTests("mixed_test.yaml", []byte(testFile))
	if err != nil {
		t.Fatal(err)
	}
	requirePass(t, "mixed", mixed.snap, cases2)
}
