package cel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

const docsPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: documents
combining: deny-overrides
variables:
  is_owner: resource.properties.owner == subject.id
  is_editor: "'editor' in subject.properties.roles"
rules:
  - id: owners-edit
    effect: allow
    actions: ["read", "update"]
    resources: ["document"]
    condition: variables.is_owner
  - id: editors-read
    effect: allow
    actions: ["read"]
    condition: variables.is_editor
  - id: suspended
    effect: deny
    condition: has(subject.properties.suspended) && subject.properties.suspended == true
`

func compile(t *testing.T, src string) *Policy {
	t.Helper()
	c, err := NewCompiler(engine.DefaultLimits(), map[string]any{"admins": []any{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Compile("p.verdict.yaml", []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func input(subject string, props map[string]any, action, rtype, owner string) *engine.Input {
	return &engine.Input{
		Subject:  engine.Entity{Type: "user", ID: subject, Properties: props},
		Action:   engine.Action{Name: action},
		Resource: engine.Entity{Type: rtype, ID: "42", Properties: map[string]any{"owner": owner}},
		Now:      time.Now(),
	}
}

func TestEvaluate(t *testing.T) {
	p := compile(t, docsPolicy)
	editor := map[string]any{"roles": []any{"editor"}}
	cases := []struct {
		name   string
		in     *engine.Input
		effect engine.Effect
		rules  []string
	}{
		{"owner updates", input("alice", map[string]any{"roles": []any{}}, "update", "document", "alice"), engine.Allow, []string{"owners-edit"}},
		{"owner and editor read", input("alice", editor, "read", "document", "alice"), engine.Allow, []string{"owners-edit", "editors-read"}},
		{"non-owner update", input("bob", editor, "update", "document", "alice"), engine.NotApplicable, nil},
		{"other resource type", input("alice", map[string]any{"roles": []any{}}, "update", "folder", "alice"), engine.NotApplicable, nil},
		{"suspended owner", input("alice", map[string]any{"roles": []any{}, "suspended": true}, "update", "document", "alice"), engine.Deny, []string{"suspended"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := p.Evaluate(context.Background(), tc.in, false)
			if out.Err != nil {
				t.Fatalf("unexpected error: %v", out.Err)
			}
			if out.Effect != tc.effect {
				t.Fatalf("effect = %v, want %v", out.Effect, tc.effect)
			}
			if strings.Join(out.Rules, ",") != strings.Join(tc.rules, ",") {
				t.Fatalf("rules = %v, want %v", out.Rules, tc.rules)
			}
		})
	}
}

func TestCombining(t *testing.T) {
	const tmpl = `apiVersion: verdict.dev/v1
kind: Policy
name: c
combining: COMB
rules:
  - id: a-allow
    effect: allow
  - id: b-deny
    effect: deny
`
	for comb, want := range map[string]engine.Effect{
		"deny-overrides":   engine.Deny,
		"permit-overrides": engine.Allow,
		"first-applicable": engine.Allow,
	} {
		p := compile(t, strings.Replace(tmpl, "COMB", comb, 1))
		out := p.Evaluate(context.Background(), input("x", nil, "read", "doc", ""), true)
		if out.Err != nil || out.Effect != want {
			t.Errorf("%s: effect %v err %v, want %v", comb, out.Effect, out.Err, want)
		}
		if len(out.Trace) == 0 {
			t.Errorf("%s: explain produced no trace", comb)
		}
	}
}

func TestEvaluationErrorIsReported(t *testing.T) {
	p := compile(t, `apiVersion: verdict.dev/v1
kind: Policy
name: e
variables:
  bad: subject.id + 1
rules:
  - id: fine
    effect: allow
  - id: type-error
    effect: allow
    actions: ["read"]
    condition: subject.id + 1 == 2
  - id: via-variable
    effect: deny
    actions: ["write"]
    condition: variables.bad == 2
`)
	for action, rule := range map[string]string{"read": "type-error", "write": "via-variable"} {
		out := p.Evaluate(context.Background(), input("x", nil, action, "doc", ""), false)
		if out.Err == nil {
			t.Fatalf("%s: want an error for a type error, got effect %v", action, out.Effect)
		}
		if !strings.Contains(out.Err.Error(), rule) {
			t.Errorf("error %q does not name the rule %s", out.Err, rule)
		}
	}
}

// TestMissingAttributesDoNotApply: reading what the input does not have
// makes the rule not apply, directly or through a variable; the issue's own
// example (an unguarded suspended check) must still let the owner in.
func TestMissingAttributesDoNotApply(t *testing.T) {
	p := compile(t, `apiVersion: verdict.dev/v1
