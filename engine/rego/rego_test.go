package rego_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/rego"
)

func mod(path, src string) rego.Module { return rego.Module{Path: path, Source: []byte(src)} }

var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)

func input(subject string) *engine.Input {
	return &engine.Input{
		Subject:  engine.Entity{Type: "user", ID: subject, Properties: map[string]any{"level": int64(3), "score": 1.5}},
		Action:   engine.Action{Name: "read"},
		Resource: engine.Entity{Type: "doc", ID: "d1"},
		Now:      fixedNow,
	}
}

func mustCompile(t testing.TB, modules []rego.Module, opts rego.Options) *rego.Policy {
	t.Helper()
	p, err := rego.Compile(context.Background(), modules, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	const ep = "data.verdict.decision"
	tests := []struct {
		name      string
		src       string
		opts      rego.Options
		in        *engine.Input
		want      engine.Effect
		wantRules []string
		wantErr   error  // checked with errors.Is
		errText   string // checked with strings.Contains
	}{
		{
			name:      "boolean true allows",
			src:       "package verdict\ndecision if input.subject.id == \"alice\"\n",
			in:        input("alice"),
			want:      engine.Allow,
			wantRules: []string{ep},
		},
		{
			name:      "boolean false denies",
			src:       "package verdict\ndefault decision := false\ndecision if input.subject.id == \"alice\"\n",
			in:        input("bob"),
			want:      engine.Deny,
			wantRules: []string{ep},
		},
		{
			name:    "undefined",
			src:     "package verdict\ndecision if input.subject.id == \"alice\"\n",
			in:      input("bob"),
			wantErr: engine.ErrUndefined,
		},
		{
			name: "object with reasons allows",
			src: `package verdict
decision := {"decision": true, "reasons": ["owner", "admin"]}
`,
			in:        input("alice"),
			want:      engine.Allow,
			wantRules: []string{"owner", "admin"},
		},
		{
			name: "object with set of reasons denies",
			src: `package verdict
reasons contains "suspended" if input.subject.id == "bob"
decision := {"decision": count(reasons) == 0, "reasons": reasons}
`,
			in:        input("bob"),
			want:      engine.Deny,
			wantRules: []string{"suspended"},
		},
		{
			name:      "object without reasons",
			src:       "package verdict\ndecision := {\"decision\": false, \"reasons\": []}\n",
			in:        input("bob"),
			want:      engine.Deny,
			wantRules: []string{ep},
		},
		{
			name:    "object without decision",
			src:     "package verdict\ndecision := {\"reasons\": [\"x\"]}\n",
			in:      input("bob"),
			errText: `has no "decision" field`,
		},
		{
			name:    "object with non-boolean decision",
			src:     "package verdict\ndecision := {\"decision\": \"yes\"}\n",
			in:      input("bob"),
			errText: "decision must be a boolean",
		},
		{
			name:    "reasons not strings",
			src:     "package verdict\ndecision := {\"decision\": true, \"reasons\": [1]}\n",
			in:      input("bob"),
			errText: "reasons[0] must be a string",
		},
		{
			name:    "number",
			src:     "package verdict\ndecision := 1\n",
			in:      input("bob"),
			errText: "entrypoint must be a boolean or {decision, reasons}",
		},
		{
			name:    "string",
			src:     "package verdict\ndecision := \"allow\"\n",
			in:      input("bob"),
			errText: "entrypoint must be a boolean or {decision, reasons}",
		},
		{
			name:      "slash entrypoint",
			src:       "package a\nb if input.action.name == \"read\"\n",
			opts:      rego.Options{Entrypoint: "a/b"},
			in:        input("bob"),
			want:      engine.Allow,
			wantRules: []string{"data.a.b"},
		},
		{
			name:      "dotted entrypoint",
			src:       "package a\nb if input.action.name == \"read\"\n",
			opts:      rego.Options{Entrypoint: "data.a.b"},
			in:        input("bob"),
			want:      engine.Allow,
			wantRules: []string{"data.a.b"},
		},
		{
			name: "data lookup",
			src: `package verdict
decision if "admin" in data.roles[input.subject.id]
`,
			opts:      rego.Options{Data: map[string]any{"roles": map[string]any{"alice": []any{"admin"}, "bob": []any{"viewer"}}}},
			in:        input("alice"),
			want:      engine.Allow,
			wantRules: []string{ep},
		},
		{
			name: "data lookup misses",
			src: `package verdict
default decision := false
decision if "admin" in data.roles[input.subject.id]
`,
			opts:      rego.Options{Data: map[string]any{"roles": map[string]any{"alice": []any{"admin"}, "bob": []any{"viewer"}}}},
			in:        input("bob"),
			want:      engine.Deny,
			wantRules: []string{ep},
		},
		{
			name: "input document shape",
			src: `package verdict
decision if {
	input.subject == {"type": "user", "id": "carol", "properties": {"level": 3, "score": 1.5}}
	input.action == {"name": "read", "properties": {}}
	input.resource == {"type": "doc", "id": "d1", "properties": {}}
	input.context == {}
	input.token == null
	input.now == "2025-03-04T05:06:07.000000008Z"
	time.now_ns() == time.parse_rfc3339_ns(input.now)
}
`,
			in:        input("carol"),
			want:      engine.Allow,
			wantRules: []string{ep},
		},
		{
			name:      "token claims",
			src:       "package verdict\ndecision if input.token.sub == input.subject.id\n",
			in:        func() *engine.Input { in := input("dave"); in.Token = map[string]any{"sub": "dave"}; return in }(),
			want:      engine.Allow,
			wantRules: []string{ep},
		},
		{
			name:    "strict built-in errors",
			src:     "package verdict\ndecision if not to_number(input.subject.id) == 1\n",
			in:      input("bob"),
			errText: "to_number",
		},
		{
			name:    "conflict",
			src:     "package verdict\ndecision := true\ndecision := false if input.subject.id == \"bob\"\n",
			in:      input("bob"),
			errText: "conflict",
		},
		{
			name:    "nil input",
			src:     "package verdict\ndecision := true\n",
			errText: "nil input",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, []rego.Module{mod("policy.rego", tc.src)}, tc.opts)
			out := p.Evaluate(context.Background(), tc.in, false)
			if out.Policy != p.Name() {
				t.Errorf("Policy = %q, want %q", out.Policy, p.Name())
			}
			if tc.wantErr != nil || tc.errText != "" {
				if out.Err == nil {
					t.Fatalf("Err = nil, want an error (effect %v, rules %v)", out.Effect, out.Rules)
				}
				if tc.wantErr != nil && !errors.Is(out.Err, tc.wantErr) {
					t.Errorf("Err = %v, want %v", out.Err, tc.wantErr)
				}
				if !strings.Contains(out.Err.Error(), tc.errText) {
					t.Errorf("Err = %q, want it to contain %q", out.Err, tc.errText)
				}
				if !strings.HasPrefix(out.Err.Error(), p.Name()+": ") {
					t.Errorf("Err = %q, want it prefixed with the policy name", out.Err)
				}
				return
			}
			if out.Err != nil {
				t.Fatalf("Err = %v", out.Err)
			}
			if out.Effect != tc.want || !slices.Equal(out.Rules, tc.wantRules) {
				t.Errorf("got %v %v, want %v %v", out.Effect, out.Rules, tc.want, tc.wantRules)
			}
		})
	}
}

