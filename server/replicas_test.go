package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/store"
)

// fakeRoster is a store's roster as the test sets it.
type fakeRoster struct {
	members []store.Member
	gen     uint64
	err     error
}

func (f fakeRoster) Members(context.Context) ([]store.Member, error) { return f.members, f.err }
func (f fakeRoster) Generation(context.Context) (uint64, error)      { return f.gen, f.err }

// TestAdminReplicas: GET /v1/admin/replicas lists every replica that
// reports to the store with how far behind the store's generation it is;
// this replica is listed from its own view even before its report lands;
// a store that does not answer leaves this replica listed with the
// problem said; with the embedded store there is one replica.
func TestAdminReplicas(t *testing.T) {
	kit := newAuthKit(t)
	admin := kit.token(t, "ops", ScopeAdmin)
	t0 := time.Now().Add(-time.Minute)
	self := store.Member{ID: "a-1", Host: "a", Version: "1.0", Started: t0, Revision: "v2", Generation: 9, LastSync: t0, Healthy: true}
	others := []store.Member{
		{ID: "b-2", Host: "b", Revision: "v1", Generation: 7, Healthy: true, LastSync: t0},
		{ID: "c-3", Host: "c", Revision: "v2", Generation: 9, Healthy: false, LastSync: t0},
		{ID: "a-1", Host: "a", Revision: "v1", Generation: 1, Healthy: true}, // its last report: older than its own view
	}
	list := func(t *testing.T, r fakeRoster) map[string]any {
		t.Helper()
		h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, true),
			WithRoster(r), WithSelf(func() store.Member { return self }))
		if code, _ := adminReq(t, h, "GET", "/v1/admin/replicas", kit.token(t, "gw", ScopeDecide), ""); code != 403 {
			t.Fatalf("without the admin scope: %d", code)
		}
		code, m := adminReq(t, h, "GET", "/v1/admin/replicas", admin, "")
		if code != 200 {
			t.Fatalf("list: %d %v", code, m)
		}
		return m
	}

	m := list(t, fakeRoster{members: others, gen: 9})
	rs := m["replicas"].([]any)
	if m["shared"] != true || m["generation"] != float64(9) || len(rs) != 3 || m["problem"] != nil {
		t.Fatalf("shared: %v", m)
	}
	want := []struct {
		id     string
		self   bool
		behind float64
		inStep bool
		rev    string
	}{{"a-1", true, 0, true, "v2"}, {"b-2", false, 2, false, "v1"}, {"c-3", false, 0, false, "v2"}}
	for i, w := range want {
		r := rs[i].(map[string]any)
		if r["id"] != w.id || r["self"] != w.self || r["behind"] != w.behind || r["in_step"] != w.inStep || r["revision"] != w.rev {
			t.Errorf("replica %d = %v, want %+v", i, r, w)
		}
	}

	// Its report has not landed yet: still listed.
	if rs := list(t, fakeRoster{members: others[:1], gen: 9})["replicas"].([]any); len(rs) != 2 || rs[0].(map[string]any)["id"] != "a-1" {
		t.Fatalf("before its own report: %v", rs)
	}

	m = list(t, fakeRoster{err: errors.New("dial tcp: connection refused")})
	if rs := m["replicas"].([]any); len(rs) != 1 || rs[0].(map[string]any)["id"] != "a-1" || m["problem"] == nil {
		t.Fatalf("store down: %v", m)
	}

	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, true), WithVersion("9.9"))
	code, m := adminReq(t, h, "GET", "/v1/admin/replicas", admin, "")
	if rs, _ := m["replicas"].([]any); code != 200 || m["shared"] != false || len(rs) != 1 || rs[0].(map[string]any)["version"] != "9.9" || rs[0].(map[string]any)["self"] != true {
		t.Fatalf("embedded: %d %v", code, m)
	}
	// The app describes the replica (host and id) with the embedded store
	// too; with no sync to report it is in step.
	h = start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, true),
		WithSelf(func() store.Member { return store.Member{ID: "host-x", Host: "host"} }))
	_, m = adminReq(t, h, "GET", "/v1/admin/replicas", admin, "")
	if rs, _ := m["replicas"].([]any); len(rs) != 1 || rs[0].(map[string]any)["id"] != "host-x" || rs[0].(map[string]any)["in_step"] != true || rs[0].(map[string]any)["last_sync"] != nil {
		t.Fatalf("embedded with the app's description: %v", m)
	}
}
