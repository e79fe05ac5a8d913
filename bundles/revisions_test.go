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
}

func (c *countingStore) SetActive(ctx context.Context, ns, rev string) error {
	c.setActive.Add(1)
	return c.Bolt.SetActive(ctx, ns, rev)
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
	bolt, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
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
}
