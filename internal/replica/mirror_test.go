package replica

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
)

// newMirror is a mirror on clk over d's listing, followed by no Syncer.
func newMirror(t *testing.T, d *deps, clk *clock) *Mirror {
	t.Helper()
	m, err := NewMirror(d, testHold, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func TestNewMirrorValidates(t *testing.T) {
	if _, err := NewMirror(nil, time.Minute, nil); err == nil {
		t.Error("NewMirror without a listing succeeded")
	}
	if _, err := NewMirror(&deps{}, 0, nil); err == nil {
		t.Error("NewMirror with a zero hold succeeded")
	}
}

// TestMirrorEntriesEndAtExp: a loaded revocation holds until its exp, an
// announced one for the hold, and a later end is never shortened.
func TestMirrorEntriesEndAtExp(t *testing.T) {
	clk := newClock()
	t0 := clk.now()
	d := &deps{revoked: []store.RevokedToken{{JTI: "loaded", Exp: t0.Add(time.Minute)}, {JTI: "long", Exp: t0.Add(time.Hour)}}}
	m := newMirror(t, d, clk)
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Add("announced")
	m.Add("long") // the loaded hour is kept
	m.Add("")     // ignored
	steps := []struct {
		at   time.Duration
		want map[string]bool
	}{
		{0, map[string]bool{"loaded": true, "announced": true, "long": true, "other": false, "": false}},
		{time.Minute - time.Nanosecond, map[string]bool{"loaded": true}},
		{time.Minute, map[string]bool{"loaded": false, "announced": true}},
		{testHold, map[string]bool{"announced": false, "long": true}},
		{time.Hour, map[string]bool{"long": false}},
	}
	for _, s := range steps {
		clk.ns.Store(t0.Add(s.at).UnixNano())
		for jti, want := range s.want {
			if got := m.Revoked(jti); got != want {
				t.Errorf("at +%s: Revoked(%q) = %v, want %v", s.at, jti, got, want)
			}
		}
	}
}

// TestMirrorLoadReplaces: a repair's listing is the whole truth (what was
// announced and is no longer in the store goes); a failed listing keeps
// what the mirror had.
func TestMirrorLoadReplaces(t *testing.T) {
	clk := newClock()
	exp := clk.now().Add(time.Hour)
	d := &deps{revoked: []store.RevokedToken{{JTI: "a", Exp: exp}}}
	m := newMirror(t, d, clk)
	ctx := context.Background()
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	m.Add("announced")
	d.revoked = []store.RevokedToken{{JTI: "b", Exp: exp}}
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Revoked("a") || m.Revoked("announced") || !m.Revoked("b") || m.Len() != 1 {
		t.Fatalf("after a second load: a %v, announced %v, b %v, len %d; want b alone",
			m.Revoked("a"), m.Revoked("announced"), m.Revoked("b"), m.Len())
	}
	d.listErr = errDown
	if err := m.Load(ctx); !errors.Is(err, errDown) {
		t.Fatalf("Load with the store down = %v", err)
	}
	if !m.Revoked("b") {
		t.Fatal("a failed load emptied the mirror")
	}
}

// TestMirrorStaysBounded: entries that have ended are dropped as new ones
// come, so the mirror holds about what one hold brings, not everything
// ever revoked.
func TestMirrorStaysBounded(t *testing.T) {
	clk := newClock()
	m := newMirror(t, &deps{}, clk)
	for round := range 10 {
		for i := range 100 {
			m.Add(fmt.Sprintf("r%d-%d", round, i))
		}
		clk.advance(testHold)
	}
	if n := m.Len(); n > 2*100+minSweep {
		t.Fatalf("the mirror holds %d entries after 10 holds of 100 revocations each", n)
	}
}

// fakeRevocations is the store's revocation check: revoked ids, or err.
type fakeRevocations struct {
	revoked map[string]bool
	err     atomic.Pointer[error]
	calls   atomic.Int64
}

func (f *fakeRevocations) Revoked(_ context.Context, jti string) (bool, error) {
	f.calls.Add(1)
	if err := f.err.Load(); err != nil {
		return false, *err
	}
	return f.revoked[jti], nil
}

func (f *fakeRevocations) fail(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

// TestFailStatic: the store answers when it can; while it is unavailable
// the mirror answers until the replica is stale, and then the store's
// error comes back. Only store.ErrUnavailable falls back.
func TestFailStatic(t *testing.T) {
	e := start(t, 10*time.Second)
	e.d.mu.Lock()
	e.d.revoked = []store.RevokedToken{{JTI: "revoked-before", Exp: e.clk.now().Add(time.Hour)}}
	e.d.mu.Unlock()
	e.n.write(t, store.ChangeKey, "k", false)
	e.n.check(t) // a repair: the mirror is loaded
	testutil.WaitFor(t, "the mirror loaded", time.Millisecond, func() bool { return e.m.Revoked("revoked-before") })
	e.n.write(t, store.ChangeRevocation, "revoked-announced", true)
	testutil.WaitFor(t, "the announcement applied", time.Millisecond, func() bool { return e.m.Revoked("revoked-announced") })

	st := &fakeRevocations{revoked: map[string]bool{"store-only": true}}
	f, err := NewFailStatic(st, e.m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	unavailable := fmt.Errorf("redis store: dial: %w", store.ErrUnavailable)
	check := func(name, jti string, want bool, wantErr error) {
		t.Helper()
		got, err := f.Revoked(ctx, jti)
		if got != want || !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
			t.Errorf("%s: Revoked(%q) = %v, %v; want %v, %v", name, jti, got, err, want, wantErr)
		}
	}

	// The store answers: it is the truth, whatever the mirror says.
	check("store up", "store-only", true, nil)
	check("store up", "revoked-before", false, nil)
	if f.MirrorAnswers() != 0 {
		t.Fatal("the mirror answered while the store did")
	}

	// The store is unavailable, the replica healthy: the mirror answers.
	st.fail(unavailable)
	check("store down, healthy", "revoked-before", true, nil)
	check("store down, healthy", "revoked-announced", true, nil)
	check("store down, healthy", "never-revoked", false, nil)
	if f.MirrorAnswers() != 3 {
		t.Fatalf("mirror answers %d, want 3", f.MirrorAnswers())
	}

	// Another failure of the store is not an outage to ride out.
	other := errors.New("redis store: decode: bad json")
	st.fail(other)
	check("store error", "never-revoked", false, other)
	st.fail(unavailable)

	// Stale: nothing can be known.
	e.clk.advance(31 * time.Second)
	if e.s.Healthy() {
		t.Fatal("healthy past stale_after")
	}
	check("store down, stale", "never-revoked", false, store.ErrUnavailable)
	check("store down, stale", "revoked-before", false, store.ErrUnavailable)

	// The store answers again: the store again, stale or not.
	st.fail(nil)
	check("store back", "never-revoked", false, nil)
	if _, err := NewFailStatic(nil, e.m); err == nil {
		t.Error("NewFailStatic without a store succeeded")
	}
}

// TestUnfollowedMirrorIsNotTrusted: a mirror no Syncer follows (or before
// its first sync) never answers for the store.
func TestUnfollowedMirrorIsNotTrusted(t *testing.T) {
	clk := newClock()
	d := &deps{revoked: []store.RevokedToken{{JTI: "j", Exp: clk.now().Add(time.Hour)}}}
	m := newMirror(t, d, clk)
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := &fakeRevocations{}
	st.fail(store.ErrUnavailable)
	f, err := NewFailStatic(st, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Revoked(context.Background(), "other"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("an unfollowed mirror answered: %v", err)
	}
}

// TestMirrorFollowsOneSyncer: a mirror cannot be made trusted by two
// Syncers (each would vouch for changes only it applied).
func TestMirrorFollowsOneSyncer(t *testing.T) {
	d := &deps{}
	m := newMirror(t, d, newClock())
	deps := Deps{Bundles: d, Tokens: d, Keys: d, Revocations: m}
	if _, err := New(Default(), newFake(), deps, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Default(), newFake(), deps, nil); err == nil {
		t.Fatal("a second Syncer took the same mirror")
	}
}

// TestFailedMirrorLoadFailsTheRepair: a repair that could not list the
// revocations is not a sync, so the mirror it could not refresh is not
// trusted past stale_after.
func TestFailedMirrorLoadFailsTheRepair(t *testing.T) {
	e := start(t, 10*time.Second)
	repairs := e.s.Repairs()
	e.d.mu.Lock()
	e.d.listErr = errDown
	e.d.mu.Unlock()
	e.n.write(t, store.ChangeKey, "k", false)
	lists := e.d.lists.Load()
	e.n.check(t)
	testutil.WaitFor(t, "the listing", time.Millisecond, func() bool { return e.d.lists.Load() > lists })
	e.n.check(t) // the repair before it has finished
	if e.s.Repairs() != repairs || e.s.Generation() == e.n.gen.Load() {
		t.Fatal("a repair that could not load the mirror counted as done")
	}
	e.d.mu.Lock()
	e.d.listErr = nil
	e.d.mu.Unlock()
	e.n.check(t)
	testutil.WaitFor(t, "the repair", time.Millisecond, func() bool { return e.s.Repairs() == repairs+1 })
}
