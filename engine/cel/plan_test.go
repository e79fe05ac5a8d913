package cel

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
	"testing"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// planCase is what a plan is checked against: subjects and actions to plan
// for, and resources whose decisions the plan must predict.
type planCase struct {
	subjects  []engine.Entity
	actions   []string
	types     []string
	resources map[string][]map[string]any // by type: the resource objects
}

// checkPlans plans every (subject, action, type) of c with p and checks, for
// every resource of the type, that the plan says what Evaluate decides:
// Allow.Eval where the effect is Allow, Deny.Eval where it is Deny (an
// error counts as Deny), neither where no rule applies. It returns how many
// plans were conditional.
func checkPlans(t *testing.T, p *Policy, c planCase) (conditional int) {
	t.Helper()
	ctx := context.Background()
	for _, sub := range c.subjects {
		for _, act := range c.actions {
			for _, typ := range c.types {
				in := &engine.Input{Subject: sub, Action: engine.Action{Name: act}, Resource: engine.Entity{Type: typ}}
				mp, err := p.Plan(ctx, in)
				if err != nil {
					t.Fatalf("plan %s %s %s: %v", sub.ID, act, typ, err)
				}
				if mp.Allow.Op != plan.OpTrue && mp.Allow.Op != plan.OpFalse {
					conditional++
				}
				for _, res := range c.resources[typ] {
					full := &engine.Input{Subject: sub, Action: engine.Action{Name: act},
						Resource: engine.Entity{Type: typ, ID: res["id"].(string), Properties: res["properties"].(map[string]any)}}
					out := p.Evaluate(ctx, full, false)
					want := out.Effect
					if out.Err != nil {
						want = engine.Deny
					}
					a, d := mp.Allow.Eval(res), mp.Deny.Eval(res)
					got := engine.NotApplicable
					switch {
					case a && d:
						t.Fatalf("%s %s on %v: the plan both allows and denies\nallow: %s\ndeny: %s", sub.ID, act, res, mp.Allow, mp.Deny)
					case a:
						got = engine.Allow
					case d:
						got = engine.Deny
					}
					if got != want {
						t.Fatalf("subject %v action %s resource %v: Evaluate %v (%v), plan %v\nallow: %s\ndeny: %s",
							sub, act, res, want, out.Err, got, mp.Allow, mp.Deny)
					}
				}
			}
		}
	}
	return conditional
}

// bundleCase reads the policy files, data and test cases of an example
// bundle and builds a planCase from its test inputs: their subjects and
// actions, and random resources of their types made from the attribute
// names and values the tests (and subjects) use.
func bundleCase(t *testing.T, dir string, rnd *rand.Rand) ([]*Policy, planCase) {
	t.Helper()
	var data map[string]any
	if raw, err := os.ReadFile(filepath.Join(dir, "data.json")); err == nil {
		if err := json.Unmarshal(raw, &data); err != nil {
			t.Fatal(err)
		}
		engine.NormalizeJSON(data)
	}
	c, err := NewCompiler(engine.DefaultLimits(), data)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.verdict.yaml"))
	var ps []*Policy
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Compile(f, src)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	var pc planCase
	keys := map[string]bool{}
	var pool []any
	seenSub := map[string]bool{}
	for _, raw := range testutil.TestInputs(t, dir) {
		in := engine.NormalizeJSON(raw).(map[string]any)
		sub, _ := in["subject"].(map[string]any)
		if sub != nil {
			e := entity(sub)
			if k := fmt.Sprint(sub); !seenSub[k] {
				seenSub[k] = true
				pc.subjects = append(pc.subjects, e)
				pool = append(pool, e.ID)
				for _, v := range e.Properties {
					pool = append(pool, v)
				}
			}
		}
		if a, ok := in["action"].(map[string]any); ok {
			if n, _ := a["name"].(string); n != "" && !slices.Contains(pc.actions, n) {
				pc.actions = append(pc.actions, n)
			}
		}
		if r, ok := in["resource"].(map[string]any); ok {
			if typ, _ := r["type"].(string); typ != "" && !slices.Contains(pc.types, typ) {
				pc.types = append(pc.types, typ)
			}
			if id, _ := r["id"].(string); id != "" {
				pool = append(pool, id)
			}
			props, _ := r["properties"].(map[string]any)
			for k, v := range props {
				keys[k] = true
				pool = append(pool, v)
			}
		}
	}
	pool = append(pool, "", "x", int64(1), int64(5), 2.5, true, false, []any{"a"}, map[string]any{"k": "v"})
	// Ids of the entities the data lists (the certification bundle's
	// records decide by id).
	ids := append([]any{"1", "2", "nope"}, pool...)
	pc.resources = map[string][]map[string]any{}
	for _, typ := range pc.types {
		for i := range 300 {
			props := map[string]any{}
			for k := range keys {
				if rnd.IntN(10) < 7 {
					props[k] = pool[rnd.IntN(len(pool))]
				}
			}
			id, ok := ids[rnd.IntN(len(ids))].(string)
			if !ok {
				id = fmt.Sprint(i)
			}
			pc.resources[typ] = append(pc.resources[typ], map[string]any{"type": typ, "id": id, "properties": props})
		}
	}
	return ps, pc
}

