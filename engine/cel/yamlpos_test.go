package cel

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/engine"
)

// TestErrorPositionsInEveryScalarStyle: a CEL error points at the line and
// column of the offending character in the file, whatever the YAML style of
// the expression (issue 10: a folded > condition was reported on its first
// line, at a column past its end).
func TestErrorPositionsInEveryScalarStyle(t *testing.T) {
	const head = "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\nvariables:\n  limit: \"10\"\nrules:\n  - id: r\n    effect: allow\n"
	// The condition starts on line 9. at is the text the error must point
	// to (its last occurrence in the line): its first character is the
	// offending one.
	for _, tc := range []struct {
		name, condition string
		line            int
		at, msg         string
	}{
		{"plain", `    condition: subject.id == "a" && a = b`, 9, "= b", "token recognition error"},
		{"plain on two lines", "    condition: resource.properties.amount < 100 &&\n      resource.properties.amount < variables.limt", 10, ".limt", "undeclared reference to 'variables.limt'"},
		{"folded (the issue's case)", "    condition: >\n      resource.properties.amount < 100 &&\n      subject.properties.role == \"manager\" && a = b", 11, "= b", "token recognition error"},
		{"folded, undeclared", "    condition: >\n      resource.properties.amount < 100 &&\n      resource.properties.amount < variables.limt", 11, ".limt", "undeclared reference to 'variables.limt'"},
		{"folded, more indented line", "    condition: >\n      subject.id == \"a\"\n        ? true\n        : variables.limt", 12, ".limt", "undeclared reference"},
		{"folded, blank line", "    condition: >-\n      subject.id == \"a\" &&\n\n      variables.limt", 12, ".limt", "undeclared reference"},
		{"folded with a comment and a tag", "    condition: !!str > # the limit\n      subject.id == \"a\" &&\n      variables.limt", 11, ".limt", "undeclared reference"},
		{"literal", "    condition: |\n      resource.properties.amount < 100 &&\n      subject.id == \"a\" && a = b", 11, "= b", "token recognition error"},
		{"literal, undeclared", "    condition: |+\n      resource.properties.amount < 100 &&\n        variables.limt > 1\n", 11, ".limt", "undeclared reference"},
		{"literal, unexpected end", "    condition: |\n      subject.id == \"a\" &&\n", 10, "&", "mismatched input '<EOF>'"},
		{"double quoted with escapes", `    condition: "subject.id == \"a\\u0062\" && a = b"`, 9, "= b", "token recognition error"},
		{"double quoted on two lines", "    condition: \"subject.id == \\\"a\\\" &&\n      variables.limt > 1\"", 10, ".limt", "undeclared reference"},
		{"double quoted, escaped line break", "    condition: \"subject.id == 'a' && \\\n      variables.limt > 1\"", 10, ".limt", "undeclared reference"},
		{"single quoted", `    condition: 'subject.id == ''a'' && a = b'`, 9, "= b", "token recognition error"},
		{"single quoted on two lines", "    condition: 'subject.id == ''a'' &&\n\n      variables.limt > 1'", 11, ".limt", "undeclared reference"},
		{"tagged plain", `    condition: !!str subject.id == "a" && a = b`, 9, "= b", "token recognition error"},
		{"multi-byte characters before", "    condition: >\n      subject.id == \"é€\" &&\n      \"ü\" == variables.limt", 11, ".limt", "undeclared reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := head + tc.condition + "\n"
			c, _ := NewCompiler(engine.DefaultLimits(), nil)
			_, err := c.Compile("p.verdict.yaml", []byte(src))
			var ce engine.CompileErrors
			if !errors.As(err, &ce) {
				t.Fatalf("want compile errors, got %v", err)
			}
			lines := strings.Split(src, "\n")
			i := strings.LastIndex(lines[tc.line-1], tc.at)
			if i < 0 {
				t.Fatalf("bad case: line %d has no %q", tc.line, tc.at)
			}
			col := utf8.RuneCountInString(lines[tc.line-1][:i]) + 1
			for _, e := range ce {
				if strings.Contains(e.Message, tc.msg) {
					if e.Line != tc.line || e.Col != col {
						t.Errorf("%s at %d:%d, want %d:%d (%q)", e.Message, e.Line, e.Col, tc.line, col, tc.at)
					}
					return
				}
			}
			t.Fatalf("no error containing %q: %v", tc.msg, err)
		})
	}
}

// TestErrorPositionsStayInTheLine: whatever the expression, every error
// points at a line of the file and a column that line has.
func TestErrorPositionsStayInTheLine(t *testing.T) {
	const head = "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\nrules:\n  - id: r\n    effect: allow\n"
	for _, cond := range []string{
		"    condition: >\n      (((\n      ",
		"    condition: |\n      a &&\n\n\n",
		"    condition: \"a &&\\t\\\n  \"",
		"    condition: 'a &&  '",
		"    condition: >\n      a\n    \n      &&",
		"    condition: &x a ==",
	} {
		src := head + cond
		c, _ := NewCompiler(engine.DefaultLimits(), nil)
		_, err := c.Compile("p.verdict.yaml", []byte(src))
		var ce engine.CompileErrors
		if !errors.As(err, &ce) {
			t.Fatalf("%q: want compile errors, got %v", cond, err)
		}
		lines := strings.Split(src, "\n")
		for _, e := range ce {
			if e.Line < 1 || e.Line > len(lines) || e.Col < 1 || (e.Col > 1 && e.Col > utf8.RuneCountInString(lines[e.Line-1])) {
				t.Errorf("%q: %v is not a place in the file", cond, e)
			}
		}
	}
}
