package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/testutil"
)

type memClients struct {
	mu sync.Mutex
	m  map[string]oauth.Client
}

func (s *memClients) CreateClient(_ context.Context, c oauth.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[c.ID]; ok {
		return oauth.ErrClientExists
	}
	s.m[c.ID] = c
	return nil
}

func (s *memClients) UpdateClient(_ context.Context, c oauth.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[c.ID]; !ok {
		return oauth.ErrUnknownClient
	}
	s.m[c.ID] = c
	return nil
}

func (s *memClients) Client(_ context.Context, id string) (oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[id]
	if !ok {
		return c, oauth.ErrUnknownClient
	}
	return c, nil
}

func (s *memClients) ListClients(context.Context) ([]oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []oauth.Client
	for _, c := range s.m {
		out = append(out, c)
	}
	return out, nil
}

func (s *memClients) DeleteClient(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return oauth.ErrUnknownClient
	}
	delete(s.m, id)
	return nil
}

func adminReq(t *testing.T, h *harness, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, m
}

func TestAdminClients(t *testing.T) {
	kit := newAuthKit(t)
	pepper, _ := oauth.NewPepper()
	reg, err := oauth.NewClients(&memClients{m: map[string]oauth.Client{}}, pepper, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// Even with the decision routes open (dev), admin needs its scope.
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, true), WithClientAdmin(reg))
	admin := kit.token(t, "ops", ScopeAdmin)

	if code, _ := adminReq(t, h, "GET", "/v1/admin/clients", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := adminReq(t, h, "GET", "/v1/admin/clients", kit.token(t, "gw", ScopeDecide), ""); code != 403 {
		t.Fatalf("decide scope: %d", code)
	}
	code, m := adminReq(t, h, "POST", "/v1/admin/clients", admin, `{"id":"gw","scopes":["verdict:decide"]}`)
	if code != 201 || m["client_secret"] == nil || m["client"].(map[string]any)["id"] != "gw" {
		t.Fatalf("add: %d %v", code, m)
	}
	secret := m["client_secret"].(string)
	if _, err := reg.Authenticate(context.Background(), "gw", secret); err != nil {
		t.Fatalf("the returned secret does not authenticate: %v", err)
	}
	if code, m := adminReq(t, h, "POST", "/v1/admin/clients", admin, `{"id":"gw","scopes":["x"]}`); code != 409 {
		t.Fatalf("duplicate: %d %v", code, m)
	}
	for name, body := range map[string]string{
		"bad id":      `{"id":"a b","scopes":["x"]}`,
		"no scopes":   `{"id":"c"}`,
		"bad grant":   `{"id":"c","scopes":["x"],"grants":["password"]}`,
		"wrong types": `{"id":7,"scopes":"x"}`,
	} {
		if code, m := adminReq(t, h, "POST", "/v1/admin/clients", admin, body); code != 400 {
			t.Fatalf("%s: %d %v", name, code, m)
		}
	}
	code, m = adminReq(t, h, "GET", "/v1/admin/clients", admin, "")
	if code != 200 || len(m["clients"].([]any)) != 1 || strings.Contains(toJSON(m), secret) {
		t.Fatalf("list: %d %v", code, m)
	}
	if code, m := adminReq(t, h, "GET", "/v1/admin/clients/gw", admin, ""); code != 200 || m["has_secret"] != true {
		t.Fatalf("get: %d %v", code, m)
	}
	code, m = adminReq(t, h, "POST", "/v1/admin/clients/gw/rotate-secret", admin, "")
	if code != 200 || m["client_secret"] == secret {
		t.Fatalf("rotate: %d %v", code, m)
	}
	if _, err := reg.Authenticate(context.Background(), "gw", secret); err == nil {
		t.Fatal("the old secret still works after rotation")
	}
	if code, _ := adminReq(t, h, "DELETE", "/v1/admin/clients/gw", admin, ""); code != 204 {
		t.Fatalf("remove: %d", code)
	}
	if code, _ := adminReq(t, h, "GET", "/v1/admin/clients/gw", admin, ""); code != 404 {
		t.Fatalf("get after remove: %d", code)
	}
	if code, _ := adminReq(t, h, "DELETE", "/v1/admin/clients/gw", admin, ""); code != 404 {
		t.Fatalf("remove twice: %d", code)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAdminKeys(t *testing.T) {
	kit := newAuthKit(t)
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), &testutil.MemKeys{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, true), WithKeyAdmin(ring))
	admin := kit.token(t, "ops", ScopeAdmin)
	if code, _ := adminReq(t, h, "POST", "/v1/admin/keys/rotate", kit.token(t, "gw", ScopeDecide), ""); code != 403 {
		t.Fatalf("rotate without admin scope: %d", code)
	}
	code, m := adminReq(t, h, "GET", "/v1/admin/keys", admin, "")
	if code != 200 || len(m["keys"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, m)
	}
	first := m["keys"].([]any)[0].(map[string]any)["kid"].(string)
	code, m = adminReq(t, h, "POST", "/v1/admin/keys/rotate", admin, "")
	if code != 201 || m["kid"] == first {
		t.Fatalf("rotate: %d %v", code, m)
	}
	if _, m := adminReq(t, h, "GET", "/v1/admin/keys", admin, ""); len(m["keys"].([]any)) != 2 || strings.Contains(toJSON(m), `"d"`) {
		t.Fatalf("after rotate: %v", m)
	}
	if code, _ := adminReq(t, h, "POST", "/v1/admin/keys/"+first+"/revoke", admin, ""); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if _, ok := ring.PublicKey(first); ok {
		t.Fatal("a revoked key still verifies")
	}
	if code, _ := adminReq(t, h, "POST", "/v1/admin/keys/nosuch/revoke", admin, ""); code != 404 {
		t.Fatalf("unknown kid: %d", code)
	}
}