func entity(m map[string]any) engine.Entity {
	typ, _ := m["type"].(string)
	id, _ := m["id"].(string)
	props, _ := m["properties"].(map[string]any)
	return engine.Entity{Type: typ, ID: id, Properties: props}
}

// TestPlansOfTheExampleBundles: for every CEL example bundle, the plan of
// every subject and action of its tests predicts Evaluate on hundreds of
// random resources.
func TestPlansOfTheExampleBundles(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, dir := range []string{"quickstart", "rbac-cel", "authzen-todo-cel", "gateway-example", "signin-example"} {
		t.Run(dir, func(t *testing.T) {
			ps, pc := bundleCase(t, filepath.Join("..", "..", "policies", dir), rnd)
			if len(pc.subjects) == 0 || len(pc.actions) == 0 {
				t.Fatalf("no test inputs in %s", dir)
			}
			n := 0
			for _, p := range ps {
				n += checkPlans(t, p, pc)
			}
			t.Logf("%s: %d subjects, %d actions, %d types, %d conditional plans", dir, len(pc.subjects), len(pc.actions), len(pc.types), n)
		})
	}
}

// TestPlanOfALookupByID: the AuthZEN certification bundle finds a record's
// status by looking its id up in data (a filter over data by the unknown
// id): a plan names that rule and expression instead of answering.
func TestPlanOfALookupByID(t *testing.T) {
	ps, _ := bundleCase(t, filepath.Join("..", "..", "policies", "authzen-certification-cel"), rand.New(rand.NewPCG(5, 6)))
	_, err := ps[0].Plan(context.Background(), &engine.Input{Subject: engine.Entity{Type: "user", ID: "alice"},
		Action: engine.Action{Name: "write"}, Resource: engine.Entity{Type: "record"}})
	var ue *engine.UnplannableError
	if !errors.As(err, &ue) || ue.Rule != "archived-admins-only" || !strings.Contains(ue.Expression, "filter(r, r.id == resource.id)") {
		t.Fatalf("plan: %v", err)
	}
}

