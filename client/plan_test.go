package client_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/engine/plan"
)

// doc and docProps are an application's own resource type, shaped as the
// resource object.
type doc struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Properties docProps `json:"properties"`
}

type docProps struct {
	Owner  string   `json:"owner,omitempty"`
	Level  int      `json:"level"`
	Score  float64  `json:"score"`
	Public *bool    `json:"public,omitempty"`
	Tags   []string `json:"tags,omitempty"`
}

func TestPlanPredicate(t *testing.T) {
	alice := map[string]any{"type": "document", "id": "1", "properties": map[string]any{"owner": "alice"}}
	bob := map[string]any{"type": "document", "id": "2", "properties": map[string]any{"owner": "bob"}}
	none := map[string]any{"type": "document", "id": "3"}
	ownerIsAlice := plan.Compare(plan.OpEq, pOwner, "alice")
	cases := []struct {
		name string
		p    client.Plan
		want [3]bool // alice, bob, none
	}{
		{"always_allowed", client.Plan{Kind: plan.AlwaysAllowed}, [3]bool{true, true, true}},
		{"always_denied", client.Plan{Kind: plan.AlwaysDenied}, [3]bool{}},
		{"conditional", conditional(ownerIsAlice), [3]bool{true, false, false}},
		{"ne: absent is false", conditional(plan.Compare(plan.OpNe, pOwner, "alice")), [3]bool{false, true, false}},
		{"not: classical", conditional(plan.Not(ownerIsAlice)), [3]bool{false, true, true}},
		// invalid plans deny everything
		{"unknown kind", client.Plan{Kind: "maybe"}, [3]bool{}},
		{"no condition", client.Plan{Kind: plan.Conditional}, [3]bool{}},
		{"invalid condition", conditional(&plan.Node{Op: plan.OpOr, Args: []*plan.Node{plan.True(), {Op: "xor"}}}), [3]bool{}},
	}
	for _, tc := range cases {
		pred := client.PlanPredicate(tc.p)
		for i, r := range []map[string]any{alice, bob, none} {
			if got := pred(r); got != tc.want[i] {
				t.Errorf("%s, resource %d: %v, want %v", tc.name, i, got, tc.want[i])
			}
		}
		if pred(nil) != tc.want[2] { // as the resource without attributes
			t.Errorf("%s: a nil resource", tc.name)
		}
	}
}

func TestPlanMatch(t *testing.T) {
	yes := true
	d := doc{Type: "document", ID: "42", Properties: docProps{Owner: "alice", Level: 3, Score: 2, Public: &yes, Tags: []string{"red"}}}
	typeIs := func(path []string, ty string) *plan.Node { return &plan.Node{Op: plan.OpType, Path: path, Value: ty} }
	cases := []struct {
		name string
		c    *plan.Node
		res  any
		want bool
	}{
		{"struct", plan.Compare(plan.OpEq, pOwner, "alice"), d, true},
		{"pointer to struct", plan.Compare(plan.OpEq, []string{"id"}, "42"), &d, true},
		{"Resource", plan.Compare(plan.OpEq, pOwner, "alice"), client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "alice"}}, true},
		{"map", plan.Compare(plan.OpGt, pLevel, 2), map[string]any{"properties": map[string]any{"level": 3}}, true},
		{"list", plan.Compare(plan.OpContains, pTags, "red"), d, true},
		{"bool", plan.Compare(plan.OpEq, pPublic, true), d, true},
		{"omitempty is absent", plan.Has(pTags), doc{}, false},
		{"nil pointer is absent", plan.Compare(plan.OpNe, pPublic, false), doc{}, false},
		{"zero without omitempty is present", plan.Compare(plan.OpEq, pLevel, 0), doc{}, true},
		// numbers keep int and double apart as JSON writes them
		{"int field is int", typeIs(pLevel, plan.TypeInt), d, true},
		{"whole float field is int", typeIs(pScore, plan.TypeInt), d, true},
		{"float field", typeIs(pScore, plan.TypeDouble), doc{Properties: docProps{Score: 2.5}}, true},
		{"json.Number", typeIs(pLevel, plan.TypeDouble), map[string]any{"properties": map[string]any{"level": json.Number("1.5")}}, true},
		{"string is not a number", plan.Compare(plan.OpEq, pLevel, 3), map[string]any{"properties": map[string]any{"level": "3"}}, false},
	}
	for _, tc := range cases {
		got, err := client.PlanMatch(conditional(tc.c), tc.res)
		if err != nil || got != tc.want {
			t.Errorf("%s: %s = %v, %v; want %v", tc.name, tc.c, got, err, tc.want)
		}
	}

	// Unconditional plans do not read the resource.
	if ok, err := client.PlanMatch(client.Plan{Kind: plan.AlwaysAllowed}, func() {}); !ok || err != nil {
		t.Errorf("always_allowed: %v %v", ok, err)
	}
	if ok, err := client.PlanMatch(client.Plan{Kind: plan.AlwaysDenied}, nil); ok || err != nil {
		t.Errorf("always_denied: %v %v", ok, err)
	}

	c := conditional(plan.Has(pOwner))
	for _, tc := range []struct {
		name string
		p    client.Plan
		res  any
		want string
	}{
		{"invalid plan", conditional(&plan.Node{Op: plan.OpNot}), d, "client: PlanMatch: invalid plan condition: plan: not takes one argument"},
		{"unknown kind", client.Plan{Kind: "x"}, d, `client: PlanMatch: unknown plan kind "x"`},
		{"no condition", client.Plan{Kind: plan.Conditional}, d, "a conditional plan without a condition"},
		{"not JSON", c, math.NaN(), "the resource does not marshal to JSON"},
		{"a function", c, func() {}, "the resource does not marshal to JSON"},
		{"a string", c, "document 42", "the resource must marshal to a JSON object"},
		{"a list", c, []any{d}, "the resource must marshal to a JSON object"},
		{"nil", c, nil, "the resource must marshal to a JSON object"},
		{"nil map", c, map[string]any(nil), "the resource must marshal to a JSON object"},
	} {
		ok, err := client.PlanMatch(tc.p, tc.res)
		if ok || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error with %q", tc.name, ok, err, tc.want)
		}
	}
}
