package server

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/forward"
)

// forwardPolicy allows exactly the inputs forward-auth must build, so that a
// field it gets wrong turns an expected allow into a deny; the gRPC
// transport's tests decide with the same file.
var forwardPolicy = func() string {
	b, err := os.ReadFile("../forward/testdata/gateway.verdict.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func forwardHarness(t *testing.T, mutate func(*forward.Config), opts ...Option) (*harness, *authKit) {
	t.Helper()
	kit := newAuthKit(t)
	cfg := forward.DefaultConfig()
	cfg.Routes = []forward.Route{{Path: "/health", Methods: []string{"GET"}}, {Path: "/todos/{id}", Methods: []string{"GET", "DELETE", "PATCH"}}}
	if mutate != nil {
		mutate(&cfg)
	}
	fa, err := forward.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"fa.verdict.yaml": forwardPolicy, ".manifest": `{"revision":"fa1"}`})
	return start(t, DefaultConfig(), mgr, append([]Option{WithAuth(kit.verifier, false), WithForwardAuth(fa)}, opts...)...), kit
}

func (h *harness) forward(method, path string, hdr ...string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return h.do(req)
}

func TestForwardAuth(t *testing.T) {
	h, kit := forwardHarness(t, nil)
	member := "Bearer " + mustIssue(t, kit, "alice", map[string]any{"roles": []string{"member"}})
	ua := "ua/1"
	cases := []struct {
		name, method, path string
		hdr                []string
		status             int
		code, www, subject string
	}{
		{"nginx", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/todos/42?x=1", "X-Original-Method", "GET",
			"X-Original-URL", "https://api.test/todos/42?x=1", "Authorization", member, "User-Agent", ua}, 200, "", "", "alice"},
		{"nginx subrequest method when X-Original-Method is absent", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/todos/42",
			"X-Forwarded-Host", "api.test", "Authorization", member, "User-Agent", ua}, 200, "", "", "alice"},
		{"traefik and caddy", "GET", "/v1/forward-auth", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/todos/42",
			"X-Forwarded-Host", "api.test", "X-Forwarded-Proto", "https", "Authorization", member, "User-Agent", ua}, 200, "", "", "alice"},
		{"envoy", "GET", "/v1/forward-auth/envoy/todos/42?x=1", []string{"Host", "api.test", "Authorization", member, "User-Agent", ua}, 200, "", "", "alice"},
		{"any sub-path reads the headers", "GET", "/v1/forward-auth/traefik", []string{"X-Forwarded-Uri", "/todos/42",
			"X-Forwarded-Host", "api.test", "Authorization", member, "User-Agent", ua}, 200, "", "", "alice"},
		{"a denied user is 403", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/todos/42", "X-Original-Method", "DELETE",
			"X-Forwarded-Host", "api.test", "Authorization", member, "User-Agent", ua}, 403, CodeAccessDenied, "", ""},
		{"a denied anonymous request is 401", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/todos/42",
			"X-Forwarded-Host", "api.test", "User-Agent", ua}, 401, CodeUnauthorized, `Bearer realm="verdict"`, ""},
		{"an invalid token is 401", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/health",
			"Authorization", "Bearer " + strings.Repeat("x", 40)}, 401, CodeUnauthorized, `error="invalid_token"`, ""},
		{"anonymous opens a public route", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/health"}, 200, "", "", ""},
		{"another scheme is anonymous", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/health", "Authorization", "Basic eDp5"}, 200, "", "", ""},
		{"a method the route does not list does not match it", "POST", "/v1/forward-auth", []string{"X-Original-URI", "/health"}, 401, CodeUnauthorized, "", ""},
		{"an unmatched path is evaluated with id empty", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/open/unmatched"}, 200, "", "", ""},
		{"an unclean path matches no route", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/x/../health"}, 401, CodeUnauthorized, "", ""},
		{"an engine error is a deny, not a 5xx", "PATCH", "/v1/forward-auth", []string{"X-Original-URI", "/todos/42", "Authorization", member}, 403, CodeAccessDenied, "", ""},
		{"no original request", "GET", "/v1/forward-auth", nil, 400, CodeNoOriginal, "", ""},
		{"a relative original URI", "GET", "/v1/forward-auth", []string{"X-Forwarded-Uri", "todos/42"}, 400, CodeNoOriginal, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := h.with(t).forward(tc.method, tc.path, tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, m)
			}
			if tc.code != "" && m["error"].(map[string]any)["code"] != tc.code {
				t.Fatalf("error %v, want code %s", m, tc.code)
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.www) {
				t.Fatalf("WWW-Authenticate %q, want %q", resp.Header.Get("WWW-Authenticate"), tc.www)
			}
			if resp.StatusCode != 200 {
				if resp.Header.Get("X-Verdict-Subject") != "" || resp.Header.Get("X-Verdict-Decision-Id") != "" {
					t.Fatalf("a deny carries allow headers: %v", resp.Header)
				}
				return
			}
			if got := resp.Header.Get("X-Verdict-Subject"); got != tc.subject {
				t.Fatalf("X-Verdict-Subject %q, want %q", got, tc.subject)
			}
			if id := resp.Header.Get("X-Verdict-Decision-Id"); id == "" || id != m["context"].(map[string]any)["decision_id"] {
				t.Fatalf("X-Verdict-Decision-Id %q, body %v", id, m)
			}
		})
	}
}

