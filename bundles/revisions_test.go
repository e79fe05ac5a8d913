package bundles

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/verdictpdp/verdict/store"
)

// countingStore counts the writes of the active pointer.
type countingStore struct {
	*store.Bolt
	setActive atomic.Int64
	archives  atomic.Int64
}

func (c *countingStore) Archive(ctx context.Context, ns, rev string) ([]byte, error) {
	c.archives.Add(1)
	return c.Bolt.Archive(ctx, ns, rev)
}

func (c *countingStore) SetActive(ctx context.Context, ns, rev string) error {
	c.setActive.Add(1)
	return c.Bolt.SetActive(ctx, ns, rev)
}

func openBolt(t *testing.T) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func archiveOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var es []entry
	for _, name := range slices.Sorted(maps.Keys(files)) {
		es = append(es, entry{name: name, body: files[name]})
	}
	return tarGz(t, es)
}

// TestLifecycleSync: a second lifecycle on the same store (another
// replica) follows the first one's activations with Sync, without writing
// the active pointer itself, and keeps what it serves when the store's
// revision is rejected.
func TestLifecycleSync(t *testing.T) {
	ctx := context.Background()
	bolt := openBolt(t)
	st := &countingStore{Bolt: bolt}
	a := NewLifecycle(NewManager(DefaultConfig(), nil), st, store.DefaultNamespace, nil)
	mb := NewManager(DefaultConfig(), nil)
	b := NewLifecycle(mb, st, store.DefaultNamespace, nil)

	if changed, err := b.Sync(ctx); err != nil || changed {
		t.Fatalf("Sync with nothing stored = %v, %v; want false, nil", changed, err)
	}
	if _, err := a.Push(ctx, archiveOf(t, goodFiles), "ci", true); err != nil {
		t.Fatal(err)
	}
	writes := st.setActive.Load()
	changed, err := b.Sync(ctx)
	if err != nil || !changed {
		t.Fatalf("Sync = %v, %v; want true, nil", changed, err)
	}
	if act := mb.Active(); act == nil || act.Snapshot.Revision() != "r7" || !act.Pushed {
		t.Fatalf("replica b serves %+v, want pushed r7", act)
	}
	if changed, err := b.Sync(ctx); err != nil || changed {
		t.Fatalf("second Sync = %v, %v; want false, nil (already serving)", changed, err)
	}
	if n := st.setActive.Load(); n != writes {
		t.Fatalf("Sync wrote the active pointer %d times, want 0", n-writes)
	}

	// The store points at a revision whose archive does not compile.
	bad := maps.Clone(goodFiles)
	bad[".manifest"] = `{"revision": "r8"}`
	bad["docs.verdict.yaml"] = "apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nrules:\n  - id: a\n    effect: allow\n    condition: 1 +\n"
	if _, err := st.PutRevision(ctx, store.DefaultNamespace, store.BundleRevision{Revision: "r8", Digest: "sha256:x"}, archiveOf(t, bad)); err != nil {
		t.Fatal(err)
	}
	if err := st.Bolt.SetActive(ctx, store.DefaultNamespace, "r8"); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Sync(ctx); err == nil || changed {
		t.Fatalf("Sync to a broken revision = %v, %v; want an error", changed, err)
	}
	if act := mb.Active(); act.Snapshot.Revision() != "r7" {
		t.Fatalf("a rejected revision replaced the served one: %s", act.Snapshot.Revision())
	}
	// Rejected once, it is not prepared again (the next poll would).
	reads := st.archives.Load()
	if changed, err := b.Sync(ctx); err != nil || changed || st.archives.Load() != reads {
		t.Fatalf("Sync to the rejected revision again = %v, %v, %d archive reads; want false, nil, 0", changed, err, st.archives.Load()-reads)
	}
}

// TestLifecycleSyncKeepsPathsUntilAChange: a server that serves bundles
// from paths keeps them at its first Sync (the store's active revision
// predates it) and follows the next activation.
func TestLifecycleSyncKeepsPathsUntilAChange(t *testing.T) {
	ctx := context.Background()
	bolt := openBolt(t)
	a := NewLifecycle(NewManager(DefaultConfig(), nil), bolt, store.DefaultNamespace, nil)
	if _, err := a.Push(ctx, archiveOf(t, goodFiles), "ci", true); err != nil {
		t.Fatal(err)
	}
	mc := NewManager(DefaultConfig(), nil)
	paths := maps.Clone(goodFiles)
	paths[".manifest"] = `{"revision": "from-disk"}`
	if _, err := mc.LoadPaths(ctx, []string{writeDir(t, paths)}); err != nil {
		t.Fatal(err)
	}
	c := NewLifecycle(mc, bolt, store.DefaultNamespace, nil)
	if changed, err := c.Sync(ctx); err != nil || changed || mc.Active().Snapshot.Revision() != "from-disk" {
		t.Fatalf("first Sync = %v, %v, serving %s; want the paths kept", changed, err, mc.Active().Snapshot.Revision())
	}
	next := maps.Clone(goodFiles)
	next[".manifest"] = `{"revision": "r9"}`
	if _, err := a.Push(ctx, archiveOf(t, next), "ci", true); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Sync(ctx); err != nil || !changed || mc.Active().Snapshot.Revision() != "r9" {
		t.Fatalf("Sync after a push = %v, %v, serving %s; want r9", changed, err, mc.Active().Snapshot.Revision())
	}
}
