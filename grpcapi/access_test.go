package grpcapi_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/server"
)

const recordsPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: records
variables:
  status: 'has(resource.properties.status) ? resource.properties.status : ""'
rules:
  - id: read
    effect: allow
    actions: [read]
    resources: [record]
    condition: subject.id != "carol"
  - id: write-live
    effect: allow
    actions: [write]
    resources: [record]
    condition: subject.id == "alice" && variables.status != "archived"
  - id: soft-delete
    effect: allow
    actions: [delete]
    condition: subject.id == "alice" && has(action.properties.soft) && action.properties.soft == true
  - id: from-item
    effect: allow
    actions: [peek]
    condition: has(context.source) && context.source == "item"
`

const recordsData = `{"entities": {
  "user": [{"id": "frank"}, {"id": "alice"}, {"id": "bob"}, {"id": "carol"}, {"id": "dave"}],
  "record": [{"id": "record-2", "properties": {"status": "archived"}}, {"id": "record-1", "properties": {"status": "active"}}],
  "actions": ["audit"]
}}`

func recordsHarness(t *testing.T, mutate func(*server.Config)) *harness {
	t.Helper()
	cfg := server.DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	return start(t, harnessOpts{cfg: cfg, files: map[string]string{"records.verdict.yaml": recordsPolicy, "data.json": recordsData, ".manifest": `{"revision":"r1"}`}})
}

func (h *harness) access() accessv1.AccessClient { return accessv1.NewAccessClient(h.conn) }

// caller is a context carrying a caller token with scopes, as per-RPC
// metadata.
func (h *harness) caller(scopes ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token("gw", scopes...))
}

func props(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reasonOf is the Verdict error code of a gRPC error (its ErrorInfo).
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

func wantCode(t *testing.T, err error, c codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != c || reasonOf(err) != reason {
		t.Fatalf("got %v (reason %q), want %v %q", err, reasonOf(err), c, reason)
	}
}

func TestAccessEvaluationDecidesAsHTTP(t *testing.T) {
	h := recordsHarness(t, nil)
	ctx := h.caller(server.ScopeDecide)
	tok := h.token("gw", server.ScopeDecide)
	cases := []struct {
		name string
		req  *accessv1.EvaluationRequest
	}{
		{"read", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}}},
		{"carol may not read", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "carol"}, Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}}},
		{"archived", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "write"},
			Resource: &accessv1.Resource{Type: "record", Id: "x", Properties: props(t, map[string]any{"status": "archived"})}}},
		{"live", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "write"},
			Resource: &accessv1.Resource{Type: "record", Id: "x", Properties: props(t, map[string]any{"status": "active"})}}},
		{"action properties", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
			Action: &accessv1.Action{Name: "delete", Properties: props(t, map[string]any{"soft": true})}, Resource: &accessv1.Resource{Type: "record", Id: "x"}}},
		{"context", &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "peek"},
			Resource: &accessv1.Resource{Type: "record", Id: "x"}, Context: props(t, map[string]any{"source": "item"})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.access().Evaluation(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			doc, _ := json.Marshal(map[string]any{"subject": asJSON(t, tc.req.Subject), "action": asJSON(t, tc.req.Action),
				"resource": asJSON(t, tc.req.Resource), "context": asJSON(t, tc.req.Context)})
			code, _, body := h.httpDo("POST", "/access/v1/evaluation", string(doc),
				map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json", "X-Verdict-Reasons": "true"})
			var want struct {
				Decision bool
				Context  struct{ Reasons []string }
			}
			if code != 200 || json.Unmarshal([]byte(body), &want) != nil {
				t.Fatalf("HTTP %d %s", code, body)
			}
			if got.GetDecision() != want.Decision || !slices.Equal(got.GetContext().GetReasons(), want.Context.Reasons) {
				t.Errorf("gRPC %v %v, HTTP %v %v", got.GetDecision(), got.GetContext().GetReasons(), want.Decision, want.Context.Reasons)
			}
			if got.GetContext().GetRevision() != "r1" || got.GetContext().GetDecisionId() == "" {
				t.Errorf("context %v", got.GetContext())
			}
		})
	}
}

// asJSON is a message as AuthZEN's JSON (field names as in the proto).
func asJSON(t *testing.T, m interface{ String() string }) any {
	t.Helper()
	switch v := m.(type) {
	case *accessv1.Subject:
		return map[string]any{"type": v.GetType(), "id": v.GetId(), "properties": v.GetProperties().AsMap()}
	case *accessv1.Resource:
		return map[string]any{"type": v.GetType(), "id": v.GetId(), "properties": v.GetProperties().AsMap()}
	case *accessv1.Action:
		return map[string]any{"name": v.GetName(), "properties": v.GetProperties().AsMap()}
	case *structpb.Struct:
		return v.AsMap()
	}
	t.Fatalf("unexpected %T", m)
	return nil
}

func TestAccessEvaluations(t *testing.T) {
	h := recordsHarness(t, func(c *server.Config) { c.MaxBatch = 4 })
	ctx := h.caller(server.ScopeDecide)
	items := []*accessv1.EvaluationItem{
		{Resource: &accessv1.Resource{Id: "record-1"}},
		{Subject: &accessv1.Subject{Id: "carol"}},
		{Action: &accessv1.Action{Name: "peek"}, Context: props(t, map[string]any{"source": "item"})},
	}
	req := func(sem string, its ...*accessv1.EvaluationItem) *accessv1.EvaluationsRequest {
		return &accessv1.EvaluationsRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "read"},
			Resource: &accessv1.Resource{Type: "record", Id: "record-2"}, Evaluations: its, Options: &accessv1.EvaluationsOptions{EvaluationsSemantic: sem}}
	}
	decisions := func(r *accessv1.EvaluationsResponse) []bool {
		var out []bool
		for _, e := range r.GetEvaluations() {
			out = append(out, e.GetDecision())
		}
		return out
	}
	all, err := h.access().Evaluations(ctx, req("", items...))
	if err != nil {
		t.Fatal(err)
	}
	if got := decisions(all); !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("execute_all: %v", got)
	}
	first, err := h.access().Evaluations(ctx, req("deny_on_first_deny", items...))
	if err != nil {
		t.Fatal(err)
	}
	if got := decisions(first); !slices.Equal(got, []bool{true, false}) || first.GetEvaluations()[1].GetContext().GetCode() != "200" ||
		first.GetEvaluations()[1].GetContext().GetReason() != "deny_on_first_deny" {
		t.Fatalf("deny_on_first_deny: %v", first)
	}
	// An item that is no valid input is a deny carrying its error.
	bad, err := h.access().Evaluations(ctx, &accessv1.EvaluationsRequest{Evaluations: []*accessv1.EvaluationItem{{Subject: &accessv1.Subject{Type: "user", Id: "alice"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := bad.GetEvaluations()[0]; e.GetDecision() || e.GetContext().GetError() == "" || !slices.Contains(e.GetContext().GetReasons(), "verdict:invalid-input") {
		t.Fatalf("invalid item: %v", e)
	}
	// No items: one decision of the defaults.
	one, err := h.access().Evaluations(ctx, req(""))
	if err != nil || len(one.GetEvaluations()) != 1 || !one.GetEvaluations()[0].GetDecision() {
		t.Fatalf("no items: %v %v", one, err)
	}
	_, err = h.access().Evaluations(ctx, req("", items[0], items[0], items[0], items[0], items[0]))
	wantCode(t, err, codes.InvalidArgument, "invalid_input")
	_, err = h.access().Evaluations(ctx, req("first_come"))
	wantCode(t, err, codes.InvalidArgument, "invalid_input")
}

func TestAccessRefusals(t *testing.T) {
	h := recordsHarness(t, func(c *server.Config) { c.AllowExplain = false; c.BodyLimit = 4096 })
	ok := &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}}
	_, err := h.access().Evaluation(context.Background(), ok)
	wantCode(t, err, codes.Unauthenticated, "unauthorized")
	bad := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer not.a.jwt")
	_, err = h.access().Evaluation(bad, ok)
	wantCode(t, err, codes.Unauthenticated, "unauthorized")
	_, err = h.access().Evaluation(h.caller("verdict:bundles:read"), ok)
	wantCode(t, err, codes.PermissionDenied, "insufficient_scope")
	both := metadata.AppendToOutgoingContext(h.caller(server.ScopeDecide), "x-api-key", "vk_x")
	_, err = h.access().Evaluation(both, ok)
	wantCode(t, err, codes.InvalidArgument, "bad_request")

	ctx := h.caller(server.ScopeDecide)
	_, err = h.access().Evaluation(ctx, &accessv1.EvaluationRequest{Action: ok.Action, Resource: ok.Resource})
	wantCode(t, err, codes.InvalidArgument, "invalid_input")
	if !strings.Contains(status.Convert(err).Message(), "subject") {
		t.Errorf("the message does not name the field: %v", err)
	}
	explain := &accessv1.EvaluationRequest{Subject: ok.Subject, Action: ok.Action, Resource: ok.Resource, Explain: true}
	_, err = h.access().Evaluation(ctx, explain)
	wantCode(t, err, codes.PermissionDenied, "explain_disabled")
	_, err = h.access().Evaluation(ctx, &accessv1.EvaluationRequest{Subject: ok.Subject, Action: ok.Action, Resource: ok.Resource, SubjectToken: "not.a.jwt"})
	wantCode(t, err, codes.InvalidArgument, "invalid_subject_token") // HTTP: 400
	big := &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: strings.Repeat("a", 5000)}, Action: ok.Action, Resource: ok.Resource}
	if _, err = h.access().Evaluation(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message over server.body_limit: %v", err)
	}
}

func TestAccessExplainAndOpen(t *testing.T) {
	cfg := server.DefaultConfig()
	h := start(t, harnessOpts{cfg: cfg, open: true, files: map[string]string{"records.verdict.yaml": recordsPolicy}})
	r, err := h.access().Evaluation(context.Background(), &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
		Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}, Explain: true})
	if err != nil {
		t.Fatalf("--dev needs no token: %v", err)
	}
	if !r.GetDecision() || len(r.GetContext().GetExplain().GetValues()) == 0 {
		t.Fatalf("explain: %v", r)
	}
	first := r.GetContext().GetExplain().GetValues()[0].GetStructValue().AsMap()
	if _, ok := first["rule"]; !ok {
		t.Errorf("trace item %v has no rule", first)
	}
}

func TestAccessSearch(t *testing.T) {
	h := recordsHarness(t, nil)
	ctx := h.caller(server.ScopeDecide)
	read, rec1 := &accessv1.Action{Name: "read"}, &accessv1.Resource{Type: "record", Id: "record-1"}
	var ids []string
	token := ""
	for page := 0; page < 5; page++ {
		r, err := h.access().SearchSubject(ctx, &accessv1.SearchRequest{Subject: &accessv1.Subject{Type: "user"}, Action: read, Resource: rec1,
			Page: &accessv1.PageRequest{Token: token, Limit: 2}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.GetResults() {
			if s.GetType() != "user" {
				t.Errorf("result %v", s)
			}
			ids = append(ids, s.GetId())
		}
		if r.GetPage().GetTotal() != 4 {
			t.Errorf("total %d", r.GetPage().GetTotal())
		}
		if token = r.GetPage().GetNextToken(); token == "" {
			break
		}
	}
	if !slices.Equal(ids, []string{"alice", "bob", "dave", "frank"}) {
		t.Fatalf("subjects over pages: %v", ids)
	}
	res, err := h.access().SearchResource(ctx, &accessv1.SearchRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"},
		Action: &accessv1.Action{Name: "write"}, Resource: &accessv1.Resource{Type: "record"}})
	if err != nil || len(res.GetResults()) != 1 || res.GetResults()[0].GetId() != "record-1" {
		t.Fatalf("resources: %v %v", res, err)
	}
	act, err := h.access().SearchAction(ctx, &accessv1.SearchRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Resource: rec1})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range act.GetResults() {
		names = append(names, a.GetName())
	}
	if !slices.Contains(names, "read") || !slices.Contains(names, "write") || slices.Contains(names, "audit") {
		t.Errorf("actions %v", names)
	}
	_, err = h.access().SearchSubject(ctx, &accessv1.SearchRequest{Subject: &accessv1.Subject{Type: "user"}, Action: read, Resource: rec1,
		Page: &accessv1.PageRequest{Token: "forged"}})
	wantCode(t, err, codes.InvalidArgument, "invalid_page_token")
}

func TestAccessRateLimitSharedWithHTTP(t *testing.T) {
	h := recordsHarness(t, func(c *server.Config) { c.RateLimits.AuthZEN = server.Limit{PerClient: 2, Window: time.Minute} })
	tok := h.token("gw", server.ScopeDecide)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	if code, _, b := h.httpDo("POST", "/access/v1/evaluation", body, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}); code != 200 {
		t.Fatalf("HTTP %d %s", code, b)
	}
	req := &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "read"}, Resource: &accessv1.Resource{Type: "record", Id: "record-1"}}
	if _, err := h.access().Evaluation(ctx, req); err != nil {
		t.Fatal(err)
	}
	_, err := h.access().Evaluation(ctx, req)
	wantCode(t, err, codes.ResourceExhausted, "rate_limited")
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() < time.Second {
		t.Errorf("no RetryInfo of at least a second: %v", status.Convert(err).Details())
	}
	if code, _, _ := h.httpDo("POST", "/access/v1/evaluation", body, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}); code != 429 {
		t.Errorf("HTTP after the gRPC calls: %d, want 429 (one limit for both transports)", code)
	}
}