kind: Policy
name: documents
combining: deny-overrides
variables:
  is_owner: resource.properties.owner == subject.id
rules:
  - id: owners-edit
    effect: allow
    actions: ["read", "update"]
    resources: ["document"]
    condition: variables.is_owner
  - id: suspended
    effect: deny
    condition: subject.properties.suspended == true
  - id: first-role
    effect: allow
    actions: ["list"]
    condition: subject.properties.roles[0] == "admin"
`)
	cases := []struct {
		name   string
		in     *engine.Input
		effect engine.Effect
	}{
		{"owner without a suspended property", input("alice", nil, "update", "document", "alice"), engine.Allow},
		{"suspended owner", input("alice", map[string]any{"suspended": true}, "update", "document", "alice"), engine.Deny},
		{"no owner property", &engine.Input{Subject: engine.Entity{Type: "user", ID: "alice"}, Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "document", ID: "1"}}, engine.NotApplicable},
		{"empty role list", input("alice", map[string]any{"roles": []any{}}, "list", "document", "bob"), engine.NotApplicable},
	}
	for _, tc := range cases {
		out := p.Evaluate(context.Background(), tc.in, true)
		if out.Err != nil || out.Effect != tc.effect {
			t.Errorf("%s: effect %v err %v, want %v", tc.name, out.Effect, out.Err, tc.effect)
		}
		for _, tr := range out.Trace {
			if tr.Rule == "suspended" && tc.in.Subject.Properties == nil && !strings.Contains(tr.Error, "does not apply") {
				t.Errorf("%s: explain does not say why suspended did not apply: %+v", tc.name, tr)
			}
		}
	}
}

func TestCostLimit(t *testing.T) {
	l := engine.DefaultLimits()
	l.CostLimit = 100
	c, err := NewCompiler(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Compile("cost.verdict.yaml", []byte(`apiVersion: verdict.dev/v1
kind: Policy
name: cost
rules:
  - id: heavy
    effect: allow
    condition: lists.range(1000).map(i, lists.range(100).map(j, i * j)).size() > 0
`))
	if err != nil {
		t.Fatal(err)
	}
	out := p.Evaluate(context.Background(), input("x", nil, "read", "doc", ""), false)
	if !errors.Is(out.Err, engine.ErrCostLimit) {
		t.Fatalf("want ErrCostLimit, got %v (effect %v)", out.Err, out.Effect)
	}
}

func TestDeadline(t *testing.T) {
	p := compile(t, `apiVersion: verdict.dev/v1
kind: Policy
name: slow
rules:
  - id: slow
    effect: allow
    condition: lists.range(100).all(i, lists.range(100).all(j, i + j >= 0))
