package rego_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
	"github.com/verdictpdp/verdict/engine/rego"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// planCase is what plans are checked against: the requests to plan (a
// subject, an action and a context; the resource type comes from types)
// and the resources whose decisions the plans must predict.
type planCase struct {
	requests  []engine.Input
	types     []string
	resources map[string][]map[string]any // by type: resource objects
}

// checkPlans plans every request of c for every type with p and checks,
// for every resource of the type, that the plan says what Evaluate
// decides: Allow.Eval where the effect is Allow, Deny.Eval where it is Deny
// (an error counts as Deny), and never both. It returns how many plans were
// conditional.
func checkPlans(t *testing.T, p *rego.Policy, c planCase) (conditional int) {
	t.Helper()
	ctx := context.Background()
	for _, req := range c.requests {
		for _, typ := range c.types {
			in := req
			in.Resource = engine.Entity{Type: typ}
			in.Now = fixedNow
			mp, err := p.Plan(ctx, &in)
			if err != nil {
				t.Fatalf("plan %s %s %s: %v", req.Subject.ID, req.Action.Name, typ, err)
			}
			for _, n := range []*plan.Node{mp.Allow, mp.Deny} {
				if err := n.Validate(); err != nil {
					t.Fatalf("plan %s %s %s: invalid condition %s: %v", req.Subject.ID, req.Action.Name, typ, n, err)
				}
			}
			if mp.Allow.Op != plan.OpTrue && mp.Allow.Op != plan.OpFalse {
				conditional++
			}
			for _, res := range c.resources[typ] {
				full := in
				full.Resource = engine.Entity{Type: typ, ID: res["id"].(string), Properties: res["properties"].(map[string]any)}
				out := p.Evaluate(ctx, &full, false)
				want := out.Effect
				if out.Err != nil {
					want = engine.Deny
				}
				a, d := mp.Allow.Eval(res), mp.Deny.Eval(res)
				got := engine.NotApplicable
				switch {
				case a && d:
					t.Fatalf("%s %s on %v: the plan both allows and denies\nallow: %s\ndeny: %s", req.Subject.ID, req.Action.Name, res, mp.Allow, mp.Deny)
				case a:
					got = engine.Allow
				case d:
					got = engine.Deny
				}
				if got != want {
					t.Fatalf("subject %v action %v resource %v: Evaluate %v (%v), plan %v\nallow: %s\ndeny: %s",
						req.Subject, req.Action, res, want, out.Err, got, mp.Allow, mp.Deny)
				}
			}
		}
	}
	return conditional
}

// randomResources makes n resources of each type: each key of keys
// present with a value of pool seven times in ten, ids from ids.
func randomResources(rnd *rand.Rand, types, keys []string, pool, ids []any, n int) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, typ := range types {
		for i := range n {
			props := map[string]any{}
			for _, k := range keys {
				if rnd.IntN(10) < 7 {
					props[k] = pool[rnd.IntN(len(pool))]
				}
			}
			id, ok := ids[rnd.IntN(len(ids))].(string)
			if !ok || id == "" {
				id = fmt.Sprint(i)
			}
			out[typ] = append(out[typ], map[string]any{"type": typ, "id": id, "properties": props})
		}
	}
	return out
}

// genericValues are values of every JSON type but null (a plan reads a null
// attribute as an absent one; see plan.go).
var genericValues = []any{"", "x", int64(0), int64(1), int64(3), int64(5), 2.5, true, false,
	[]any{"a"}, []any{}, map[string]any{"k": "v"}, map[string]any{}}

