package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/store"
)

// replicaStatus is a replica's sync status as the test sets it.
type replicaStatus struct {
	healthy, reachable bool
	since              time.Duration
	gen                uint64
}

func (r replicaStatus) Healthy() bool            { return r.healthy }
func (r replicaStatus) Reachable() bool          { return r.reachable }
func (r replicaStatus) SinceSync() time.Duration { return r.since }
func (r replicaStatus) Generation() uint64       { return r.gen }

// TestReadyzWithReplica: with a replica, readiness is its staleness, not a
// ping of the store: an unreachable store leaves the server ready
// (fail-static) until the replica is stale. Reachability is reported as the
// store answers now, even before the replica's next poll notices.
func TestReadyzWithReplica(t *testing.T) {
	for _, tt := range []struct {
		name   string
		r      replicaStatus
		ping   error
		status int
		store  string
		sync   string
	}{
		{"in step", replicaStatus{healthy: true, reachable: true, gen: 7}, nil, 200, "ok", "ok"},
		{"store just went down", replicaStatus{healthy: true, reachable: true, gen: 7}, fmt.Errorf("down"), 200, "unreachable", "ok"},
		{"store down, not yet stale", replicaStatus{healthy: true, since: 12 * time.Second, gen: 7}, fmt.Errorf("down"), 200, "unreachable", "ok"},
		{"store down, stale", replicaStatus{since: 31 * time.Second, gen: 7}, fmt.Errorf("down"), 503, "unreachable", "stale"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, WithStore(pinger{err: tt.ping}), WithReplica(tt.r))
			resp, m := h.get("/readyz")
			checks := m["checks"].(map[string]any)
			if resp.StatusCode != tt.status || checks["store"] != tt.store || checks["sync"] != tt.sync {
				t.Fatalf("readyz = %d %v", resp.StatusCode, m)
			}
			if checks["seconds_since_sync"] != float64(int(tt.r.since.Seconds())) || checks["generation"] != float64(7) {
				t.Fatalf("readyz checks %v", checks)
			}
			_, st := h.get("/v1/status")
			if rs, ok := st["replica"].(map[string]any); !ok || rs["generation"] != float64(7) || rs["healthy"] != tt.r.healthy {
				t.Fatalf("status replica = %v", st["replica"])
			}
		})
	}
}

// downStore is a bbolt store whose reads fail as an unreachable shared
// store's do.
type downStore struct{ *store.Bolt }

func (downStore) Revision(context.Context, string, string) (store.BundleRevision, error) {
	return store.BundleRevision{}, fmt.Errorf("redis: dial tcp 127.0.0.1:1: connect: connection refused: %w", store.ErrUnavailable)
}

// TestStoreUnavailableIs503: a token request or a bundle push that cannot
// reach the store is a 503 with Retry-After, never a 500.
func TestStoreUnavailableIs503(t *testing.T) {
	h := newHarness(t, WithTokens(&fakeTokens{}, "http://verdict.test"))
	resp, m := formPost(t, h, "application/x-www-form-urlencoded", "grant_type=client_credentials", "Authorization", basic("app", "store-down"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || m["error"] != "temporarily_unavailable" {
		t.Fatalf("token with the store down: %d %v %v", resp.StatusCode, resp.Header, m)
	}

	bolt, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	kit := newAuthKit(t)
	bh := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, true),
		WithBundleAdmin(bundles.NewLifecycle(mgr, storeadapt.Revisions(downStore{bolt}, store.DefaultNamespace), nil)))
	code, body, _, hdr, err := request("POST", bh.url+"/v1/bundles", "application/gzip",
		"Bearer "+kit.token(t, "ci", ScopeBundlesWrite), bundleArchive(t, "r1", goodFiles(policyV1)))
	if err != nil {
		t.Fatal(err)
	}
	if code != 503 || hdr.Get("Retry-After") == "" || body["error"].(map[string]any)["code"] != CodeUnavailable {
		t.Fatalf("push with the store down: %d %v %v", code, hdr, body)
	}
}

// TestLimitStorageIsShared: two servers on one limit storage (as replicas
// on Redis) count the same failures.
func TestLimitStorageIsShared(t *testing.T) {
	shared := newLimitStore()
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 2, Window: time.Minute}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	a := start(t, cfg, mgr, WithTokens(&fakeTokens{}, "http://verdict.test"), WithLimitStorage(shared))
	b := start(t, cfg, mgr, WithTokens(&fakeTokens{}, "http://verdict.test"), WithLimitStorage(shared))
	for range 2 {
		if resp, _ := formPost(t, a, "application/x-www-form-urlencoded", "grant_type=client_credentials", "Authorization", basic("app", "wrong")); resp.StatusCode != 401 {
			t.Fatalf("failure on a: %d", resp.StatusCode)
		}
	}
	if resp, _ := formPost(t, b, "application/x-www-form-urlencoded", "grant_type=client_credentials", "Authorization", basic("app", "right")); resp.StatusCode != 429 {
		t.Fatalf("b after a's failures: %d, want 429 (shared counters)", resp.StatusCode)
	}
}
