package bundles

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// memRevisions is an in-memory RevisionStore that counts the writes of
// the active pointer and the archive reads. (The lifecycle over the real
// stores, bbolt and Redis through internal/storeadapt, is tested in
// server and internal/replica.)
type memRevisions struct {
	mu        sync.Mutex
	recs      map[string]StoredRevision
	archives  map[string][]byte
	active    string
	setActive atomic.Int64
	reads     atomic.Int64
}

func newMemRevisions() *memRevisions {
	return &memRevisions{recs: map[string]StoredRevision{}, archives: map[string][]byte{}}
}

func (m *memRevisions) PutRevision(_ context.Context, r StoredRevision, archive []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.recs[r.Revision]; ok {
		if cur.Digest != r.Digest {
			return false, ErrRevisionConflict
		}
		return false, nil
	}
	r.Size = int64(len(archive))
	m.recs[r.Revision], m.archives[r.Revision] = r, archive
	return true, nil
}

func (m *memRevisions) Revisions(context.Context) ([]StoredRevision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.recs))
	slices.SortFunc(out, func(a, b StoredRevision) int { return b.PushedAt.Compare(a.PushedAt) })
	return out, nil
}

func (m *memRevisions) Revision(_ context.Context, rev string) (StoredRevision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[rev]
	if !ok {
		return r, ErrNotStored
	}
	return r, nil
}

func (m *memRevisions) Archive(_ context.Context, rev string) ([]byte, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.archives[rev]
	if !ok {
		return nil, ErrNotStored
	}
	return a, nil
}

func (m *memRevisions) SetActive(_ context.Context, rev string) error {
	m.setActive.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[rev]; !ok {
		return ErrNotStored
	}
	m.active = rev
	return nil
}

func (m *memRevisions) ActiveRevision(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == "" {
		return "", ErrNotStored
	}
	return m.active, nil
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
	st := newMemRevisions()
	a := NewLifecycle(NewManager(DefaultConfig(), nil), st, nil)
	mb := NewManager(DefaultConfig(), nil)
	b := NewLifecycle(mb, st, nil)

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
	if _, err := st.PutRevision(ctx, StoredRevision{Revision: "r8", Digest: "sha256:x"}, archiveOf(t, bad)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetActive(ctx, "r8"); err != nil {
		t.Fatal(err)
	}
	st.setActive.Add(-1) // the test's own write
	if changed, err := b.Sync(ctx); err == nil || changed {
		t.Fatalf("Sync to a broken revision = %v, %v; want an error", changed, err)
	}
	if act := mb.Active(); act.Snapshot.Revision() != "r7" {
		t.Fatalf("a rejected revision replaced the served one: %s", act.Snapshot.Revision())
	}
	// Rejected once, it is not prepared again (the next poll would).
	reads := st.reads.Load()
	if changed, err := b.Sync(ctx); err != nil || changed || st.reads.Load() != reads {
		t.Fatalf("Sync to the rejected revision again = %v, %v, %d archive reads; want false, nil, 0", changed, err, st.reads.Load()-reads)
	}
}

// TestLifecycleSyncKeepsPathsUntilAChange: a server that serves bundles
// from paths keeps them at its first Sync (the store's active revision
// predates it) and follows the next activation.
func TestLifecycleSyncKeepsPathsUntilAChange(t *testing.T) {
	ctx := context.Background()
	bolt := newMemRevisions()
	a := NewLifecycle(NewManager(DefaultConfig(), nil), bolt, nil)
	if _, err := a.Push(ctx, archiveOf(t, goodFiles), "ci", true); err != nil {
		t.Fatal(err)
	}
	mc := NewManager(DefaultConfig(), nil)
	paths := maps.Clone(goodFiles)
	paths[".manifest"] = `{"revision": "from-disk"}`
	if _, err := mc.LoadPaths(ctx, []string{writeDir(t, paths)}); err != nil {
		t.Fatal(err)
	}
	c := NewLifecycle(mc, bolt, nil)
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
