package bundles

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// celPolicy is a policy file with the given combining and rules, and a test
// file whose one case exercises rule "a" (subject x reads a doc).
func celBundle(combining, rules string) map[string]string {
	return map[string]string{
		"p.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\ncombining: " + combining + "\nvariables:\n  off: 1 > 2\nrules:\n" + rules,
		"p_test.yaml": `tests:
  - name: x reads
    input: {subject: {type: user, id: x}, action: {name: read}, resource: {type: doc, id: "1"}}
    expect: true
`,
	}
}

// withCase adds a test case to the bundle's test file.
func withCase(files map[string]string, input, expect string) map[string]string {
	files["p_test.yaml"] += "  - input: " + input + "\n    expect: " + expect + "\n"
	return files
}

const ruleA = `  - id: a
    effect: allow
    actions: [read]
    condition: subject.id == 'x'
`

// regoBundle is a Rego module whose entrypoint is exercised by its test.
func regoBundle(extra string, v0 bool) map[string]string {
	m := map[string]string{
		"p.rego": "package verdict\n\n" + extra + "\ndecision if input.subject.id == \"x\"\n",
		"p_test.yaml": `tests:
  - name: x
    input: {subject: {type: user, id: x}, action: {name: read}, resource: {type: doc, id: "1"}}
    expect: true
`,
	}
	if v0 {
		m["p.rego"] = "package verdict\n\nimport rego.v1\n\n" + extra + "\ndecision if input.subject.id == \"x\"\n"
		m[".manifest"] = `{"rego_version": 0}`
	}
	return m
}