// TestPlanForms: each form a plan translates, under each combining
// algorithm, predicts Evaluate on random resources.
func TestPlanForms(t *testing.T) {
	rules := `
  - id: owner
    effect: allow
    condition: has(resource.properties.owner) && resource.properties.owner == subject.id
  - id: public
    effect: allow
    actions: [read]
    condition: resource.properties.public == true
  - id: small
    effect: allow
    condition: resource.properties.size < 10 && resource.properties.size >= 2.5
  - id: path
    effect: allow
    condition: resource.properties.path.startsWith("/pub/")
  - id: dept
    effect: allow
    condition: resource.properties.dept in subject.properties.depts
  - id: tagged
    effect: allow
    condition: subject.id in resource.properties.tags
  - id: typed
    effect: allow
    condition: "type(resource.properties.size) == int ? resource.properties.size > 100 : resource.properties.path == 'x'"
  - id: nested
    effect: allow
    condition: has(resource.properties.meta.level) && resource.properties.meta.level != 3
  - id: by-id
    effect: allow
    condition: resource.id == "special" || resource.properties["odd key"] == "yes"
  - id: flipped
    effect: allow
    actions: [purge]
    condition: 10 > resource.properties.size && 2 < resource.properties.size || 5 <= resource.properties.size && "/pub/" == resource.properties.path || 149 < resource.properties.size
  - id: not-small
    effect: deny
    actions: [read]
    condition: "!(resource.properties.size < 9) && !(resource.properties.size >= 150) && !(resource.properties.path > '/pub')"
  - id: locked
    effect: deny
    condition: "!(resource.properties.locked == false) && subject.id != 'root'"
  - id: not-mine
    effect: deny
    actions: [delete]
    condition: "!has(resource.properties.owner) || resource.properties.owner != subject.id"
  - id: subject-only
    effect: deny
    condition: subject.properties.banned == true
  - id: fails-for-subject
    effect: deny
    actions: [purge]
    condition: subject.properties.n + 1 > 0
`
	subjects := []engine.Entity{
		{Type: "user", ID: "alice", Properties: map[string]any{"depts": []any{"eng", "ops"}}},
		{Type: "user", ID: "bob", Properties: map[string]any{"banned": true}},
		{Type: "user", ID: "root", Properties: map[string]any{"n": "not a number"}},
		{Type: "user", ID: "carol"},
	}
	pool := []any{"alice", "bob", "root", "eng", "ops", "", "/pub/a", "/PUB/a", "/pub", "x", "special",
		int64(1), int64(2), int64(3), int64(9), int64(10), int64(150), 2.5, 2.4, 12.0, true, false,
		[]any{"alice", "z"}, []any{}, map[string]any{"level": int64(3)}, map[string]any{"level": int64(4)}, map[string]any{}}
	keys := []string{"owner", "public", "size", "path", "dept", "tags", "meta", "locked", "odd key"}
	rnd := rand.New(rand.NewPCG(3, 4))
	var resources []map[string]any
	for i := range 600 {
		props := map[string]any{}
		for _, k := range keys {
			if rnd.IntN(10) < 6 {
				props[k] = pool[rnd.IntN(len(pool))]
			}
		}
		id := fmt.Sprint(i)
		if i%50 == 0 {
			id = "special"
		}
		resources = append(resources, map[string]any{"type": "doc", "id": id, "properties": props})
	}
	pc := planCase{subjects: subjects, actions: []string{"read", "delete", "purge"}, types: []string{"doc"},
		resources: map[string][]map[string]any{"doc": resources}}
	for _, combining := range []string{DenyOverrides, PermitOverrides, FirstApplicable} {
		t.Run(combining, func(t *testing.T) {
			p := compile(t, "apiVersion: verdict.dev/v1\nkind: Policy\nname: forms\ncombining: "+combining+"\nrules:"+rules)
			if n := checkPlans(t, p, pc); n == 0 {
				t.Fatal("no plan was conditional")
			}
		})
	}
}

// TestPlanShape: a plan is the condition an application expects.
func TestPlanShape(t *testing.T) {
	p := compile(t, `apiVersion: verdict.dev/v1
kind: Policy
name: docs
variables:
  is_owner: has(resource.properties.owner) && resource.properties.owner == subject.id
rules:
  - id: owner
    effect: allow
    condition: variables.is_owner
  - id: archived
    effect: deny
    condition: resource.properties.archived == true
`)
	mp, err := p.Plan(context.Background(), &engine.Input{Subject: engine.Entity{Type: "user", ID: "alice"}, Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "doc"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mp.Allow.String(), `(properties.owner == "alice" && !(properties.archived == true))`; got != want {
		t.Errorf("allow = %s, want %s", got, want)
	}
	if got, want := mp.Deny.String(), `properties.archived == true`; got != want {
		t.Errorf("deny = %s, want %s", got, want)
	}
}

// TestUnplannable: what a plan cannot express is an error naming the rule
// and the expression, never a plan.
func TestUnplannable(t *testing.T) {
	for cond, says := range map[string]string{
		"resource.properties.a == resource.properties.b": "two values that depend on the resource",
		"size(resource.properties.tags) > 1":             "size(resource.properties.tags)",
		"resource.properties.name.lowerAscii() == 'x'":   "lowerAscii",
		"resource.properties.tags.exists(t, t == 'a')":   "exists",
		"resource.properties.n + 1 == 2":                 "resource.properties.n + 1",
	} {
		p := compile(t, "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\nrules:\n  - id: r1\n    effect: allow\n    condition: "+fmt.Sprintf("%q", cond)+"\n")
		_, err := p.Plan(context.Background(), &engine.Input{Subject: engine.Entity{Type: "user", ID: "a"}, Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "doc"}})
		var ue *engine.UnplannableError
		if !errors.As(err, &ue) || ue.Rule != "r1" || ue.Policy != "p" || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v", cond, err)
		}
	}
}
