package cel

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// TestYAMLErrorsInPolicyFiles: a YAML problem is reported at the line and
// column of the offending text, as file:line:col: message, in words without
// Go type names (issue 10: a mis-indented key was reported at the line of
// its block, and an unknown top-level key named the type cel.file).
func TestYAMLErrorsInPolicyFiles(t *testing.T) {
	const head = "apiVersion: verdict.dev/v1\nkind: Policy\nname: invoices\ndescription: d\nvariables:\n  x: \"1\"\nrules:\n  - id: approve\n    effect: allow\n"
	for _, tc := range []struct{ name, src, want string }{
		{"key indented less than its rule", head + "   actions: [approve]\n    condition: \"true\"\n",
			"p.verdict.yaml:10:4: did not find expected '-' indicator: check the indentation of this line"},
		{"key indented by one", head + " actions: [approve]\n",
			"p.verdict.yaml:10:2: did not find expected key: check the indentation of this line"},
		{"key indented more than its rule", head + "    condition: \"true\"\n      actions: [approve]\n",
			"p.verdict.yaml:11:7: did not find expected key: check the indentation of this line"},
		{"key of the policy indented", "apiVersion: verdict.dev/v1\nkind: Policy\n name: invoices\nrules: []\n",
			"p.verdict.yaml:3:2: mapping values are not allowed in this context: check the indentation of this line, or quote a value that holds \": \""},
		{"unterminated quote", head + "    condition: \"true\n    actions: [a]\n",
			"p.verdict.yaml:10:5: found unexpected end of stream"},
		{"unknown top-level key", strings.Replace(head, "description:", "descripton:", 1),
			`p.verdict.yaml:4:1: unknown key "descripton" in the policy (did you mean "description"?)`},
		{"unknown top-level key, not close", head + "owner: me\n",
			`p.verdict.yaml:10:1: unknown key "owner" in the policy (known: apiVersion, kind, name, description, combining, cacheTimeDependent, variables, rules)`},
		{"unknown rule key", head + "    conditon: \"true\"\n",
			`p.verdict.yaml:10:5: unknown key "conditon" in rule (did you mean "condition"?)`},
		{"a string for a list", head + "    actions: approve\n",
			"p.verdict.yaml:10:14: rules[0].actions: must be a list of strings, got a string (approve)"},
		{"a mapping for a string", head + "    actions: [read, {a: b}]\n",
			"p.verdict.yaml:10:21: rules[0].actions[1]: must be a string, got a mapping"},
		{"a list for rules", "apiVersion: verdict.dev/v1\nkind: Policy\nname: n\nrules: approve\n",
			"p.verdict.yaml:4:8: rules: must be a list, got a string (approve)"},
		{"a number for a boolean", head + "cacheTimeDependent: 3\n",
			"p.verdict.yaml:10:21: cacheTimeDependent: must be true or false, got an integer (3)"},
		{"a list for a policy", "- a\n- b\n", "p.verdict.yaml:1:1: must be a mapping, got a list"},
		{"a key twice", head + "    effect: deny\n", `p.verdict.yaml:10:5: key "effect" is defined twice (first at line 9)`},
		{"a problem on the first line (yaml.v3 names no line)", "apiVersion: verdict.dev/v1: x\nkind: Policy\n",
			"p.verdict.yaml:1:1: mapping values are not allowed in this context: check the indentation of this line, or quote a value that holds \": \""},
		{"empty", "", "p.verdict.yaml: empty policy file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := NewCompiler(engine.DefaultLimits(), nil)
			_, err := c.Compile("p.verdict.yaml", []byte(tc.src))
			var ce engine.CompileErrors
			if !errors.As(err, &ce) {
				t.Fatalf("want compile errors, got %v", err)
			}
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
		})
	}
}

// goTypeName matches what a Go type looks like in yaml.v3's messages.
var goTypeName = regexp.MustCompile(`\b(cel|bundles|yaml|engine)\.[a-zA-Z]+|\[\]string|interface \{\}|map\[`)

func TestYAMLErrorsNameNoGoType(t *testing.T) {
	for _, msg := range []string{
		"line 3: cannot unmarshal !!map into cel.rule",
		"line 3: cannot unmarshal !!str `x` into []yaml.Node",
		"line 3: cannot unmarshal !!seq into map[string]interface {}",
		"line 3: field foo not found in type bundles.testFile",
		"line 3: field foo already set in type cel.file",
		"line 3: something new about type cel.file",
	} {
		ce := typeError("f.yaml", nil, msg)
		if goTypeName.MatchString(ce.Message) || ce.Line != 3 {
			t.Errorf("%q became %v", msg, ce)
		}
	}
}