func lintFiles(t *testing.T, files map[string]string) []engine.Finding {
	t.Helper()
	fs, err := Lint(context.Background(), fromStrings(t, files), engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestLintChecks runs every check on a bundle that triggers it and on the
// same bundle fixed, which must have no finding of that check.
func TestLintChecks(t *testing.T) {
	for _, tc := range []struct {
		check    string
		severity engine.Severity
		at       string // file:line:col of the finding
		bad, ok  map[string]string
	}{
		{"unreachable-rule", engine.Error, "p.verdict.yaml:14:5",
			celBundle("first-applicable", ruleA+"  - id: all\n    effect: allow\n  - id: late\n    effect: deny\n"),
			celBundle("first-applicable", ruleA+"  - id: late\n    effect: deny\n    actions: [write]\n  - id: all\n    effect: allow\n    condition: subject.id == 'y'\n")},
		{"empty-list", engine.Error, "p.verdict.yaml:8:5",
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    actions: []\n    condition: subject.id == 'x'\n"),
			celBundle("deny-overrides", ruleA)},
		{"duplicate-id", engine.Error, "p.verdict.yaml:12:5",
			celBundle("deny-overrides", ruleA+"  - id: a\n    effect: deny\n    condition: subject.id == 'z'\n"),
			celBundle("deny-overrides", ruleA+"  - id: b\n    effect: deny\n    condition: subject.id == 'z'\n")},
		{"shadowed-rule", engine.Warning, "p.verdict.yaml:12:5",
			celBundle("deny-overrides", ruleA+strings.Replace(ruleA, "id: a", "id: b", 1)),
			celBundle("deny-overrides", ruleA+strings.Replace(strings.Replace(ruleA, "id: a", "id: b", 1), "'x'", "'z'", 1))},
		{"constant-false", engine.Error, "p.verdict.yaml:14:16",
			celBundle("deny-overrides", ruleA+"  - id: b\n    effect: deny\n    condition: variables.off\n"),
			celBundle("deny-overrides", ruleA+"  - id: b\n    effect: deny\n    condition: variables.off || subject.id == 'z'\n")},
		{"constant-true", engine.Warning, "p.verdict.yaml:11:16",
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    actions: [read]\n    condition: \"!variables.off\"\n"),
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    actions: [read]\n")},
		{"incompatible-types", engine.Error, "p.verdict.yaml:10:41",
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    condition: subject.id == 'x' || now == null\n"),
			celBundle("deny-overrides", ruleA)},
		{"incompatible-types", engine.Error, "p.verdict.yaml:10:41", // rejected by the checker
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    condition: subject.id == 'x' || now == 'x'\n"),
			celBundle("deny-overrides", ruleA)},
		{"compile", engine.Error, "p.verdict.yaml:10:30",
			celBundle("deny-overrides", "  - id: a\n    effect: allow\n    condition: subject.id == nope\n"),
			celBundle("deny-overrides", ruleA)},
		{"tests", engine.Error, "p_test.yaml:2:5",
			map[string]string{"p.verdict.yaml": celBundle("deny-overrides", ruleA)["p.verdict.yaml"], "p_test.yaml": "tests:\n  - nme: x\n"},
			celBundle("deny-overrides", ruleA)},
		{"untested-rule", engine.Warning, "p.verdict.yaml:12:5",
			celBundle("deny-overrides", ruleA+"  - id: b\n    effect: deny\n    condition: subject.id == 'z'\n"),
			withCase(celBundle("deny-overrides", ruleA+"  - id: b\n    effect: deny\n    condition: subject.id == 'z'\n"),
				`{subject: {type: user, id: z}, action: {name: read}, resource: {type: doc, id: "1"}}`, "{decision: false, reasons: [b]}")},
		{"untested-rule", engine.Warning, "p.rego:3:1",
			regoBundle("other if input.subject.id == \"never\"\n", false),
			map[string]string{"p.rego": "package verdict\n\nother if input.subject.id == \"x\"\n\ndecision if other\n", "p_test.yaml": regoBundle("", false)["p_test.yaml"]}},
		{"rego-unused-var", engine.Warning, "p.rego:4:2",
			regoBundle("helper if {\n\ty := 1\n\tinput.subject.id == \"x\"\n}\n", false),
			regoBundle("helper if {\n\tinput.subject.id == \"x\"\n}\n", false)},
		{"rego-unused-arg", engine.Warning, "p.rego:3:1",
			regoBundle("f(a) := 1\nhelper if f(1) == 1 \n", false),
			regoBundle("f(_) := 1\nhelper if f(1) == 1 \n", false)},
		{"rego-unused-import", engine.Warning, "p.rego:3:1",
			regoBundle("import data.roles\n", false),
			regoBundle("", false)},
		{"rego-duplicate-import", engine.Error, "p.rego:6:1",
			regoBundle("import data.roles\nimport data.roles\nhelper if roles.x\n", true),
			regoBundle("import data.roles\nhelper if roles.x\n", true)},
		{"rego-shadowed", engine.Error, "p.rego:6:2",
			regoBundle("helper if {\n\tinput := 1\n\tinput == 1\n}\n", true),
			regoBundle("helper if {\n\tv := 1\n\tv == 1\n}\n", true)},
		{"rego-deprecated-builtin", engine.Warning, "p.rego:5:10",
			map[string]string{"p.rego": "package verdict\n\ndecision { input.subject.id == \"x\" }\n\nhelper { any([true]) }\n", ".manifest": `{"rego_version": 0}`, "p_test.yaml": regoBundle("", false)["p_test.yaml"]},
			map[string]string{"p.rego": "package verdict\n\ndecision { input.subject.id == \"x\" }\n\nhelper { true in [true] }\n", ".manifest": `{"rego_version": 0}`, "p_test.yaml": regoBundle("", false)["p_test.yaml"]}},
		{"rego-v1", engine.Warning, "p.rego:3:1",
			regoBundle("import rego.v1\n", false),
			regoBundle("", false)},
	} {
		t.Run(tc.check, func(t *testing.T) {
			var hit *engine.Finding
			bad := lintFiles(t, tc.bad)
			for i, f := range bad {
				if f.Check == tc.check && hit == nil {
					hit = &bad[i]
				}
			}
			if hit == nil {
				t.Fatalf("no %s finding in %v", tc.check, bad)
			}
			if at := fmt.Sprintf("%s:%d", hit.File, hit.Line); hit.Col > 0 {
				at += fmt.Sprintf(":%d", hit.Col)
				if at != tc.at || hit.Severity != tc.severity {
					t.Fatalf("finding %s, want at %s with severity %s", hit, tc.at, tc.severity)
				}
			} else if at != tc.at || hit.Severity != tc.severity {
				t.Fatalf("finding %s, want at %s with severity %s", hit, tc.at, tc.severity)
			}
			for _, f := range lintFiles(t, tc.ok) {
				if f.Check == tc.check {
					t.Fatalf("the fixed bundle has a %s finding: %s", tc.check, f)
				}
			}
		})
	}
}

func TestLintReportsOnce(t *testing.T) {
	fs := lintFiles(t, celBundle("deny-overrides", ruleA+"  - id: a\n    effect: deny\n    condition: subject.id == 'z'\n"))
	if len(fs) != 1 || fs[0].Check != "duplicate-id" || fs[0].Severity != engine.Error {
		t.Fatalf("a duplicate id is one finding, got %v", fs)
	}
	// A Rego compile error that strict mode reports too comes once, as
	// the compile error.
	fs = lintFiles(t, regoBundle("helper if undefined_thing\n", false))
	if len(fs) != 1 || fs[0].Check != "compile" || !strings.Contains(fs[0].Message, "undefined_thing") {
		t.Fatalf("an undeclared var is one compile finding, got %v", fs)
	}
}

func TestLintExamples(t *testing.T) {
	for _, name := range []string{"quickstart", "rbac-cel", "rbac-rego"} {
		b, err := Load("../policies/"+name, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		fs, err := Lint(context.Background(), b, engine.DefaultLimits())
		if err != nil || len(fs) > 0 {
			t.Errorf("%s: %v %v", name, err, fs)
		}
	}
}
