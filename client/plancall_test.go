package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/engine/plan"
)

// TestPlanOverHTTPAndGRPC: Plan answers the same over both transports, and
// the condition predicts the decisions of the documents it is about.
func TestPlanOverHTTPAndGRPC(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	h, _ := newClient(t, s)
	g, _ := newGRPC(t, s)
	olga := client.Subject{Type: "user", ID: "olga"}
	q := client.PlanQuery{Subject: olga, Action: client.Action{Name: "delete"}, Resource: client.Resource{Type: "document"}}
	a, err := h.Plan(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Plan(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != plan.Conditional || a.Condition.String() != b.Condition.String() || a.Revision == "" || a.Revision != b.Revision {
		t.Fatalf("HTTP %+v %s, gRPC %+v %s", a, a.Condition, b, b.Condition)
	}
	for _, doc := range []client.Resource{doc42, {Type: "document", ID: "43", Properties: map[string]any{"owner": "olga", "locked": true}}, {Type: "document", ID: "44", Properties: map[string]any{"owner": "ed"}}} {
		d, err := h.Evaluation(ctx, client.Evaluation{Subject: olga, Action: q.Action, Resource: doc})
		if err != nil {
			t.Fatal(err)
		}
		got, err := client.PlanMatch(a.Plan, doc)
		if err != nil || got != d.Decision {
			t.Errorf("document %s: plan %v (%v), decision %v", doc.ID, got, err, d.Decision)
		}
	}
	for _, c := range []interface {
		Plan(context.Context, client.PlanQuery) (client.PlanResult, error)
	}{h, g} {
		_, err := c.Plan(ctx, client.PlanQuery{Subject: olga, Action: q.Action, Resource: doc42})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Code != "invalid_input" {
			t.Errorf("%T, a resource with an id: %v", c, err)
		}
	}
}
