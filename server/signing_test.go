package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

const testIssuer = "http://verdict.test"

// signingKit is a key ring that signs both access tokens and decisions,
// the verifier of those tokens and an issuer of them, as serve wires them.
type signingKit struct {
	ring     *authn.Keyring
	verifier *authn.Verifier
	tokens   *oauth.TokenIssuer
}

func newSigningKit(t *testing.T) signingKit {
	t.Helper()
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), &testutil.MemKeys{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokens, err := oauth.NewTokenIssuer(oauth.IssuerConfig{Issuer: testIssuer, Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	vc := authn.DefaultVerifierConfig()
	vc.Self = authn.TrustedIssuer{Issuer: testIssuer, Audiences: []string{"verdict"}}
	v, err := authn.NewVerifier(vc, ring, &revocations{revoked: map[string]bool{}}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return signingKit{ring: ring, verifier: v, tokens: tokens}
}

// verifyWithGoJose checks sig, a signed decision, with go-jose (a JOSE
// library Verdict does not use) against the server's JWKS, and returns
// its protected header's typ and its claims.
func verifyWithGoJose(t *testing.T, h *harness, sig string) (typ string, claims map[string]any) {
	t.Helper()
	return testutil.VerifyJWS(t, h.url+"/.well-known/jwks.json", sig)
}

// signature is the context.signature of an answer, "" when none.
func signature(m map[string]any) string {
	ctx, _ := m["context"].(map[string]any)
	s, _ := ctx["signature"].(string)
	return s
}

// aliceReads is the canonical input of body("alice", "read", "alice"),
// written out by hand (docs/api.md, Signed decisions).
const aliceReads = `{"action":{"name":"read","properties":{}},"context":{},"resource":{"id":"42","properties":{"owner":"alice"},"type":"document"},"subject":{"id":"alice","properties":{},"type":"user"}}`

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func signed(b string) string {
	return strings.TrimSuffix(b, "}") + `,"options":{"signed":true}}`
}

// TestSignedDecisions: a decision asked for signed carries a JWS that
// go-jose verifies against /.well-known/jwks.json, typ
// verdict-decision+jwt, with the decision, its id, the revision, the input
// hash, the caller, iss and iat; none is made unasked; batch items are
// signed each; the hash follows the input; a signed decision is no access
// token.
func TestSignedDecisions(t *testing.T) {
	kit := newSigningKit(t)
	h := newHarness(t, WithJWKS(kit.ring), WithDecisionSigner(kit.ring, testIssuer), WithAuth(kit.verifier, false))
	at, err := kit.tokens.Issue("gateway", "gateway", []string{ScopeDecide}, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := []string{"Authorization", "Bearer " + at.Token}

	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"), auth...)
	if resp.StatusCode != 200 || signature(m) != "" {
		t.Fatalf("unasked: %d %v", resp.StatusCode, m)
	}
	before := time.Now().Unix()
	resp, m = h.post("/v1/decide", "application/json", signed(body("alice", "read", "alice")), auth...)
	sig := signature(m)
	if resp.StatusCode != 200 || sig == "" {
		t.Fatalf("asked: %d %v", resp.StatusCode, m)
	}
	typ, c := verifyWithGoJose(t, h, sig)
	ctx := m["context"].(map[string]any)
	iat, _ := c["iat"].(float64)
	if typ != pdp.DecisionJWTType || c["iss"] != testIssuer || c["decision"] != true || c["decision_id"] != ctx["decision_id"] ||
		c["revision"] != "v1" || c["input_sha256"] != sha256Hex(aliceReads) || c["caller"] != "gateway" || c["caller_iss"] != testIssuer ||
		int64(iat) < before || int64(iat) > time.Now().Unix() {
		t.Fatalf("typ %q, claims %v (answer %v)", typ, c, m)
	}
	// A deny is signed as a deny, for its own input.
	_, m = h.post("/v1/decide", "application/json", signed(body("bob", "read", "alice")), auth...)
	_, c2 := verifyWithGoJose(t, h, signature(m))
	if c2["decision"] != false || c2["input_sha256"] == c["input_sha256"] || c2["decision_id"] == c["decision_id"] {
		t.Fatalf("deny claims %v", c2)
	}
	// A signed decision is not an access token, whoever presents it.
	if _, err := kit.verifier.Verify(context.Background(), sig); err == nil {
		t.Fatal("the verifier of access tokens accepted a signed decision")
	}
	if resp, _ := h.post("/v1/decide", "application/json", body("alice", "read", "alice"), "Authorization", "Bearer "+sig); resp.StatusCode != 401 {
		t.Fatalf("a signed decision as a bearer token: %d", resp.StatusCode)
	}

	// A batch: each item its own signature over its own input.
	batch := signed(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"evaluations":[` +
		`{"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}},{"resource":{"type":"document","id":"2","properties":{"owner":"bob"}}}]}`)
	for _, path := range []string{"/v1/decide", authzenEvaluations} {
		resp, m = h.post(path, "application/json", batch, auth...)
		evs, _ := m["evaluations"].([]any)
		if resp.StatusCode != 200 || len(evs) != 2 {
			t.Fatalf("%s batch: %d %v", path, resp.StatusCode, m)
		}
		ids := strings.Split(resp.Header.Get(decisionIDHeader), ",")
		for i, ev := range evs {
			_, ci := verifyWithGoJose(t, h, signature(ev.(map[string]any)))
			id, _ := ev.(map[string]any)["context"].(map[string]any)["decision_id"].(string)
			if path == authzenEvaluations {
				id = ids[i]
			}
			if ci["decision"] != (i == 0) || ci["decision_id"] != id || ci["caller"] != "gateway" {
				t.Errorf("%s item %d: claims %v, answer %v", path, i, ci, ev)
			}
		}
	}
	// AuthZEN's single evaluation: the signature in context, the decision
	// id in its header, the answer otherwise AuthZEN's.
	resp, m = h.post(authzenEvaluation, "application/json", signed(body("alice", "read", "alice")), auth...)
	_, c = verifyWithGoJose(t, h, signature(m))
	if resp.StatusCode != 200 || m["decision"] != true || c["decision_id"] != resp.Header.Get(decisionIDHeader) {
		t.Fatalf("AuthZEN evaluation: %d %v %v", resp.StatusCode, m, c)
	}
	if resp, m := h.post(authzenEvaluation, "application/json", body("alice", "read", "alice"), auth...); len(m) != 1 || resp.StatusCode != 200 {
		t.Fatalf("an AuthZEN answer unasked is {decision} alone: %v", m)
	}
}

// TestSignDecisionsSetting: server.sign_decisions signs every answer,
// asked for or not; it needs a signer.
func TestSignDecisionsSetting(t *testing.T) {
	kit := newSigningKit(t)
	cfg := DefaultConfig()
	cfg.SignDecisions = true
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	h := start(t, cfg, mgr, WithJWKS(kit.ring), WithDecisionSigner(kit.ring, testIssuer))
	for _, path := range []string{"/v1/decide", authzenEvaluation} {
		resp, m := h.post(path, "application/json", body("alice", "read", "alice"))
		if resp.StatusCode != 200 || signature(m) == "" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, m)
		}
		if _, c := verifyWithGoJose(t, h, signature(m)); c["caller"] != "" || c["caller_iss"] != nil || c["iss"] != testIssuer {
			t.Fatalf("%s: an open route's caller %v", path, c)
		}
	}
	if _, err := New(cfg, mgr, nil, WithAuth(nil, true)); err == nil || !strings.Contains(err.Error(), "sign") {
		t.Fatalf("sign_decisions without keys: %v", err)
	}
	if _, m := newHarness(t).post("/v1/decide", "application/json", signed(body("alice", "read", "alice"))); m["error"] == nil {
		t.Fatalf("a signature asked of a server without keys: %v", m)
	}
}

type failingSigner struct{}

func (failingSigner) Sign(string, []byte) (string, error) {
	return "", errors.New("keys: no signing key")
}

// TestSigningFailureIsNeverAnsweredUnsigned: a decision that cannot be
// signed is a 503 to retry, never an unsigned answer.
func TestSigningFailureIsNeverAnsweredUnsigned(t *testing.T) {
	h := newHarness(t, WithDecisionSigner(failingSigner{}, testIssuer))
	for _, b := range []string{signed(body("alice", "read", "alice")), signed(body("bob", "read", "alice"))} {
		resp, m := h.post("/v1/decide", "application/json", b)
		e, _ := m["error"].(map[string]any)
		if resp.StatusCode != 503 || e["code"] != pdp.CodeSigningUnavailable || resp.Header.Get("Retry-After") == "" || m["decision"] != nil {
			t.Fatalf("%d %v %v", resp.StatusCode, resp.Header, m)
		}
	}
	if resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice")); resp.StatusCode != 200 || m["decision"] != true {
		t.Fatalf("unsigned: %d %v", resp.StatusCode, m)
	}
}

// TestOpenAPIDocumentsSignaturesAndCacheHints: the document names
// options.signed on every decision request, context.signature and
// context.ttl on every decision, the Cache-Control of the decision routes
// and their 503 signing_unavailable.
func TestOpenAPIDocumentsSignaturesAndCacheHints(t *testing.T) {
	_, doc := newHarness(t).get("/openapi.json")
	at := func(v any, path ...string) any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}
	schemas := at(doc, "components", "schemas")
	for _, req := range []string{"DecideRequest", "AuthZENEvaluationRequest", "AuthZENEvaluationsRequest"} {
		if at(schemas, req, "properties", "options", "properties", "signed") == nil {
			t.Errorf("%s lacks options.signed", req)
		}
	}
	for _, field := range []string{"signature", "ttl"} {
		if at(schemas, "Decision", "properties", "context", "properties", field) == nil {
			t.Errorf("Decision.context lacks %s", field)
		}
	}
	for _, path := range []string{"/v1/decide", authzenEvaluation, authzenEvaluations} {
		op := at(doc, "paths", path, "post", "responses")
		if at(op, "200", "headers", "Cache-Control") == nil || at(op, "503") == nil {
			t.Errorf("%s: no Cache-Control header or no 503 documented", path)
		}
	}
	if d, _ := at(doc, "components", "headers", "DecisionCacheControl", "description").(string); !strings.Contains(d, "max-age") || !strings.Contains(d, "no-store") {
		t.Errorf("the decision Cache-Control is not described: %q", d)
	}
}