`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := p.Evaluate(ctx, input("x", nil, "read", "doc", ""), false)
	if !errors.Is(out.Err, engine.ErrTimeout) {
		t.Fatalf("want ErrTimeout on a done context, got %v (effect %v)", out.Err, out.Effect)
	}
}

func TestCompileErrorsAreLocated(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"syntax", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: r
    effect: allow
    condition: subject.id ==
`, "p.verdict.yaml:7:"},
		{"unknown variable", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: r
    effect: allow
    condition: variables.nope
`, "p.verdict.yaml:7:16: undeclared reference"},
		{"non-bool", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: r
    effect: allow
    condition: 1 + 2
`, "p.verdict.yaml:7:16: rule \"r\": condition must be a bool"},
		{"block scalar", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: r
    effect: allow
    condition: |
      subject.id == "a" &&
        nosuch.x
`, "p.verdict.yaml:9:9: undeclared reference to 'nosuch'"},
		{"unknown field", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rulez: []
`, `p.verdict.yaml:4:1: unknown key "rulez" in the policy (did you mean "rules"?)`},
		{"bad effect", `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: r
    effect: maybe
`, "p.verdict.yaml:5: rule \"r\": effect must be"},
		{"variable uses a later one", `apiVersion: verdict.dev/v1
kind: Policy
name: s
variables:
  a: variables.b
  b: "true"
rules:
  - id: r
    effect: allow
    condition: variables.a
`, "(variable b is defined below a; a variable may use only the variables above it)"},
	}
	c, err := NewCompiler(engine.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Compile("p.verdict.yaml", []byte(tc.src))
			var ce engine.CompileErrors
			if !errors.As(err, &ce) {
				t.Fatalf("want CompileErrors, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestTimeDependence(t *testing.T) {
	p := compile(t, docsPolicy)
	if p.TimeDependent() {
		t.Error("docs policy does not read now")
	}
	src := `apiVersion: verdict.dev/v1
kind: Policy
name: t
rules:
  - id: office-hours
    effect: allow
    condition: now.getHours() >= 8
`
	if !compile(t, src).TimeDependent() {
		t.Error("a policy reading now must be time dependent")
	}
	if compile(t, strings.Replace(src, "name: t", "name: t\ncacheTimeDependent: true", 1)).TimeDependent() {
		t.Error("cacheTimeDependent: true must allow caching")
	}
}

func TestDataAndToken(t *testing.T) {
	p := compile(t, `apiVersion: verdict.dev/v1
kind: Policy
name: d
rules:
  - id: admins
    effect: allow
    condition: subject.id in data.admins && token != null && token.scope == "x"
`)
	in := input("root", nil, "read", "doc", "")
	if out := p.Evaluate(context.Background(), in, false); out.Effect != engine.NotApplicable || out.Err != nil {
		t.Fatalf("no token: effect %v err %v", out.Effect, out.Err)
	}
	in.Token = map[string]any{"scope": "x"}
	if out := p.Evaluate(context.Background(), in, false); out.Effect != engine.Allow {
		t.Fatalf("with token: effect %v err %v", out.Effect, out.Err)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	p := compile(t, docsPolicy)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				owner := "alice"
				if (g+i)%2 == 0 {
					owner = "bob"
				}
				out := p.Evaluate(context.Background(), input("alice", map[string]any{"roles": []any{}}, "update", "document", owner), false)
				want := engine.NotApplicable
				if owner == "alice" {
					want = engine.Allow
				}
				if out.Effect != want {
					errs <- out.Effect.String()
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("wrong effect under concurrency: %s", e)
	}
}

func TestExpressionLimits(t *testing.T) {
	l := engine.DefaultLimits()
	l.MaxExpressionSize = 40
	l.MaxRecursionDepth = 8
	c, err := NewCompiler(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(cond string) []byte {
		return []byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: l\nrules:\n  - id: r\n    effect: allow\n    condition: '" + cond + "'\n")
	}
	if _, err := c.Compile("l.verdict.yaml", rule(`subject.id == "a"`)); err != nil {
		t.Fatalf("a short expression: %v", err)
	}
	_, err = c.Compile("l.verdict.yaml", rule(`subject.id == "`+strings.Repeat("a", 40)+`"`))
	if err == nil || !strings.Contains(err.Error(), "l.verdict.yaml:7") {
		t.Fatalf("an expression over the size limit: %v", err)
	}
	_, err = c.Compile("l.verdict.yaml", rule(strings.Repeat("(", 12)+"true"+strings.Repeat(")", 12)))
	if err == nil {
		t.Fatal("an expression nested past the recursion limit was accepted")
	}
}

func TestBrokenVariableIsReportedOnce(t *testing.T) {
	c, _ := NewCompiler(engine.DefaultLimits(), nil)
	_, err := c.Compile("v.verdict.yaml", []byte(`apiVersion: verdict.dev/v1
kind: Policy
name: v
variables:
  a: nosuch.x
rules:
  - id: r1
    effect: allow
    condition: variables.a == 1
  - id: r2
    effect: deny
    condition: variables.a == 2
`))
	var ce engine.CompileErrors
	if !errors.As(err, &ce) || len(ce) != 1 || ce[0].Line != 5 {
		t.Fatalf("want one error at line 5, got %v", err)
	}
}

// TestMisspeltKeysAreRejected: a misspelt condition must not leave a rule
// that matches every request.
func TestMisspeltKeysAreRejected(t *testing.T) {
	c, _ := NewCompiler(engine.DefaultLimits(), nil)
	for name, src := range map[string]string{
		"rule key":        "apiVersion: verdict.dev/v1\nkind: Policy\nname: m\nrules:\n  - id: r\n    effect: allow\n    conditon: subject.id == 'root'\n",
		"second document": "apiVersion: verdict.dev/v1\nkind: Policy\nname: m\nrules:\n  - id: r\n    effect: deny\n---\napiVersion: verdict.dev/v1\nkind: Policy\nname: n\nrules:\n  - id: r\n    effect: allow\n",
	} {
		_, err := c.Compile("m.verdict.yaml", []byte(src))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "m.verdict.yaml:7") {
			t.Errorf("%s: not located at line 7: %v", name, err)
		}
	}
}

func TestLaterVariableHintNeedsTheWholeName(t *testing.T) {
	c, _ := NewCompiler(engine.DefaultLimits(), nil)
	_, err := c.Compile("v.verdict.yaml", []byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: v\nvariables:\n  a: variables.bb\n  b: 'true'\nrules:\n  - id: r\n    effect: allow\n"))
	if err == nil || strings.Contains(err.Error(), "defined below") {
		t.Fatalf("a typo must not blame the later variable b: %v", err)
	}
}
