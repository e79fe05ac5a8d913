package cel

import (
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/engine"
)

// FuzzCompile loads arbitrary policy files: Compile must never panic, must
// return either a policy or CompileErrors located at places the file has, and a policy it returns
// must evaluate without panicking.
func FuzzCompile(f *testing.F) {
	f.Add([]byte(docsPolicy))
	f.Add([]byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nrules:\n  - id: a\n    effect: allow\n    condition: subject.id == \n"))
	f.Add([]byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nvariables:\n  a: '1'\nrules:\n  - id: a\n    effect: deny\n    condition: variables.a\n"))
	f.Add([]byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nvariables:\n  a: >\n    1 +\n      2 =\nrules:\n  - id: a\n    effect: deny\n    condition: \"variables.a \\\n      == \\u0031\"\n"))
	f.Add([]byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nrules:\n  - id: a\n    effect: deny\n    condition: 'a ==\n\n ''b'''\n   actions: [x]\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("- [\n"))
	c, err := NewCompiler(engine.DefaultLimits(), map[string]any{"k": []any{"v"}})
	if err != nil {
		f.Fatal(err)
	}
	in := input("alice", map[string]any{"roles": []any{"editor"}}, "read", "document", "alice")
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := c.Compile("f.verdict.yaml", src)
		if err != nil {
			var ce engine.CompileErrors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("error is not CompileErrors: %v", err)
			}
			lines := splitLines(src)
			for _, e := range ce {
				if e.File != "f.verdict.yaml" {
					t.Fatalf("error not located in the file: %+v", e)
				}
				if e.Line < 0 || e.Line > len(lines) || e.Col < 0 ||
					(e.Line > 0 && e.Col > max(1, utf8.RuneCountInString(lines[e.Line-1]))) {
					t.Fatalf("error at no place of the file: %+v", e)
				}
			}
			return
		}
		out := p.Evaluate(context.Background(), in, true)
		if out.Err != nil && out.Effect == engine.Allow {
			t.Fatal("a failed evaluation reported allow")
		}
	})
}