func mustIssue(t *testing.T, kit *authKit, sub string, extra map[string]any) string {
	t.Helper()
	at, err := kit.issuer.Issue(sub, sub, nil, extra)
	if err != nil {
		t.Fatal(err)
	}
	return at.Token
}

func TestForwardAuthGates(t *testing.T) {
	health := []string{"X-Original-URI", "/health"}
	t.Run("untrusted peer", func(t *testing.T) {
		h, _ := forwardHarness(t, func(c *forward.Config) { c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1"} })
		resp, m := h.with(t).forward("GET", "/v1/forward-auth", health...)
		if resp.StatusCode != 403 || m["error"].(map[string]any)["code"] != CodeUntrustedProxy {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("shared secret", func(t *testing.T) {
		h, _ := forwardHarness(t, func(c *forward.Config) { c.SharedSecret = "s3cret" })
		for _, tc := range []struct {
			secret string
			status int
		}{{"", 403}, {"wrong", 403}, {"s3cret", 200}} {
			hdr := append([]string{"X-Verdict-Proxy-Secret", tc.secret}, health...)
			if resp, m := h.with(t).forward("GET", "/v1/forward-auth", hdr...); resp.StatusCode != tc.status {
				t.Fatalf("secret %q: %d %v", tc.secret, resp.StatusCode, m)
			}
		}
	})
	t.Run("configured response headers", func(t *testing.T) {
		h, kit := forwardHarness(t, func(c *forward.Config) {
			c.ResponseHeaders = map[string]string{"X-User": "subject.id", "X-Route": "route", "X-Tenant": "token.tenant", "X-Rev": "revision"}
		})
		tok := mustIssue(t, kit, "alice", map[string]any{"roles": []string{"member"}, "tenant": "acme"})
		resp, m := h.with(t).forward("GET", "/v1/forward-auth/envoy/todos/42", "Host", "api.test", "Authorization", "Bearer "+tok, "User-Agent", "ua/1")
		if resp.StatusCode != 200 || resp.Header.Get("X-User") != "alice" || resp.Header.Get("X-Route") != "/todos/{id}" ||
			resp.Header.Get("X-Tenant") != "acme" || resp.Header.Get("X-Rev") != "fa1" || resp.Header.Get("X-Verdict-Subject") != "" {
			t.Fatalf("%d %v %v", resp.StatusCode, resp.Header, m)
		}
	})
	t.Run("no verifier refuses a token", func(t *testing.T) {
		h, _ := forwardHarness(t, nil, WithAuth(nil, false))
		if resp, m := h.with(t).forward("GET", "/v1/forward-auth", "X-Original-URI", "/health", "Authorization", "Bearer abc"); resp.StatusCode != 401 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
}

func TestForwardAuthSharesTheDecisionCache(t *testing.T) {
	rc := &recordingCache{}
	h, _ := forwardHarness(t, nil, WithCache(rc))
	for range 3 {
		if resp, m := h.forward("GET", "/v1/forward-auth", "X-Original-URI", "/health"); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	}
	if rc.sets.Load() != 1 {
		t.Fatalf("cache writes %d, want 1 (later calls are hits)", rc.sets.Load())
	}
}

func TestForwardAuthNoBundleIsDeny(t *testing.T) {
	kit := newAuthKit(t)
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, false))
	if resp, m := h.forward("GET", "/v1/forward-auth", "X-Original-URI", "/health"); resp.StatusCode != 401 {
		t.Fatalf("no bundle: %d %v", resp.StatusCode, m)
	}
}
