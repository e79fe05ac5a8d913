package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// twoRules has a rule the cases of tests never exercise.
var twoRules = policy + `  - id: admins
    effect: allow
    condition: subject.id == 'root'
`

func TestBundleTestRun(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	code, out, _ := cli(t, "", "bundle", "test", "-v", "--run", "^own", dir)
	if code != 0 || !strings.Contains(out, "=== RUN   owner\n--- PASS: owner (") || strings.Contains(out, "stranger") || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("--run ^own: %d\n%s", code, out)
	}
	failing := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": strings.Replace(tests, "expect: false", "expect: true", 1)})
	if code, out, _ := cli(t, "", "bundle", "test", "--run", "owner", failing); code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("--run leaves out the failing case: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "", "bundle", "test", "--run", "nothing-like-this", dir)
	if code != 0 || !strings.Contains(out, "testing: warning: no tests to run") || !strings.Contains(out, "[no tests to run]") {
		t.Fatalf("--run matching nothing: %d\n%s", code, out)
	}
	code, out, errOut := cli(t, "", "bundle", "test", "--run", "(", dir)
	if code != 2 || !strings.Contains(errOut, "invalid --run expression") || out != "" {
		t.Fatalf("bad --run: %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}

func TestBundleTestCoverage(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": twoRules, "p_test.yaml": tests})
	covFile := filepath.Join(t.TempDir(), "cov.json")
	code, out, _ := cli(t, "", "bundle", "test", "--coverage-json", covFile, dir)
	if code != 0 || !strings.Contains(out, "coverage: 1/2 rules exercised\n") || !strings.Contains(out, `not exercised: p.verdict.yaml:8 rule "admins"`) {
		t.Fatalf("coverage: %d\n%s", code, out)
	}
	raw, err := os.ReadFile(covFile)
	if err != nil {
		t.Fatal(err)
	}
	var cov coverageJSON
	if err := json.Unmarshal(raw, &cov); err != nil {
		t.Fatal(err)
	}
	if cov.Exercised != 1 || cov.Total != 2 || cov.Rules[0].Rule != "owners" || cov.Rules[0].Hits != 1 || cov.Rules[1].Hits != 0 || cov.Rules[1].Line != 8 {
		t.Fatalf("coverage JSON = %s", raw)
	}
	full := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	if code, out, _ := cli(t, "", "bundle", "test", full); code != 0 || !strings.Contains(out, "coverage: 1/1 rules exercised") || strings.Contains(out, "not exercised") {
		t.Fatalf("full coverage: %d\n%s", code, out)
	}
}

func TestBundleTestJSON(t *testing.T) {
	failing := bundleDir(t, map[string]string{"p.verdict.yaml": twoRules, "p_test.yaml": strings.Replace(tests, "expect: false", "expect: true", 1)})
	code, out, _ := cli(t, "", "bundle", "test", "--json", failing)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 3 {
		t.Fatalf("--json: %d\n%s", code, out)
	}
	var c1, c2 testCaseJSON
	var sum testSummaryJSON
	for i, v := range []any{&c1, &c2, &sum} {
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, lines[i])
		}
	}
	if c1.Type != "case" || c1.Name != "owner" || c1.Result != "pass" || !c1.Decision || c1.Reasons[0] != "owners" || c1.Line != 2 {
		t.Fatalf("first case = %+v", c1)
	}
	if c2.Result != "fail" || c2.File != "p_test.yaml" || c2.Line != 5 || !strings.Contains(c2.Failure, "decision = false, want true") {
		t.Fatalf("second case = %+v", c2)
	}
	if sum.Type != "summary" || sum.Result != "fail" || sum.Passed != 1 || sum.Failed != 1 || sum.Coverage == nil || sum.Coverage.Exercised != 1 || sum.Coverage.Total != 2 {
		t.Fatalf("summary = %s", lines[2])
	}
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	code, out, _ = cli(t, "", "bundle", "test", "--json", broken)
	if err := json.Unmarshal([]byte(out), &sum); err != nil || code != 1 || sum.Result != "rejected" || len(sum.Errors) == 0 || sum.Errors[0].File != "p.verdict.yaml" || sum.Errors[0].Line != 7 {
		t.Fatalf("rejected --json: %d %v\n%s", code, err, out)
	}
}

func TestBundleLint(t *testing.T) {
	clean := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	code, out, errOut := cli(t, "", "bundle", "lint", clean)
	if code != 0 || out != "" || !strings.Contains(errOut, "no problems found") {
		t.Fatalf("clean: %d\n%s\n%s", code, out, errOut)
	}
	// An untested rule is a warning: exit 0, unless warnings fail.
	warn := bundleDir(t, map[string]string{"p.verdict.yaml": twoRules, "p_test.yaml": tests})
	code, out, errOut = cli(t, "", "bundle", "lint", warn)
	want := `p.verdict.yaml:8:5: warning: rule "admins" is not exercised by any test case: add a case to a *_test.yaml file that makes it match [untested-rule]` + "\n"
	if code != 0 || out != want || !strings.Contains(errOut, "0 errors, 1 warning") {
		t.Fatalf("warning: %d\n%s\n%s", code, out, errOut)
	}
	for _, flag := range [][]string{{"--strict"}, {"--fail-on", "warning"}} {
		if code, _, _ := cli(t, "", append(append([]string{"bundle", "lint"}, flag...), warn)...); code != 1 {
			t.Fatalf("%v: exit %d, want 1", flag, code)
		}
	}
	bad := bundleDir(t, map[string]string{"p.verdict.yaml": policy + "  - id: none\n    effect: deny\n    condition: 1 > 2\n", "p_test.yaml": tests})
	code, out, _ = cli(t, "", "bundle", "lint", bad)
	if code != 1 || !strings.Contains(out, `p.verdict.yaml:10:16: error: rule "none": the condition is always false, so the rule never matches [constant-false]`) {
		t.Fatalf("error: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "", "bundle", "lint", "--json", bad)
	var rep struct {
		Findings []struct {
			File, Check, Severity, Rule string
			Line, Col                   int
		}
		Errors, Warnings int
		Failed           bool
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || !rep.Failed || rep.Errors != 1 || len(rep.Findings) != 1 {
		t.Fatalf("--json: %d %v\n%s", code, err, out)
	}
	if f := rep.Findings[0]; f.File != "p.verdict.yaml" || f.Line != 10 || f.Col != 16 || f.Check != "constant-false" || f.Severity != "error" || f.Rule != "none" {
		t.Fatalf("--json finding = %+v", f)
	}
	if code, out, _ := cli(t, "", "bundle", "lint", filepath.Join(clean, "missing")); code != 1 || !strings.Contains(out, "error: bundle: stat") || !strings.Contains(out, "[read]") {
		t.Fatalf("missing bundle: %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "", "bundle", "lint", "--fail-on", "info", clean); code != 2 || !strings.Contains(errOut, `invalid --fail-on "info"`) {
		t.Fatalf("bad --fail-on: %d %s", code, errOut)
	}
}

func TestBundleHelp(t *testing.T) {
	for cmd, want := range map[string][]string{
		"test": {"--run", "--json", "--coverage-json", "not exercised", "verdict bundle test -v --run"},
		"lint": {"file:line:col: severity: message [check-id]", "--strict", "--fail-on", "unreachable-rule", "untested-rule", "rego-unused-var", "verdict bundle lint --strict"},
	} {
		code, out, _ := cli(t, "", "bundle", cmd, "--help")
		for _, w := range want {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("bundle %s --help: %d, no %q in\n%s", cmd, code, w, out)
			}
		}
	}
}