// bundleCase compiles the Rego files and data of an example bundle and
// builds a planCase from its test inputs: their requests (and every
// subject with every action name), and random resources of their types
// made from the attribute names and values the tests (and subjects) use.
func bundleCase(t *testing.T, dir string, rnd *rand.Rand) (*rego.Policy, planCase) {
	t.Helper()
	var data map[string]any
	if raw, err := os.ReadFile(filepath.Join(dir, "data.json")); err == nil {
		data = jsonish(t, raw).(map[string]any)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rego"))
	var mods []rego.Module
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, mod(filepath.Base(f), string(src)))
	}
	p := mustCompile(t, mods, rego.Options{Data: data})

	var pc planCase
	seen := map[string]bool{}
	var subjects []engine.Entity
	var actions []string
	keys := []string{"owner", "status", "ownerID", "department", "sensitivity"}
	pool := slices.Clone(genericValues)
	ids := []any{"1", "nope"}
	for _, raw := range testutil.TestInputs(t, dir) {
		in, err := engine.ParseInput(engine.NormalizeJSON(raw).(map[string]any), "")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range in.Resource.Properties {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			pool = append(pool, v)
		}
		ids = append(ids, in.Resource.ID)
		if !slices.Contains(pc.types, in.Resource.Type) {
			pc.types = append(pc.types, in.Resource.Type)
		}
		if !slices.Contains(actions, in.Action.Name) {
			actions = append(actions, in.Action.Name)
		}
		req := engine.Input{Subject: in.Subject, Action: in.Action, Context: in.Context, Token: in.Token}
		if k := fmt.Sprint(req.Subject, req.Action, req.Context, req.Token); !seen[k] {
			seen[k] = true
			pc.requests = append(pc.requests, req)
		}
		if k := fmt.Sprint(in.Subject); !seen[k] {
			seen[k] = true
			subjects = append(subjects, in.Subject)
			pool = append(pool, in.Subject.ID)
			ids = append(ids, in.Subject.ID)
			for _, v := range in.Subject.Properties {
				pool = append(pool, v)
			}
		}
	}
	for _, s := range subjects {
		for _, a := range actions {
			pc.requests = append(pc.requests, engine.Input{Subject: s, Action: engine.Action{Name: a}})
		}
	}
	pc.types = append(pc.types, "other")
	pc.resources = randomResources(rnd, pc.types, keys, pool, ids, 200)
	return p, pc
}

// jsonish decodes raw as a request body is decoded.
func jsonish(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return engine.NormalizeJSON(out)
}

// TestPlansOfTheExampleBundles: for every Rego example bundle, the plan of
// every request of its tests predicts Evaluate on hundreds of random
// resources of every type.
func TestPlansOfTheExampleBundles(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, dir := range []string{"rbac-rego", "authzen-todo-rego", "authzen-certification-rego"} {
		t.Run(dir, func(t *testing.T) {
			p, pc := bundleCase(t, filepath.Join("..", "..", "policies", dir), rnd)
			if len(pc.requests) == 0 {
				t.Fatalf("no test inputs in %s", dir)
			}
			n := checkPlans(t, p, pc)
			if n == 0 {
				t.Errorf("%s: no plan was conditional", dir)
			}
			t.Logf("%s: %d requests, %d types, %d conditional plans", dir, len(pc.requests), len(pc.types), n)
		})
	}
}

// planOf plans src for subject alice reading a doc.
func planOf(t *testing.T, src string, opts rego.Options) (engine.ModulePlan, error) {
	t.Helper()
	p := mustCompile(t, []rego.Module{mod("p.rego", src)}, opts)
	return p.Plan(context.Background(), &engine.Input{
		Subject: engine.Entity{Type: "user", ID: "alice", Properties: map[string]any{"depts": []any{"eng", "ops"}, "level": int64(3)}},
		Action:  engine.Action{Name: "read"}, Resource: engine.Entity{Type: "doc"}, Now: fixedNow})
}

