package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/store"
)

// fakeTokens records what the HTTP layer passed on; the protocol logic
// itself is tested in authn and end to end in cmd/verdict.
type fakeTokens struct {
	mu  sync.Mutex
	got []oauth.TokenRequest
}

func (f *fakeTokens) Token(_ context.Context, r oauth.TokenRequest) (oauth.TokenResponse, error) {
	f.mu.Lock()
	f.got = append(f.got, r)
	f.mu.Unlock()
	if r.ClientSecret == "down" {
		return oauth.TokenResponse{}, fmt.Errorf("store: %w", authn.ErrUnavailable)
	}
	if r.ClientSecret == "store-down" {
		return oauth.TokenResponse{}, fmt.Errorf("clients: lookup: dial tcp: %w", store.ErrUnavailable)
	}
	if r.ClientSecret != "right" {
		return oauth.TokenResponse{}, &oauth.OAuthError{Code: oauth.OAuthInvalidClient, Description: "client authentication failed"}
	}
	return oauth.TokenResponse{AccessToken: "tok", TokenType: "Bearer", ExpiresIn: 300, Scope: r.Scope}, nil
}

func (f *fakeTokens) GrantTypes() []string  { return []string{oauth.GrantClientCredentials} }
func (f *fakeTokens) AuthMethods() []string { return []string{"client_secret_basic"} }

func (f *fakeTokens) Revoke(_ context.Context, cc oauth.ClientCredentials, token, _ string) error {
	if cc.ClientSecret != "right" {
		return &oauth.OAuthError{Code: oauth.OAuthInvalidClient, Description: "client authentication failed"}
	}
	return nil
}

func (f *fakeTokens) RevokeHeld(context.Context, string) error { return nil }

func (f *fakeTokens) Introspect(_ context.Context, cc oauth.ClientCredentials, token string) (oauth.IntrospectResponse, error) {
	if cc.ClientSecret != "right" {
		return oauth.IntrospectResponse{}, &oauth.OAuthError{Code: oauth.OAuthInvalidClient, Description: "client authentication failed"}
	}
	return oauth.IntrospectResponse{Active: token == "live"}, nil
}

func formPost(t *testing.T, h *harness, ctype, body string, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/oauth2/token", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not JSON: %q", raw)
	}
	return resp, m
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func TestTokenEndpointProtocol(t *testing.T) {
	ft := &fakeTokens{}
	h := newHarness(t, WithTokens(ft, "http://verdict.test/"))
	const form = "application/x-www-form-urlencoded"
	cases := []struct {
		name, ctype, body string
		hdr               []string
		status            int
		code              string
		wwwAuth           bool
	}{
		{"basic ok", form, "grant_type=client_credentials&scope=a", []string{"Authorization", basic("gw:1", "right")}, 200, "", false},
		{"post ok", form, "grant_type=client_credentials&client_id=gw&client_secret=right", nil, 200, "", false},
		{"basic wrong secret", form, "grant_type=client_credentials", []string{"Authorization", basic("gw", "wrong")}, 401, "invalid_client", true},
		{"post wrong secret", form, "grant_type=client_credentials&client_id=gw&client_secret=wrong", nil, 401, "invalid_client", false},
		{"malformed basic", form, "grant_type=client_credentials", []string{"Authorization", "Basic !!!"}, 401, "invalid_client", true},
		{"two methods", form, "grant_type=client_credentials&client_secret=right", []string{"Authorization", basic("gw", "right")}, 400, "invalid_request", false},
		{"basic and assertion", form, "grant_type=client_credentials&client_assertion=x", []string{"Authorization", basic("gw", "right")}, 400, "invalid_request", false},
		{"id mismatch", form, "grant_type=client_credentials&client_id=other", []string{"Authorization", basic("gw", "right")}, 400, "invalid_request", false},
		{"repeated parameter", form, "grant_type=client_credentials&scope=a&scope=b&client_id=gw&client_secret=right", nil, 400, "invalid_request", false},
		{"store unavailable", form, "grant_type=client_credentials&client_id=gw&client_secret=down", nil, 503, "temporarily_unavailable", false},
		{"json body", "application/json", `{"grant_type":"client_credentials"}`, nil, 400, "invalid_request", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := formPost(t, h, tc.ctype, tc.body, tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, m)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			if tc.code != "" && m["error"] != tc.code {
				t.Fatalf("error %v, want %s", m, tc.code)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.wwwAuth {
				t.Fatalf("WWW-Authenticate present %v, want %v", got, tc.wwwAuth)
			}
		})
	}
	ft.mu.Lock()
	first := ft.got[0]
	ft.mu.Unlock()
	if first.ClientID != "gw:1" || first.ClientSecret != "right" || first.Scope != "a" || first.GrantType != "client_credentials" {
		t.Fatalf("Basic credentials were not form-decoded: %+v", first)
	}
	_, meta := h.get("/.well-known/oauth-authorization-server")
	if meta["issuer"] != "http://verdict.test" || meta["token_endpoint"] != "http://verdict.test/oauth2/token" || meta["jwks_uri"] != "http://verdict.test/.well-known/jwks.json" {
		t.Fatalf("metadata: %v", meta)
	}
	if _, oidc := h.get("/.well-known/openid-configuration"); oidc["issuer"] != meta["issuer"] {
		t.Fatalf("openid-configuration differs: %v", oidc)
	}
	if resp, _ := newHarness(t).get("/.well-known/oauth-authorization-server"); resp.StatusCode != 404 {
		t.Fatalf("metadata without a token service: %d", resp.StatusCode)
	}
}

