package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNotifier is an in-process store.Notifier: the test sets the
// generation and sends announcements, which may skip generations.
type fakeNotifier struct {
	gen    atomic.Uint64
	checks atomic.Int64 // calls of Generation
	down   atomic.Bool
	msgs   chan store.Change
	resubs chan struct{}
}

func newFake() *fakeNotifier {
	return &fakeNotifier{msgs: make(chan store.Change), resubs: make(chan struct{})}
}

var errDown = errors.New("connection refused")

func (f *fakeNotifier) Generation(ctx context.Context) (uint64, error) {
	f.checks.Add(1)
	if f.down.Load() {
		return 0, errDown
	}
	return f.gen.Load(), nil
}

func (f *fakeNotifier) Subscribe(ctx context.Context, fn func(store.Change), resync func()) error {
	resync()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-f.msgs:
			fn(c)
		case <-f.resubs:
			resync()
		}
	}
}

// check makes the syncer compare generations (a resubscription) and
// waits until it has asked the store.
func (f *fakeNotifier) check(t *testing.T) {
	t.Helper()
	before := f.checks.Load()
	f.resubs <- struct{}{}
	testutil.WaitFor(t, "a comparison of generations", time.Millisecond, func() bool { return f.checks.Load() > before })
}

// write is a store write: the generation goes up and, when announce, the
// change is sent.
func (f *fakeNotifier) write(t *testing.T, kind, id string, announce bool) store.Change {
	t.Helper()
	c := store.Change{Gen: f.gen.Add(1), Kind: kind, ID: id, Namespace: store.DefaultNamespace}
	if announce {
		select {
		case f.msgs <- c:
		case <-time.After(10 * time.Second):
			t.Fatal("the syncer does not read announcements")
		}
	}
	return c
}

// deps records what the syncer did.
type deps struct {
	mu        sync.Mutex
	forgotten []string
	syncErr   error
	syncs     atomic.Int64
	loads     atomic.Int64
	all       atomic.Int64
	families  map[string][]string
	// revoked is the store's listing of revocations (RevokedTokens), or
	// listErr.
	revoked []store.RevokedToken
	listErr error
	lists   atomic.Int64
}

func (d *deps) RevokedTokens(context.Context) ([]store.RevokedToken, error) {
	d.lists.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.revoked), d.listErr
}

func (d *deps) Sync(context.Context) (bool, error) {
	d.syncs.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncErr == nil, d.syncErr
}
func (d *deps) Load(context.Context) error { d.loads.Add(1); return nil }
func (d *deps) ForgetAll()                 { d.all.Add(1) }
func (d *deps) ForgetJTI(jti string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgotten = append(d.forgotten, jti)
}
func (d *deps) AccessJTIs(_ context.Context, family string) ([]string, error) {
	return d.families[family], nil
}
func (d *deps) forgot() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.forgotten)
}

// clock is a settable time.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	s   *Syncer
	n   *fakeNotifier
	d   *deps
	m   *Mirror
	clk *clock
}

// testHold is how long the test mirrors keep an announced revocation.
const testHold = 10 * time.Minute

