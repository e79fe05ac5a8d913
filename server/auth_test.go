package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/oauth/oauthtest"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
)

// revocations reports revoked jtis, or fails.
type revocations struct {
	err     error
	revoked map[string]bool
}

func (r *revocations) Revoked(_ context.Context, jti string) (bool, error) {
	return r.revoked[jti], r.err
}

type authKit struct {
	issuer   *oauth.TokenIssuer
	verifier *authn.Verifier
	revs     *revocations
}

func newAuthKit(t *testing.T) *authKit {
	t.Helper()
	revs := &revocations{revoked: map[string]bool{}}
	iss, v := oauthtest.Tokens(t, revs)
	return &authKit{issuer: iss, verifier: v, revs: revs}
}

func (k *authKit) token(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	at, err := k.issuer.Issue(sub, sub, scopes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return at.Token
}

const tokenPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: t
rules:
  - id: token-sub-matches
    effect: allow
    condition: token != null && token.sub == subject.id && token.client_id == "alice"
`

func TestDecideRequiresAToken(t *testing.T) {
	kit := newAuthKit(t)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"t.verdict.yaml": tokenPolicy})
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, false))
	b := body("alice", "read", "alice")
	good := kit.token(t, "gw", ScopeDecide)
	cases := []struct {
		name, auth string
		status     int
		code, www  string
	}{
		{"no token", "", 401, CodeUnauthorized, `Bearer realm="verdict"`},
		{"not bearer", "Basic Z3c6eA==", 401, CodeUnauthorized, `Bearer realm="verdict"`},
		{"garbage", "Bearer abc", 401, CodeUnauthorized, `error="invalid_token"`},
		// Headers past fasthttp's default 4 KiB buffer still reach the
		// verifier, which applies its own 8 KiB limit.
		{"6 KiB", "Bearer " + strings.Repeat("a", 6<<10), 401, CodeUnauthorized, `error="invalid_token"`},
		{"over 8 KiB", "Bearer " + strings.Repeat("a", 9<<10), 401, CodeUnauthorized, `error="invalid_token"`},
		{"tampered", "Bearer " + good[:len(good)-4] + "AAAA", 401, CodeUnauthorized, `error="invalid_token"`},
		{"no scope", "Bearer " + kit.token(t, "gw", "read"), 403, CodeForbidden, `error="insufficient_scope"`},
		{"good", "Bearer " + good, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			resp, m := h.with(t).post("/v1/decide", "application/json", b, hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, m)
			}
			if tc.code != "" && m["error"].(map[string]any)["code"] != tc.code {
				t.Fatalf("error %v", m)
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.www) {
				t.Fatalf("WWW-Authenticate %q, want %q", resp.Header.Get("WWW-Authenticate"), tc.www)
			}
		})
	}
	// A revoked token stops at once (the verifier is told), and a store
	// that cannot answer is a 503, never a pass.
	revoked := kit.token(t, "gw", ScopeDecide)
	claims, err := kit.verifier.Verify(context.Background(), revoked)
	if err != nil {
		t.Fatal(err)
	}
	kit.revs.revoked[claims.JTI()] = true
	kit.verifier.ForgetJTI(claims.JTI())
	if resp, _ := h.post("/v1/decide", "application/json", b, "Authorization", "Bearer "+revoked); resp.StatusCode != 401 {
		t.Fatalf("revoked token: %d", resp.StatusCode)
	}
	kit.revs.err = errors.New("store down")
	if resp, m := h.post("/v1/decide", "application/json", b, "Authorization", "Bearer "+kit.token(t, "gw", ScopeDecide)); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d %v", resp.StatusCode, m)
	}
}

func TestClosedByDefault(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	h := start(t, DefaultConfig(), mgr, WithAuth(nil, false))
	if resp, _ := h.post("/v1/decide", "application/json", body("a", "read", "a")); resp.StatusCode != 401 {
		t.Fatalf("a server without a verifier must not decide for anyone: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/healthz"); resp.StatusCode != 200 {
		t.Fatalf("health is not authenticated: %d", resp.StatusCode)
	}
}

func TestSubjectToken(t *testing.T) {
	kit := newAuthKit(t)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"t.verdict.yaml": tokenPolicy})
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, true))
	user := kit.token(t, "alice", "openid")
	// No subject at all: it becomes {type: user, id: <sub>}, and the
	// claims are the policy's token.
	resp, m := h.post("/v1/decide", "application/json", `{"subject_token":"`+user+`","action":{"name":"read"},"resource":{"type":"d","id":"1"}}`)
	if resp.StatusCode != 200 || m["decision"] != true {
		t.Fatalf("subject from token: %d %v", resp.StatusCode, m)
	}
	// An id the request gives wins over sub (and the policy then denies).
	_, m = h.post("/v1/decide", "application/json", `{"subject_token":"`+user+`","subject":{"type":"user","id":"mallory"},"action":{"name":"read"},"resource":{"type":"d","id":"1"}}`)
	if m["decision"] != false {
		t.Fatalf("explicit subject id: %v", m)
	}
	for name, bad := range map[string]string{"garbage": `"x.y.z"`, "not a string": `7`} {
		resp, m := h.post("/v1/decide", "application/json", `{"subject_token":`+bad+`,"action":{"name":"read"},"resource":{"type":"d","id":"1"}}`)
		if resp.StatusCode != 400 {
			t.Fatalf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
}
