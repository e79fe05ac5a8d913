package rego_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine/rego"
)

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		v0   bool
		src  string
		want []string // "line:col check" of every finding
	}{
		{"clean", false, `package verdict

import data.roles

decision if {
	some r in roles[input.subject.id]
	r == "admin"
}
`, nil},
		{"unused local var", false, `package verdict

decision if {
	x := input.subject.id
	input.action.name == "read"
}
`, []string{"4:2 rego-unused-var"}},
		{"unused import", false, `package verdict

import data.roles

decision if input.action.name == "read"
`, []string{"3:1 rego-unused-import"}},
		{"unused argument", false, `package verdict

f(x) := true

decision if f(1)
`, []string{"3:1 rego-unused-arg"}},
		{"duplicate import", true, `package verdict

import data.roles
import data.roles

decision { roles[input.subject.id] }
`, []string{"4:1 rego-duplicate-import", "6:1 rego-v1"}},
		{"deprecated built-in in v0", true, `package verdict

decision { any([true]) }
`, []string{"3:12 rego-deprecated-builtin", "3:1 rego-v1"}},
		{"shadowed input in v0", true, `package verdict

import rego.v1

decision if {
	input := 1
	input > 0
}
`, []string{"6:2 rego-unused-var", "6:2 rego-shadowed"}},
		{"v1-ready v0 module", true, `package verdict

import rego.v1

decision if input.action.name == "read"
`, nil},
		{"redundant rego.v1 import", false, `package verdict

import rego.v1

decision if input.action.name == "read"
`, []string{"3:1 rego-v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := rego.Lint([]rego.Module{mod("p.rego", tc.src)}, rego.Options{V0: tc.v0})
			var got []string
			for _, f := range fs {
				got = append(got, fmt.Sprintf("%d:%d %s", f.Line, f.Col, f.Check))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("findings:\n%s\nwant:\n%s\n%v", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), fs)
			}
		})
	}
}