// start runs a syncer with poll (10s keeps the poll out of a test: the
// clock it runs on is real), keeping a revocation mirror on the same
// clock.
func start(t *testing.T, poll time.Duration) *env {
	t.Helper()
	n := newFake()
	d := &deps{families: map[string][]string{}}
	clk := &clock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	m, err := NewMirror(d, testHold, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{PollInterval: poll, StaleAfter: max(30*time.Second, 2*poll)}, n,
		Deps{Bundles: d, Tokens: d, Keys: d, Families: d, Revocations: m}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	run(t, s)
	e := &env{s: s, n: n, d: d, m: m, clk: clk}
	testutil.WaitFor(t, "the first sync", time.Millisecond, func() bool { return s.Healthy() })
	return e
}

// run runs s until the test ends, and then checks that Run returned
// context.Canceled.
func run(t *testing.T, s *Syncer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

func TestAppliesAnnouncementsInOrder(t *testing.T) {
	e := start(t, 10*time.Second)
	repairs := e.s.Repairs()
	all := e.d.all.Load()
	e.d.families["fam1"] = []string{"a1", "a2"}
	e.n.write(t, store.ChangeRevocation, "jti-1", true)
	e.n.write(t, store.ChangeRefresh, "fam1", true)
	syncs, loads := e.d.syncs.Load(), e.d.loads.Load()
	e.n.write(t, store.ChangeBundle, "r2", true)
	e.n.write(t, store.ChangeKey, "kid", true)
	e.n.write(t, store.ChangeClient, "cl", true)
	// A user changed and a session ended: read from the store on use,
	// nothing to repair.
	e.n.write(t, store.ChangeUser, "u_1", true)
	c := e.n.write(t, store.ChangeSession, "ses", true)
	testutil.WaitFor(t, "the applied generation", time.Millisecond, func() bool { return e.s.Generation() == c.Gen })
	if got := e.d.forgot(); !slices.Equal(got, []string{"jti-1", "a1", "a2"}) {
		t.Fatalf("forgotten jtis %v", got)
	}
	for _, jti := range []string{"jti-1", "a1", "a2"} {
		if !e.m.Revoked(jti) {
			t.Errorf("announced revocation of %s is not in the mirror", jti)
		}
	}
	if e.d.syncs.Load() != syncs+1 || e.d.loads.Load() != loads+1 {
		t.Fatalf("bundle syncs %d, key loads %d; want one each", e.d.syncs.Load()-syncs, e.d.loads.Load()-loads)
	}
	if e.s.Repairs() != repairs || e.d.all.Load() != all {
		t.Fatal("announcements in sequence caused a full repair")
	}
}

func TestGapInAnnouncementsRepairs(t *testing.T) {
	e := start(t, 10*time.Second)
	repairs := e.s.Repairs()
	all := e.d.all.Load()
	e.d.mu.Lock()
	e.d.revoked = []store.RevokedToken{{JTI: "lost", Exp: e.clk.now().Add(time.Hour)}}
	e.d.mu.Unlock()
	e.n.write(t, store.ChangeRevocation, "lost", false) // never announced
	c := e.n.write(t, store.ChangeRevocation, "seen", true)
	testutil.WaitFor(t, "a repair", time.Millisecond, func() bool { return e.s.Repairs() == repairs+1 })
	if e.s.Generation() != c.Gen {
		t.Fatalf("applied gen %d, want %d", e.s.Generation(), c.Gen)
	}
	if e.d.all.Load() != all+1 {
		t.Fatal("the repair kept cached token verifications")
	}
	// The mirror was loaded from the store: the lost revocation is there.
	if !e.m.Revoked("lost") {
		t.Fatal("the repair did not load the revocation mirror from the store")
	}
	if got := e.d.forgot(); !slices.Contains(got, "seen") {
		t.Fatalf("the announced revocation was not applied: %v", got)
	}
}

func TestPollRepairsSilentChanges(t *testing.T) {
	e := start(t, 5*time.Millisecond)
	repairs := e.s.Repairs()
	syncs := e.d.syncs.Load()
	e.n.write(t, store.ChangeBundle, "r9", false)
	testutil.WaitFor(t, "the poll to repair", time.Millisecond, func() bool { return e.s.Repairs() > repairs })
	if e.s.Generation() != e.n.gen.Load() || e.d.syncs.Load() == syncs {
		t.Fatalf("gen %d (store %d), bundle syncs %d", e.s.Generation(), e.n.gen.Load(), e.d.syncs.Load()-syncs)
	}
}

func TestResubscriptionCompares(t *testing.T) {
	e := start(t, 10*time.Second)
	repairs := e.s.Repairs()
	e.n.write(t, store.ChangeKey, "k", false)
	e.n.resubs <- struct{}{}
	testutil.WaitFor(t, "the resync to repair", time.Millisecond, func() bool { return e.s.Repairs() == repairs+1 })
	if e.s.Generation() != e.n.gen.Load() {
		t.Fatalf("gen %d, want %d", e.s.Generation(), e.n.gen.Load())
	}
}

// TestFailedApplyIsRepaired: a change that could not be applied (the
// store failed while reading the bundle) is not counted as applied; the
// next comparison repairs it.
func TestFailedApplyIsRepaired(t *testing.T) {
	e := start(t, 10*time.Second)
	e.d.mu.Lock()
	e.d.syncErr = errDown
	e.d.mu.Unlock()
	before := e.s.Generation()
	e.n.write(t, store.ChangeBundle, "r2", true)
	testutil.WaitFor(t, "the failed repair", time.Millisecond, func() bool { return e.d.syncs.Load() >= 2 })
	if e.s.Generation() != before {
		t.Fatal("a change that failed to apply was counted as applied")
	}
	e.d.mu.Lock()
	e.d.syncErr = nil
	e.d.mu.Unlock()
	e.n.resubs <- struct{}{}
	testutil.WaitFor(t, "the repair", time.Millisecond, func() bool { return e.s.Generation() == e.n.gen.Load() })
}

// TestGenerationWentBack: a store that lost its data (Redis restarted
// without persistence) starts again at a lower generation; the replica
// repairs and follows it.
func TestGenerationWentBack(t *testing.T) {
	e := start(t, 10*time.Second)
	e.n.write(t, store.ChangeKey, "k", true)
	e.n.write(t, store.ChangeKey, "k", true)
	testutil.WaitFor(t, "gen 2", time.Millisecond, func() bool { return e.s.Generation() == 2 })
	e.n.gen.Store(0)
	c := e.n.write(t, store.ChangeBundle, "r1", true) // gen 1: looks old
	e.n.resubs <- struct{}{}
	testutil.WaitFor(t, "the replica to follow", time.Millisecond, func() bool { return e.s.Generation() == c.Gen })
}

// TestUnreachableStoreIsFailStaticUntilStale: an unreachable store keeps
// the replica healthy until StaleAfter; once back, a stale replica repairs
// in full even without a gap.
func TestUnreachableStoreIsFailStaticUntilStale(t *testing.T) {
	e := start(t, 10*time.Second)
	if !e.s.Reachable() {
		t.Fatal("reachable store reported unreachable")
	}
	e.n.down.Store(true)
	e.n.resubs <- struct{}{}
	testutil.WaitFor(t, "unreachable", time.Millisecond, func() bool { return !e.s.Reachable() })
	e.clk.advance(29 * time.Second)
	if !e.s.Healthy() {
		t.Fatal("unhealthy before stale_after")
	}
	all := e.d.all.Load()
	e.n.check(t)
	e.clk.advance(2 * time.Second)
	if e.s.Healthy() || e.s.SinceSync() != 31*time.Second {
		t.Fatalf("healthy %v after %s without sync", e.s.Healthy(), e.s.SinceSync())
	}
	if e.d.all.Load() != all {
		t.Fatal("the token cache was dropped before stale_after")
	}
	// Stale: every cached token verification is dropped, once.
	for range 3 {
		e.n.check(t)
	}
	e.n.check(t) // the checks before it have finished
	if n := e.d.all.Load() - all; n != 1 {
		t.Fatalf("a stale replica forgot its token cache %d times, want once", n)
	}
	repairs, all := e.s.Repairs(), e.d.all.Load()
	e.n.down.Store(false)
	e.n.resubs <- struct{}{}
	testutil.WaitFor(t, "healthy again", time.Millisecond, func() bool { return e.s.Healthy() && e.s.Reachable() })
	if e.s.Repairs() != repairs+1 || e.d.all.Load() != all+1 {
		t.Fatal("a stale replica did not repair in full when the store came back")
	}
}

// TestStaleDropsCachedVerificationsOnTime: the cached token verifications
// are dropped when the replica turns stale, not at the next poll (a minute
// away here): a cached token is accepted for StaleAfter at most.
func TestStaleDropsCachedVerificationsOnTime(t *testing.T) {
	e := start(t, time.Minute)
	e.n.down.Store(true)
	e.clk.advance(2*time.Minute - 20*time.Millisecond) // StaleAfter is 2m
	all := e.d.all.Load()
	e.n.check(t) // fails, healthy still: the timer is set 20 ms ahead
	e.clk.advance(time.Second)
	testutil.WaitFor(t, "the cached verifications dropped at stale_after", time.Millisecond, func() bool { return e.d.all.Load() == all+1 })
	if e.s.Healthy() {
		t.Fatal("healthy past stale_after")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{PollInterval: 0, StaleAfter: time.Second},
		{PollInterval: time.Second, StaleAfter: time.Second},
		{PollInterval: -time.Second, StaleAfter: -time.Second},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if _, err := New(Default(), newFake(), Deps{}, nil); err == nil {
		t.Fatal("New without dependencies succeeded")
	}
}