func TestFailedTokenRequestsAreRateLimited(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 3, Window: time.Minute}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	h := start(t, cfg, mgr, WithTokens(&fakeTokens{}, "http://x"))
	const form = "application/x-www-form-urlencoded"
	for i := 0; i < 3; i++ {
		if resp, _ := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=wrong"); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp, m := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=right")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || m["error"] != "too_many_requests" {
		t.Fatalf("after 3 failures: %d %v %v", resp.StatusCode, resp.Header, m)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("a 429 from the token endpoint needs Cache-Control: no-store, got %q", cc)
	}
	// Successes do not count: another server, many good requests.
	h2 := start(t, cfg, mgr, WithTokens(&fakeTokens{}, "http://x"))
	for i := 0; i < 6; i++ {
		if resp, _ := formPost(t, h2, form, "grant_type=client_credentials&client_id=gw&client_secret=right"); resp.StatusCode != 200 {
			t.Fatalf("good request %d: %d", i, resp.StatusCode)
		}
	}
}

// fromIP returns a client whose connections come from ip (any 127.0.0.0/8
// address is local on Linux), so a test can be several callers.
func fromIP(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestRequestsWithoutClientIDShareNoBucket: failures that name no client
// count against their IP only, never against a bucket every such request
// shares.
func TestRequestsWithoutClientIDShareNoBucket(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 2, Window: time.Minute}
	h := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil), WithTokens(&fakeTokens{}, "http://x"))
	post := func(c *http.Client, body string) int {
		resp, err := c.Post(h.url+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	a, b := fromIP(t, "127.0.0.2"), fromIP(t, "127.0.0.3")
	for i := 0; i < 2; i++ {
		if code := post(a, "grant_type=client_credentials&client_secret=wrong"); code != 401 {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	if code := post(a, "grant_type=client_credentials&client_secret=right"); code != 429 {
		t.Fatalf("the failing IP must be limited: %d", code)
	}
	if code := post(b, "grant_type=client_credentials&client_secret=right"); code != 200 {
		t.Fatalf("another IP without a client_id was limited by the first one's failures: %d", code)
	}
}

func TestLimitStoreExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newLimitStore()
	s.now = func() time.Time { return now }
	s.Set("a", []byte("1"), time.Second)
	s.Set("b", []byte("2"), 0)
	if v, _ := s.Get("a"); string(v) != "1" {
		t.Fatalf("a = %q", v)
	}
	now = now.Add(time.Second)
	if v, _ := s.Get("a"); v != nil {
		t.Fatalf("expired entry served: %q", v)
	}
	for i := 0; i < 200; i++ {
		s.Set(fmt.Sprintf("short-%d", i), []byte("x"), time.Millisecond)
	}
	now = now.Add(time.Second)
	// Live entries are added until the map has doubled: the sweep must
	// then drop the 200 expired ones.
	for i := 0; i < 300; i++ {
		s.Set(fmt.Sprintf("live-%d", i), []byte("x"), time.Hour)
	}
	s.mu.Lock()
	n := len(s.m)
	s.mu.Unlock()
	if n > 302 {
		t.Fatalf("expired entries were never swept: %d left", n)
	}
	if v, _ := s.Get("b"); string(v) != "2" {
		t.Fatal("an entry without expiry was dropped")
	}
}

func TestRevokeAndIntrospectRoutes(t *testing.T) {
	h := newHarness(t, WithTokens(&fakeTokens{}, "http://x"))
	post := func(path, body string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}
	if resp, _ := post("/oauth2/revoke", "token=abc", "Authorization", basic("gw", "right")); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, raw := post("/oauth2/revoke", "", "Authorization", basic("gw", "right")); resp.StatusCode != 400 || !strings.Contains(string(raw), "invalid_request") {
		t.Fatalf("revoke without token: %d %s", resp.StatusCode, raw)
	}
	if resp, _ := post("/oauth2/revoke", "token=abc", "Authorization", basic("gw", "wrong")); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("revoke with a wrong secret: %d", resp.StatusCode)
	}
	if resp, raw := post("/oauth2/introspect", "token=dead", "Authorization", basic("gw", "right")); resp.StatusCode != 200 || string(raw) != `{"active":false}` {
		t.Fatalf("introspect inactive: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := post("/oauth2/introspect", "token=live", "Authorization", basic("gw", "right")); resp.StatusCode != 200 || !strings.Contains(string(raw), `"active":true`) {
		t.Fatalf("introspect active: %d %s", resp.StatusCode, raw)
	}
	if resp, _ := post("/oauth2/introspect", "token=live"); resp.StatusCode != 401 {
		t.Fatalf("introspect unauthenticated: %d", resp.StatusCode)
	}
}
