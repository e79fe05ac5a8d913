package cel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

const lintHeader = `apiVersion: verdict.dev/v1
kind: Policy
name: p
combining: %s
variables:
  off: 1 > 2
  also_off: variables.off && true
rules:
`

func lintFile(t *testing.T, combining, rules string) []engine.Finding {
	t.Helper()
	c, err := NewCompiler(engine.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Lint("p.verdict.yaml", []byte(fmt.Sprintf(lintHeader, combining)+rules))
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name, combining, rules string
		// want is "line:col severity check" of every finding, in order; the
		// rules of the file start at line 9.
		want []string
	}{
		{"clean", DenyOverrides, `  - id: a
    effect: allow
    actions: [read]
    condition: subject.id == 'x'
  - id: b
    effect: allow
    actions: [write]
    condition: subject.id == 'x'
`, nil},
		{"after catch-all", FirstApplicable, `  - id: all
    effect: allow
  - id: late
    effect: deny
    actions: [read]
`, []string{"11:5 error unreachable-rule"}},
		{"after a narrower always-true rule", FirstApplicable, `  - id: reads
    effect: allow
    actions: [read]
  - id: writes
    effect: deny
    actions: [write]
  - id: read-docs
    effect: deny
    actions: [read]
    resources: [doc]
`, []string{"15:5 error unreachable-rule"}},
		{"catch-all under deny-overrides is fine", DenyOverrides, `  - id: all
    effect: allow
  - id: late
    effect: deny
    actions: [read]
`, nil},
		{"empty lists", DenyOverrides, `  - id: a
    effect: allow
    actions: []
    resources: []
    condition: subject.id == 'x'
`, []string{"9:5 error empty-list", "9:5 error empty-list"}},
		{"duplicate id", DenyOverrides, `  - id: a
    effect: allow
    condition: subject.id == 'x'
  - id: a
    effect: allow
    condition: subject.id == 'y'
`, []string{"12:5 error duplicate-id"}},
		{"identical rule", DenyOverrides, `  - id: a
    effect: allow
    actions: [read, write]
    condition: subject.id == 'x'
  - id: b
    effect: allow
    actions: [write, read]
    condition: "subject.id   ==  \"x\""
`, []string{"13:5 warning shadowed-rule"}},
		{"allow identical to a deny", DenyOverrides, `  - id: a
    effect: deny
    condition: subject.id == 'x'
  - id: b
    effect: allow
    condition: subject.id == 'x'
`, []string{"12:5 warning shadowed-rule"}},
		{"identical under first-applicable", FirstApplicable, `  - id: a
    effect: deny
    condition: subject.id == 'x'
  - id: b
    effect: allow
    condition: subject.id == 'x'
`, []string{"12:5 error unreachable-rule"}},
		{"constant false", DenyOverrides, `  - id: a
    effect: allow
    condition: "[1, 2].size() == 3 && subject.id == 'x'"
  - id: b
    effect: allow
    condition: variables.also_off
`, []string{"11:16 error constant-false", "14:16 error constant-false"}},
		{"constant true", FirstApplicable, `  - id: a
    effect: allow
    actions: [read]
    condition: has(subject.x) || true
  - id: b
    effect: deny
    actions: [read]
    condition: subject.id == 'x'
`, []string{"12:16 warning constant-true", "13:5 error unreachable-rule"}},
		{"incompatible types", DenyOverrides, `  - id: a
    effect: allow
    condition: subject.id == 'x' && now == null
  - id: b
    effect: allow
    condition: now != null
`, []string{"11:41 error incompatible-types", "14:20 warning incompatible-types"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range lintFile(t, tc.combining, tc.rules) {
				if f.File != "p.verdict.yaml" || f.Message == "" {
					t.Errorf("finding %+v", f)
				}
				got = append(got, fmt.Sprintf("%d:%d %s %s", f.Line, f.Col, f.Severity, f.Check))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("findings:\n%s\nwant:\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), lintFile(t, tc.combining, tc.rules))
			}
		})
	}
}