func TestNameAndEntrypoint(t *testing.T) {
	tests := []struct{ entrypoint, pkg, rule, want string }{
		{"", "verdict", "decision", "data.verdict.decision"},
		{"verdict/decision", "verdict", "decision", "data.verdict.decision"},
		{"/authz/allow/", "authz", "allow", "data.authz.allow"},
		{"data.authz.allow", "authz", "allow", "data.authz.allow"},
	}
	for _, tc := range tests {
		t.Run(tc.entrypoint, func(t *testing.T) {
			src := fmt.Sprintf("package %s\n%s := true\n", tc.pkg, tc.rule)
			p := mustCompile(t, []rego.Module{mod("p.rego", src)}, rego.Options{Entrypoint: tc.entrypoint})
			if p.Entrypoint() != tc.want || p.Name() != "rego:"+tc.want {
				t.Errorf("Entrypoint() = %q, Name() = %q, want %q", p.Entrypoint(), p.Name(), tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		modules []rego.Module
		opts    rego.Options
		want    []engine.CompileError // Message is matched as a substring
	}{
		{
			name: "syntax error",
			modules: []rego.Module{mod("bad.rego", `package verdict

decision if input.x = = 1
`)},
			want: []engine.CompileError{{File: "bad.rego", Line: 3, Message: "rego_parse_error"}},
		},
		{
			name: "v0 syntax rejected",
			modules: []rego.Module{mod("v0.rego", `package verdict

decision { true }
`)},
			want: []engine.CompileError{{File: "v0.rego", Line: 3, Message: "rego_parse_error"}},
		},
		{
			name: "errors of every module",
			modules: []rego.Module{
				mod("a.rego", "package verdict\n\ndecision if input.x = = 1\n"),
				mod("ok.rego", "package verdict\nother := true\n"),
				mod("b.rego", "package verdict\nx := 1\n\n\nfoo if {\n"),
			},
			want: []engine.CompileError{
				{File: "a.rego", Line: 3, Message: "rego_parse_error"},
				{File: "b.rego", Message: "rego_parse_error"},
			},
		},
		{
			name: "http.send rejected",
			modules: []rego.Module{mod("net.rego", `package verdict

decision if {
	resp := http.send({"method": "GET", "url": "http://example.com"})
	resp.status_code == 200
}
`)},
			want: []engine.CompileError{{File: "net.rego", Line: 4, Col: 10, Message: "undefined function http.send"}},
		},
		{
			name: "net.lookup_ip_addr and opa.runtime rejected",
			modules: []rego.Module{mod("host.rego", `package verdict

decision if count(net.lookup_ip_addr("example.com")) > 0
env := opa.runtime().env
`)},
			want: []engine.CompileError{
				{File: "host.rego", Line: 3, Message: "undefined function net.lookup_ip_addr"},
				{File: "host.rego", Line: 4, Message: "undefined function opa.runtime"},
			},
		},
		{
			name: "type error",
			modules: []rego.Module{mod("type.rego", `package verdict

decision if {
	count(1) > 0
}
`)},
			want: []engine.CompileError{{File: "type.rego", Line: 4, Message: "rego_type_error"}},
		},
		{
			name:    "missing entrypoint",
			modules: []rego.Module{mod("p.rego", "package verdict\nallow := true\n")},
			want:    []engine.CompileError{{Message: "entrypoint data.verdict.decision is not defined by any module"}},
		},
		{
			name:    "missing custom entrypoint",
			modules: []rego.Module{mod("p.rego", "package verdict\ndecision := true\n")},
			opts:    rego.Options{Entrypoint: "authz/allow"},
			want:    []engine.CompileError{{Message: "entrypoint data.authz.allow is not defined by any module"}},
		},
		{
			name:    "no modules",
			modules: nil,
			want:    []engine.CompileError{{Message: "entrypoint data.verdict.decision is not defined by any module"}},
		},
		{
			name:    "function entrypoint",
			modules: []rego.Module{mod("p.rego", "package verdict\ndecision(x) := x\n")},
			want:    []engine.CompileError{{Message: "is a function"}},
		},
		{
			name:    "invalid entrypoint",
			modules: []rego.Module{mod("p.rego", "package verdict\ndecision := true\n")},
			opts:    rego.Options{Entrypoint: "verdict//decision"},
			want:    []engine.CompileError{{Message: "invalid entrypoint"}},
		},
		{
			name: "duplicate module path",
			modules: []rego.Module{
				mod("p.rego", "package verdict\ndecision := true\n"),
				mod("p.rego", "package verdict\nother := true\n"),
			},
			want: []engine.CompileError{{File: "p.rego", Message: "duplicate module path"}},
		},
		{
			name:    "rule conflicts with data",
			modules: []rego.Module{mod("p.rego", "package verdict\ndecision := true\n")},
			opts:    rego.Options{Data: map[string]any{"verdict": map[string]any{"decision": false}}},
			want:    []engine.CompileError{{File: "p.rego", Line: 2, Message: "conflict"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := rego.Compile(context.Background(), tc.modules, tc.opts)
			if p != nil {
				t.Error("Compile returned a policy along with an error")
			}
			var ces engine.CompileErrors
			if !errors.As(err, &ces) {
				t.Fatalf("Compile error = %v (%T), want engine.CompileErrors", err, err)
			}
			if len(ces) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ces), len(tc.want), ces)
			}
			t.Logf("%v", ces)
			for i, w := range tc.want {
				g := ces[i]
				if g.File != w.File || (w.Line != 0 && g.Line != w.Line) || (w.Col != 0 && g.Col != w.Col) ||
					!strings.Contains(g.Message, w.Message) {
					t.Errorf("error %d = %+v, want %+v", i, g, w)
				}
				if strings.HasPrefix(g.Message, "rego_") && g.Line == 0 {
					t.Errorf("error %d = %+v has no line", i, g)
				}
				if strings.HasPrefix(g.Message, g.File+":") && g.File != "" {
					t.Errorf("error %d message %q repeats its location", i, g.Message)
				}
			}
		})
	}
}

func TestCompileInvalidData(t *testing.T) {
	_, err := rego.Compile(context.Background(),
		[]rego.Module{mod("p.rego", "package verdict\ndecision := true\n")},
		rego.Options{Data: map[string]any{"bad": make(chan int)}})
	if err == nil {
		t.Fatal("Compile accepted data that is not JSON")
	}
}

func TestCompileCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := rego.Compile(ctx, []rego.Module{mod("p.rego", "package verdict\ndecision := true\n")}, rego.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Compile error = %v, want context.Canceled", err)
	}
}

func TestDataIsCopied(t *testing.T) {
	data := map[string]any{"allowed": []any{"alice"}}
	p := mustCompile(t, []rego.Module{mod("p.rego", "package verdict\ndecision if input.subject.id in data.allowed\n")},
		rego.Options{Data: data})
	data["allowed"] = []any{"bob"}
	if out := p.Evaluate(context.Background(), input("alice"), false); out.Err != nil || out.Effect != engine.Allow {
		t.Fatalf("got %v %v, want allow: mutating Options.Data after Compile changed the policy", out.Effect, out.Err)
	}
}

// slowPolicy iterates a billion times without building anything, so only
// cancellation can stop it.
const slowPolicy = `package verdict

decision if {
	xs := [i | some i in numbers.range(1, 1000); some j in numbers.range(1, 1000); some k in numbers.range(1, 1000); i + j + k < 0]
	count(xs) == 0
}
`

func TestTimeout(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("slow.rego", slowPolicy)},
		rego.Options{Limits: engine.Limits{Timeout: time.Millisecond}})
	out := p.Evaluate(context.Background(), input("alice"), true)
	if !errors.Is(out.Err, engine.ErrTimeout) {
		t.Fatalf("Err = %v, want ErrTimeout", out.Err)
	}
	if engine.ClassifyErr(out.Err) != engine.ReasonTimeout {
		t.Errorf("ClassifyErr = %q, want %q", engine.ClassifyErr(out.Err), engine.ReasonTimeout)
	}
	if len(out.Trace) != 1 || out.Trace[0].Error == "" || out.Trace[0].Matched {
		t.Errorf("Trace = %+v, want one unmatched entry with the error", out.Trace)
	}
}

