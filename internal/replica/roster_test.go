package replica

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
)

// memRoster records reports and departures.
type memRoster struct {
	mu      sync.Mutex
	reports []store.Member
	ttls    []time.Duration
	left    []string
}

func (r *memRoster) Report(_ context.Context, m store.Member, ttl time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports, r.ttls = append(r.reports, m), append(r.ttls, ttl)
	return nil
}

func (r *memRoster) Leave(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, id)
	return nil
}

func (r *memRoster) last() (store.Member, time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reports) == 0 {
		return store.Member{}, 0, 0
	}
	return r.reports[len(r.reports)-1], r.ttls[len(r.ttls)-1], len(r.reports)
}

// TestReportsToTheRoster: after every check the syncer reports Self with
// its applied generation, health and last sync, kept three polls; when
// Run ends it leaves. A Roster without Self is refused.
func TestReportsToTheRoster(t *testing.T) {
	n := newFake()
	n.gen.Store(4)
	d := &deps{families: map[string][]string{}}
	r := &memRoster{}
	self := func() store.Member { return store.Member{ID: "h-1", Host: "h", Version: "v", Revision: "r1"} }
	if _, err := New(Default(), n, Deps{Bundles: d, Tokens: d, Keys: d, Roster: r}, nil); err == nil {
		t.Fatal("a Roster without Self was accepted")
	}
	poll := 10 * time.Second
	s, err := New(Config{PollInterval: poll, StaleAfter: 30 * time.Second}, n, Deps{Bundles: d, Tokens: d, Keys: d, Roster: r, Self: self}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	testutil.WaitFor(t, "a report", time.Millisecond, func() bool { m, _, _ := r.last(); return m.Generation == 4 })
	m, ttl, _ := r.last()
	if m.ID != "h-1" || m.Revision != "r1" || m.Version != "v" || !m.Healthy || m.LastSync.IsZero() || m.Seen.IsZero() || ttl != 3*poll {
		t.Fatalf("report %+v kept %s", m, ttl)
	}
	// The store moves on; the next check reports the new generation.
	n.gen.Store(6)
	n.check(t)
	testutil.WaitFor(t, "a report of generation 6", time.Millisecond, func() bool { m, _, _ := r.last(); return m.Generation == 6 })
	// Unreachable: it still reports (the store may answer writes), with its
	// sync state as it is.
	n.down.Store(true)
	_, _, count := r.last()
	n.check(t)
	testutil.WaitFor(t, "another report", time.Millisecond, func() bool { _, _, c := r.last(); return c > count })
	if m, _, _ := r.last(); m.Generation != 6 {
		t.Fatalf("report while unreachable: %+v", m)
	}

	cancel()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.left) != 1 || r.left[0] != "h-1" {
		t.Fatalf("left %v", r.left)
	}
}
