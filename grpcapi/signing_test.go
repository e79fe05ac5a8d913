package grpcapi_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/oauth/oauthtest"
	"github.com/verdictpdp/verdict/server"
)

// TestAccessSignedDecisionsAndTTL: over gRPC, a decision asked for signed
// (Evaluation's signed, Evaluations' options.signed) carries a signature
// that go-jose verifies against the server's JWKS, with the claims the
// HTTP route's signature has for the same input (the same canonical input
// hash); one not asked for carries none; every decision carries the cache
// hint (ttl) the bundle allows.
func TestAccessSignedDecisionsAndTTL(t *testing.T) {
	h := start(t, harnessOpts{sign: true, files: map[string]string{"records.verdict.yaml": recordsPolicy, "data.json": recordsData,
		".manifest": `{"revision":"r1","metadata":{"verdict":{"max_cache_ttl":60}}}`}})
	ctx := h.caller(server.ScopeDecide)
	req := &accessv1.EvaluationRequest{Subject: &accessv1.Subject{Type: "user", Id: "alice"}, Action: &accessv1.Action{Name: "read"},
		Resource: &accessv1.Resource{Type: "record", Id: "record-1", Properties: props(t, map[string]any{"status": "active"})}}

	plain, err := h.access().Evaluation(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if plain.GetContext().GetSignature() != "" || plain.GetContext().GetTtl() != 60 {
		t.Fatalf("unasked: %v", plain.GetContext())
	}
	req.Signed = true
	got, err := h.access().Evaluation(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c := verifyDecision(t, h, got.GetContext().GetSignature())
	if c["decision"] != true || c["decision_id"] != got.GetContext().GetDecisionId() || c["revision"] != "r1" ||
		c["caller"] != "gw" || c["caller_iss"] != oauthtest.Issuer || c["iss"] != oauthtest.Issuer || got.GetContext().GetTtl() != 60 {
		t.Fatalf("claims %v, context %v", c, got.GetContext())
	}

	// The HTTP route signs the same input with the same hash.
	doc, _ := json.Marshal(map[string]any{"subject": asJSON(t, req.Subject), "action": asJSON(t, req.Action),
		"resource": asJSON(t, req.Resource), "options": map[string]any{"signed": true}})
	code, _, body := h.httpDo("POST", "/access/v1/evaluation", string(doc),
		map[string]string{"Authorization": "Bearer " + h.token("gw", server.ScopeDecide), "Content-Type": "application/json"})
	var viaHTTP struct {
		Context struct{ Signature string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &viaHTTP) != nil {
		t.Fatalf("HTTP %d %s", code, body)
	}
	if hc := verifyDecision(t, h, viaHTTP.Context.Signature); hc["input_sha256"] != c["input_sha256"] || hc["input_sha256"] == nil {
		t.Fatalf("input hashes: HTTP %v, gRPC %v", hc["input_sha256"], c["input_sha256"])
	}

	// A batch: every item signed, each for its own decision.
	batch, err := h.access().Evaluations(ctx, &accessv1.EvaluationsRequest{Subject: req.Subject, Action: req.Action,
		Evaluations: []*accessv1.EvaluationItem{
			{Resource: &accessv1.Resource{Type: "record", Id: "record-1"}},
			{Subject: &accessv1.Subject{Type: "user", Id: "carol"}, Resource: &accessv1.Resource{Type: "record", Id: "record-2"}},
		},
		Options: &accessv1.EvaluationsOptions{Signed: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.GetEvaluations()) != 2 {
		t.Fatalf("%d evaluations", len(batch.GetEvaluations()))
	}
	for i, want := range []bool{true, false} {
		ev := batch.GetEvaluations()[i]
		ic := verifyDecision(t, h, ev.GetContext().GetSignature())
		if ev.GetDecision() != want || ic["decision"] != want || ic["decision_id"] != ev.GetContext().GetDecisionId() {
			t.Fatalf("item %d: %v, claims %v", i, ev, ic)
		}
	}

	// A server that signs nothing refuses the request, as over HTTP.
	unsigned := recordsHarness(t, nil)
	_, err = unsigned.access().Evaluation(unsigned.caller(server.ScopeDecide), req)
	wantCode(t, err, codes.InvalidArgument, "invalid_input")
}

// verifyDecision checks sig with go-jose (a JOSE library Verdict does not
// use) against the server's JWKS and returns its claims.
func verifyDecision(t *testing.T, h *harness, sig string) map[string]any {
	t.Helper()
	_, claims := testutil.VerifyJWS(t, h.httpURL+"/.well-known/jwks.json", sig)
	return claims
}