func TestContextDeadline(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("slow.rego", slowPolicy)}, rego.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if out := p.Evaluate(ctx, input("alice"), false); !errors.Is(out.Err, engine.ErrTimeout) {
		t.Fatalf("Err = %v, want ErrTimeout", out.Err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if out := p.Evaluate(ctx, input("alice"), false); !errors.Is(out.Err, engine.ErrTimeout) || !errors.Is(out.Err, context.Canceled) {
		t.Fatalf("Err = %v, want ErrTimeout wrapping context.Canceled", out.Err)
	}
}

func TestTimeDependent(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want bool
	}{
		{"input only", `package verdict
decision if {
	input.subject.id == "alice"
	some r in data.roles[input.subject.id]
	r == input.action.name
}`, false},
		{"input.now", `package verdict
decision if time.parse_rfc3339_ns(input.now) > 0`, true},
		{"input.now in a ref operand", `package verdict
decision if data.windows[input.now]`, true},
		{"imported input.now", `package verdict
import input.now as t
decision if t > "2024"`, true},
		{"time.now_ns", `package verdict
decision if time.now_ns() > 0`, true},
		{"time.now_ns in a function", `package verdict
late(x) if time.now_ns() > x
decision if late(1)`, true},
		{"whole input", `package verdict
decision if count(input) > 0`, true},
		{"jwt verification reads the clock", `package verdict
decision if {
	[ok, _, _] := io.jwt.decode_verify(input.token.raw, {"secret": "s"})
	ok
}`, true},
		{"other time built-ins", `package verdict
decision if time.add_date(0, 1, 0, 0) > 0`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, []rego.Module{mod("p.rego", tc.src)}, rego.Options{})
			if got := p.TimeDependent(); got != tc.want {
				t.Errorf("TimeDependent() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("p.rego", `package verdict
decision := {"decision": false, "reasons": ["suspended", "outside-hours"]}
`)}, rego.Options{})
	out := p.Evaluate(context.Background(), input("alice"), true)
	want := []engine.RuleTrace{
		{Policy: p.Name(), Rule: "suspended", Effect: "deny", Matched: true},
		{Policy: p.Name(), Rule: "outside-hours", Effect: "deny", Matched: true},
	}
	if out.Err != nil || !slices.Equal(out.Trace, want) {
		t.Fatalf("Trace = %+v, Err = %v, want %+v", out.Trace, out.Err, want)
	}
	if out = p.Evaluate(context.Background(), input("alice"), false); out.Trace != nil {
		t.Errorf("Trace = %+v without explain", out.Trace)
	}
}

const rbacPolicy = `package verdict

default decision := false

decision if {
	some role in data.bindings[input.subject.id]
	some perm in data.roles[role]
	perm.action == input.action.name
	perm.type == input.resource.type
}
`

var rbacData = map[string]any{
	"bindings": map[string]any{
		"alice": []any{"editor"},
		"bob":   []any{"viewer"},
	},
	"roles": map[string]any{
		"editor": []any{
			map[string]any{"action": "read", "type": "doc"},
			map[string]any{"action": "write", "type": "doc"},
		},
		"viewer": []any{map[string]any{"action": "read", "type": "doc"}},
	},
}

func TestConcurrentEvaluate(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("rbac.rego", rbacPolicy)}, rego.Options{Data: rbacData})
	cases := []struct {
		subject, action string
		want            engine.Effect
	}{
		{"alice", "write", engine.Allow},
		{"bob", "read", engine.Allow},
		{"bob", "write", engine.Deny},
		{"mallory", "read", engine.Deny},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			for i := range 100 {
				c := cases[(g+i)%len(cases)]
				in := input(c.subject)
				in.Action.Name = c.action
				out := p.Evaluate(context.Background(), in, i%2 == 0)
				if out.Err != nil || out.Effect != c.want {
					errs <- fmt.Errorf("%s %s: got %v %v, want %v", c.subject, c.action, out.Effect, out.Err, c.want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustCompile(b, []rego.Module{mod("rbac.rego", rbacPolicy)}, rego.Options{Data: rbacData, Limits: engine.DefaultLimits()})
	in := input("alice")
	in.Action.Name = "write"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := p.Evaluate(ctx, in, false); out.Err != nil || out.Effect != engine.Allow {
			b.Fatalf("got %v %v", out.Effect, out.Err)
		}
	}
}
