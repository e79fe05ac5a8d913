package grpcapi_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/verdictpdp/verdict/engine/plan"
	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/server"
)

// TestAccessPlan: the Plan RPC answers as POST /v1/plan, with its refusals
// as gRPC statuses.
func TestAccessPlan(t *testing.T) {
	h := recordsHarness(t, nil)
	ctx := h.caller(server.ScopeDecide)
	r, err := h.access().Plan(ctx, &accessv1.PlanRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
		Action: &accessv1.Action{Name: "write"}, Resource: &accessv1.Resource{Type: "record"}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := r.GetCondition().MarshalJSON()
	var cond plan.Node
	if err := json.Unmarshal(raw, &cond); err != nil || r.GetKind() != plan.Conditional || r.GetContext().GetRevision() != "r1" {
		t.Fatalf("plan %v: %v", r, err)
	}
	code, _, body := h.httpDo("POST", server.PlanPath, `{"subject":{"type":"user","id":"alice"},"action":{"name":"write"},"resource":{"type":"record"}}`,
		map[string]string{"Authorization": "Bearer " + h.token("gw", server.ScopeDecide), "Content-Type": "application/json"})
	var overHTTP plan.Plan
	if err := json.Unmarshal([]byte(body), &overHTTP); code != 200 || err != nil || overHTTP.Condition.String() != cond.String() {
		t.Fatalf("over HTTP: %d %s, over gRPC %s", code, body, cond.String())
	}
	for status, want := range map[string]bool{"archived": false, "active": true} {
		if got := cond.Eval(map[string]any{"type": "record", "id": "x", "properties": map[string]any{"status": status}}); got != want {
			t.Errorf("status %s: %v", status, got)
		}
	}
	if r, err := h.access().Plan(ctx, &accessv1.PlanRequest{Subject: &accessv1.Subject{Type: "user", Id: "carol"},
		Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record"}}); err != nil || r.GetKind() != plan.AlwaysDenied || r.GetCondition() != nil {
		t.Fatalf("carol reads: %v %v", r, err)
	}
	_, err = h.access().Plan(ctx, &accessv1.PlanRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
		Action: &accessv1.Action{Name: "write"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}})
	wantCode(t, err, codes.InvalidArgument, "invalid_input")
	_, err = h.access().Plan(h.caller("read"), &accessv1.PlanRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
		Action: &accessv1.Action{Name: "write"}, Resource: &accessv1.Resource{Type: "record"}})
	wantCode(t, err, codes.PermissionDenied, "insufficient_scope")
}