// TestPlanShape: a plan is the condition an application expects.
func TestPlanShape(t *testing.T) {
	for _, tc := range []struct{ src, allow string }{
		{`package verdict
default decision := false
decision if input.resource.properties.owner == input.subject.id
decision if input.resource.properties.public == true
`, `(properties.owner == "alice" || properties.public == true)`},
		{`package verdict
decision := {"decision": false, "reasons": sort(denies)} if {
	count(denies) > 0
} else := {"decision": true, "reasons": sort(allows)} if {
	count(allows) > 0
} else := {"decision": false, "reasons": ["none"]}
allows contains "dept" if input.resource.properties.dept in input.subject.properties.depts
denies contains "archived" if input.resource.properties.archived == true
`, `(!(properties.archived == true) && properties.dept in ["eng","ops"])`},
		{`package verdict
decision if input.resource.properties.level >= 2
`, `(properties.level >= 2 || type(properties.level) == string || type(properties.level) == list || type(properties.level) == map)`},
		{`package verdict
decision if input.action.name == "write"
`, `false`},
	} {
		mp, err := planOf(t, tc.src, rego.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := mp.Allow.String(); got != tc.allow {
			t.Errorf("allow = %s, want %s\n%s", got, tc.allow, tc.src)
		}
		if got, want := mp.Deny.String(), plan.Not(mp.Allow).String(); got != want {
			t.Errorf("deny = %s, want %s", got, want)
		}
	}
}

// TestPlanOfAnUndefinedDecision: an entrypoint that is undefined whatever
// the resource denies every resource.
func TestPlanOfAnUndefinedDecision(t *testing.T) {
	mp, err := planOf(t, "package verdict\ndecision if input.subject.id == \"bob\"\n", rego.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mp.Allow.Op != plan.OpFalse || mp.Deny.Op != plan.OpTrue {
		t.Fatalf("allow %s deny %s", mp.Allow, mp.Deny)
	}
}

// TestUnplannable: what a plan cannot express exactly is an error naming
// the rule and the expression, never a plan.
func TestUnplannable(t *testing.T) {
	for _, tc := range []struct{ body, rule, expr, says string }{
		{"input.resource.properties.a == input.resource.properties.b", "data.verdict.allow",
			"input.resource.properties.a == input.resource.properties.b", "two values that depend on the resource"},
		{`lower(input.resource.properties.x) == "a"`, "data.verdict.allow", `lower(input.resource.properties.x)`, "calls lower"},
		{"input.resource.properties.n + 1 == 2", "data.verdict.allow", "input.resource.properties.n + 1", "calls plus"},
		{"count(input.resource.properties.tags) > 1", "data.verdict.allow", "count(input.resource.properties.tags)", "calls count"},
		{`regex.match("^a", input.resource.properties.x)`, "data.verdict.allow", `regex.match("^a", input.resource.properties.x)`, "regex.match"},
		{`input.resource.properties.tags[0] == "a"`, "data.verdict.allow", `input.resource.properties.tags[0]`, "by a number"},
		{`every t in input.resource.properties.tags { t == "a" }`, "data.verdict.allow", "every", ""},
		{`startswith(input.resource.properties.path, "/pub")`, "data.verdict.allow", `startswith(input.resource.properties.path, "/pub")`, "is_string(input.resource.properties.path)"},
		{`"x" in input.resource.properties.tags`, "data.verdict.allow", `"x" in input.resource.properties.tags`, "is_array(input.resource.properties.tags)"},
		{`some t in input.resource.properties.tags
	t == "a"`, "data.verdict.allow", "", "is_array(input.resource.properties.tags)"},
		{`some t in input.resource.properties.tags
	startswith(t, "a")`, "data.verdict.allow", "", "iterates"},
		{`is_array(input.resource.properties.tags)
	some t in input.resource.properties.tags
	t == "a"
	t != "b"`, "data.verdict.allow", "", "iterates"},
		{`input.resource.properties.x == null`, "data.verdict.allow", "input.resource.properties.x == null", "null"},
		{`input.resource.properties.x == [1]`, "data.verdict.allow", "input.resource.properties.x == [1]", "[1]"},
		{`object.get(input.resource.properties, "x", 0) == 1`, "data.verdict.allow", `object.get(input.resource.properties, "x", 0)`, "object.get"},
	} {
		src := "package verdict\ndefault decision := false\ndecision if allow\nallow if {\n\t" + tc.body + "\n}\n"
		_, err := planOf(t, src, rego.Options{})
		var ue *engine.UnplannableError
		if !errors.As(err, &ue) || ue.Rule != tc.rule || !strings.Contains(ue.Expression, tc.expr) ||
			ue.Policy != "rego:data.verdict.decision" || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", tc.body, err)
			if ue != nil {
				t.Logf("rule %q expression %q", ue.Rule, ue.Expression)
			}
		}
	}
}

// TestUnplannableConflict: a complete rule that may take two values for
// one resource fails the decision (a conflict) where the plan cannot say.
func TestUnplannableConflict(t *testing.T) {
	_, err := planOf(t, `package verdict
decision := true if input.resource.properties.a == 1
decision := false if input.resource.properties.b == 1
`, rego.Options{})
	var ue *engine.UnplannableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "conflict") {
		t.Fatalf("plan: %v", err)
	}
	// Two values that exclude each other are no conflict.
	if _, err := planOf(t, `package verdict
decision := true if input.resource.properties.a == 1
decision := false if input.resource.properties.a == 2
`, rego.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestPlanOfAFailingEvaluation: an evaluation that fails over known values
// cannot be planned (whether it fails for every resource is not known), and
// the error names the rule and the expression.
func TestPlanOfAFailingEvaluation(t *testing.T) {
	_, err := planOf(t, `package verdict
decision if {
	input.resource.properties.a == 1
	to_number(input.subject.id) > 0
}
`, rego.Options{})
	var ue *engine.UnplannableError
	if !errors.As(err, &ue) || ue.Rule != "data.verdict.decision" || !strings.Contains(ue.Expression, "to_number(input.subject.id)") {
		t.Fatalf("plan: %v", err)
	}
}

// TestPlanEntrypointAndRegoV0: another entrypoint, a Rego v0 module with
// else chains in a function, plan as they evaluate.
func TestPlanEntrypointAndRegoV0(t *testing.T) {
	src := `package app.authz

allow {
	grade(input.resource.properties.size) == "small"
} else = true {
	input.resource.properties.public == true
}

grade(n) = "small" {
	n < 10
} else = "big" {
	n >= 10
} else = "other"
`
	p := mustCompile(t, []rego.Module{mod("v0.rego", src)}, rego.Options{Entrypoint: "app/authz/allow", V0: true})
	pool := append([]any{int64(2), int64(10), int64(12), 9.5}, genericValues...)
	rnd := rand.New(rand.NewPCG(7, 8))
	pc := planCase{
		requests:  []engine.Input{{Subject: engine.Entity{Type: "user", ID: "alice"}, Action: engine.Action{Name: "read"}}},
		types:     []string{"doc"},
		resources: randomResources(rnd, []string{"doc"}, []string{"size", "public"}, pool, []any{"1"}, 300),
	}
	if n := checkPlans(t, p, pc); n == 0 {
		t.Fatal("no plan was conditional")
	}
}

// TestPlanCancelled: a plan with a cancelled context reports ErrTimeout.
func TestPlanCancelled(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("p.rego", "package verdict\ndecision if input.resource.properties.a == 1\n")}, rego.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Plan(ctx, &engine.Input{Subject: engine.Entity{Type: "user", ID: "a"}, Resource: engine.Entity{Type: "doc"}})
	if !errors.Is(err, engine.ErrTimeout) {
		t.Fatalf("plan: %v", err)
	}
}

// TestConcurrentPlan: plans of one policy may run at once (and the first
// one prepares the partial query).
func TestConcurrentPlan(t *testing.T) {
	p := mustCompile(t, []rego.Module{mod("p.rego", formPolicies["sets"])}, rego.Options{})
	want := ""
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	got := make([]string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mp, err := p.Plan(context.Background(), &engine.Input{Subject: engine.Entity{Type: "user", ID: "alice"},
				Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "doc"}, Now: fixedNow})
			if err != nil {
				errs <- err
				return
			}
			got[i] = mp.Allow.String()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, g := range got {
		if i == 0 {
			want = g
		}
		if g != want {
			t.Fatalf("plan %d = %s, want %s", i, g, want)
		}
	}
}
