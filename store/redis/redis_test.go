package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
	"github.com/verdictpdp/verdict/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prefixes makes every store of a test run use keys of its own.
var prefixes atomic.Int64

// opener opens stores on url, each with a fresh key prefix, closed when
// the test ends.
func opener(url string) storetest.Opener {
	return func(t *testing.T, now func() time.Time) store.Store {
		return open(t, url, redisstore.Options{Now: now, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1))})
	}
}

func open(t *testing.T, url string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, opener(srv.URL()))
}

// TestConformanceSentinel: the store behind Sentinel, found through the
// master's name.
func TestConformanceSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	url := "redis+sentinel://" + sentinel.Addr() + "/mymaster"
	storetest.Run(t, opener(url))

	s := open(t, url, redisstore.Options{})
	ch := subscribe(t, s)
	if err := s.CreateClient(context.Background(), store.DefaultNamespace, storetest.Client("c")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the announcement", 10*time.Millisecond, func() bool { got, _ := ch.snapshot(); return len(got) == 1 })
	// The data is on the master Sentinel named.
	if n, err := redistest.Do(master.Addr(), "HLEN", "{"+redisstore.DefaultPrefix+"}default/clients"); err != nil || n != "1" {
		t.Fatalf("HLEN on the master = %q, %v; want 1", n, err)
	}
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	c := redistest.StartCluster(t, 3)
	storetest.Run(t, opener(c.URL()))

	// Announcements cross the cluster: the subscriber's node need not be
	// the one holding the keys.
	s := open(t, c.URL(), redisstore.Options{})
	ch := subscribe(t, s)
	if err := s.PutKey(context.Background(), store.DefaultNamespace, storetest.Key("k", storetest.T0)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the announcement", 10*time.Millisecond, func() bool { got, _ := ch.snapshot(); return len(got) == 1 })
	if g, err := s.Generation(context.Background()); err != nil || g != 1 {
		t.Fatalf("Generation = %d, %v; want 1", g, err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// rawClient is a plain go-redis client to srv, for looking at keys.
func rawClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTTLs: records that expire carry a Redis expiry at their exp, and the
// others none; Redis then really drops them.
func TestTTLs(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	s := open(t, srv.URL(), redisstore.Options{})
	ns := store.DefaultNamespace
	now := time.Now()
	exp := now.Add(time.Hour)

	if err := s.Revoke(ctx, ns, "j", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseOnce(ctx, ns, "once", exp); err != nil {
		t.Fatal(err)
	}
	f := storetest.Family("f", "h1")
	f.ExpiresAt = now.Add(2 * time.Hour)
	if err := s.CreateFamily(ctx, ns, f); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, ns, storetest.Key("k", now)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, ns, storetest.Client("c")); err != nil {
		t.Fatal(err)
	}
	expireTime := func(key string) time.Time {
		t.Helper()
		ms, err := rc.PExpireTime(ctx, key).Result()
		if err != nil {
			t.Fatalf("PEXPIRETIME %s: %v", key, err)
		}
		if ms < 0 {
			return time.Time{}
		}
		return time.UnixMilli(int64(ms / time.Millisecond))
	}
	near := func(name string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < 0 || d > time.Millisecond {
			t.Errorf("%s expires at %v, want %v (to the millisecond after)", name, got, want)
		}
	}
	tag := "{" + redisstore.DefaultPrefix + "}" + ns
	near("revocation", expireTime(tag+"/revoked/j"), exp)
	near("one-time id", expireTime(tag+"/once/once"), exp)
	near("refresh family", expireTime(tag+"/refresh/f"), f.ExpiresAt)
	for _, key := range []string{tag + "/keys", tag + "/clients", s.GenKey()} {
		if got := expireTime(key); !got.IsZero() {
			t.Errorf("%s expires at %v, want never", key, got)
		}
	}

	// A rotation moves the family's expiry; revoking it keeps it.
	next := storetest.Family("f", "h2")
	next.ExpiresAt = now.Add(3 * time.Hour)
	if err := s.Rotate(ctx, ns, "f", []byte("h1"), next); err != nil {
		t.Fatal(err)
	}
	near("rotated family", expireTime(tag+"/refresh/f"), next.ExpiresAt)
	if _, err := s.RevokeFamily(ctx, ns, "f"); err != nil {
		t.Fatal(err)
	}
	near("revoked family", expireTime(tag+"/refresh/f"), next.ExpiresAt)

	// Redis drops what expired, on its own clock.
	if err := s.Revoke(ctx, ns, "short", time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rc.Exists(ctx, tag+"/revoked/short").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a revocation past its exp is still in Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, err := s.Revoked(ctx, ns, "short"); err != nil || ok {
		t.Errorf("Revoked(expired) = %v, %v", ok, err)
	}
}

// changes subscribes to s and collects what it announces.
type changes struct {
	mu      sync.Mutex
	got     []store.Change
	resyncs int
}

func (c *changes) add(ch store.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ch)
}

func (c *changes) resync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resyncs++
}

func (c *changes) snapshot() ([]store.Change, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), c.resyncs
}

// subscribe runs s.Subscribe until the test ends and waits for the first
// subscription.
func subscribe(t *testing.T, s *redisstore.Store) *changes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &changes{}
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, c.add, c.resync) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe returned %v, want context.Canceled", err)
		}
	})
	testutil.WaitFor(t, "the first subscription", 10*time.Millisecond, func() bool { _, n := c.snapshot(); return n >= 1 })
	return c
}

// TestAnnouncements: every cache-relevant write increments the generation
// exactly once and publishes its Change, in generation order; the other
// writes and all reads leave the generation alone.
func TestAnnouncements(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := open(t, srv.URL(), redisstore.Options{Now: storetest.NewClock(storetest.T0).Now})
	ns := store.DefaultNamespace
	if g, err := s.Generation(ctx); err != nil || g != 0 {
		t.Fatalf("Generation before any write = %d, %v", g, err)
	}
	c := subscribe(t, s)

	exp := storetest.T0.Add(time.Hour)
	steps := []struct {
		name     string
		write    func() error
		announce *store.Change // nil: not announced
	}{
		{"PutKey", func() error { return s.PutKey(ctx, ns, storetest.Key("k1", storetest.T0)) }, &store.Change{Kind: store.ChangeKey, ID: "k1"}},
		{"CreateClient", func() error { return s.CreateClient(ctx, ns, storetest.Client("c1")) }, &store.Change{Kind: store.ChangeClient, ID: "c1"}},
		{"CreateClient conflict", func() error { _ = s.CreateClient(ctx, ns, storetest.Client("c1")); return nil }, nil},
		{"UpdateClient", func() error { return s.UpdateClient(ctx, ns, storetest.Client("c1")) }, &store.Change{Kind: store.ChangeClient, ID: "c1"}},
		{"CreateFamily", func() error { return s.CreateFamily(ctx, ns, storetest.Family("f1", "h1")) }, nil},
		{"Rotate", func() error { return s.Rotate(ctx, ns, "f1", []byte("h1"), storetest.Family("f1", "h2")) }, nil},
		{"RevokeFamily", func() error { _, err := s.RevokeFamily(ctx, ns, "f1"); return err }, &store.Change{Kind: store.ChangeRefresh, ID: "f1"}},
		{"Revoke", func() error { return s.Revoke(ctx, ns, "j/1", exp) }, &store.Change{Kind: store.ChangeRevocation, ID: "j/1"}},
		{"Revoke earlier", func() error { return s.Revoke(ctx, ns, "j/1", storetest.T0) }, nil},
		{"UseOnce", func() error { _, err := s.UseOnce(ctx, ns, "once", exp); return err }, nil},
		{"PutRevision", func() error {
			_, err := s.PutRevision(ctx, ns, storetest.Revision("v1", "sha256:1", storetest.T0), []byte("a"))
			return err
		}, nil},
		{"SetActive", func() error { return s.SetActive(ctx, ns, "v1") }, &store.Change{Kind: store.ChangeBundle, ID: "v1"}},
		{"SetActive unknown", func() error { _ = s.SetActive(ctx, ns, "v9"); return nil }, nil},
		{"DeleteClient", func() error { return s.DeleteClient(ctx, ns, "c1") }, &store.Change{Kind: store.ChangeClient, ID: "c1"}},
		{"DeleteKey", func() error { return s.DeleteKey(ctx, ns, "k1") }, &store.Change{Kind: store.ChangeKey, ID: "k1"}},
		{"reads", func() error {
			_, err1 := s.Keys(ctx, ns)
			_, err2 := s.ListClients(ctx, ns)
			_, err3 := s.Revoked(ctx, ns, "j/1")
			_, err4 := s.Family(ctx, ns, "f1")
			_, err5 := s.ActiveRevision(ctx, ns)
			_, err6 := s.Archive(ctx, ns, "v1")
			return errors.Join(err1, err2, err3, err4, err5, err6)
		}, nil},
	}
	var want []store.Change
	gen := uint64(0)
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.announce != nil {
			gen++
			ch := *st.announce
			ch.Gen, ch.Namespace = gen, ns
			want = append(want, ch)
		}
		if g, err := s.Generation(ctx); err != nil || g != gen {
			t.Fatalf("after %s: Generation = %d, %v; want %d", st.name, g, err, gen)
		}
	}
	testutil.WaitFor(t, "every announcement", 10*time.Millisecond, func() bool { got, _ := c.snapshot(); return len(got) >= len(want) })
	got, resyncs := c.snapshot()
	storetest.MustDeepEqual(t, got, want)
	if resyncs != 1 {
		t.Errorf("resyncs = %d, want 1 (no resubscription happened)", resyncs)
	}
}

// TestSubscribeSkipsMalformed: announcements that are not Changes are
// skipped, and the next good one still arrives.
func TestSubscribeSkipsMalformed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	s := open(t, srv.URL(), redisstore.Options{})
	c := subscribe(t, s)
	for _, bad := range []string{"not json", `{"gen":"x"}`, `{"kind":"client","id":"a"}`, `{"gen":3}`, ""} {
		if err := rc.Publish(ctx, s.Channel(), bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateClient(ctx, store.DefaultNamespace, storetest.Client("a")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the good announcement", 10*time.Millisecond, func() bool { got, _ := c.snapshot(); return len(got) >= 1 })
	got, _ := c.snapshot()
	storetest.MustDeepEqual(t, got, []store.Change{{Gen: 1, Kind: store.ChangeClient, ID: "a", Namespace: store.DefaultNamespace}})
}

// TestSubscribeResyncsAfterRestart: when Redis dies and comes back on the
// same port, Subscribe resubscribes, says so with resync, and delivers the
// changes announced after that.
func TestSubscribeResyncsAfterRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := open(t, srv.URL(), redisstore.Options{})
	c := subscribe(t, s)

	srv.Stop()
	if _, err := s.Generation(ctx); err == nil {
		t.Fatal("Generation succeeded with Redis down")
	}
	srv.Restart()
	testutil.WaitFor(t, "a resync after the restart", 10*time.Millisecond, func() bool { _, n := c.snapshot(); return n >= 2 })
	if err := s.PutKey(ctx, store.DefaultNamespace, storetest.Key("k", storetest.T0)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the change after the restart", 10*time.Millisecond, func() bool { got, _ := c.snapshot(); return len(got) == 1 })
	got, _ := c.snapshot()
	// The restarted Redis kept nothing (no persistence in tests): gen 1.
	storetest.MustDeepEqual(t, got, []store.Change{{Gen: 1, Kind: store.ChangeKey, ID: "k", Namespace: store.DefaultNamespace}})
}

// TestRefusedWritesWriteNothing: writes refused for their namespace or
// arguments leave no key in Redis.
func TestRefusedWritesWriteNothing(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	s := open(t, srv.URL(), redisstore.Options{})
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for _, op := range storetest.Ops(s) {
			_ = op(context.Background(), ns)
		}
	}
	if keys := rc.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("keys %q after refused writes, want none", keys)
	}
}

// TestRevokedIndexIsPruned: the sorted set RevokedTokens reads is written
// in the same transaction as the revocation, and every revocation removes
// the index entries that have expired, so that it holds no more than the
// revocations of one token lifetime.
func TestRevokedIndexIsPruned(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	clk := storetest.NewClock(storetest.T0)
	s := open(t, srv.URL(), redisstore.Options{Now: clk.Now})
	ns := store.DefaultNamespace
	index := "{" + redisstore.DefaultPrefix + "}" + ns + "/revoked-index"
	for i := range 3 {
		if err := s.Revoke(ctx, ns, fmt.Sprintf("old%d", i), storetest.T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.ZCard(ctx, index).Val(); n != 3 {
		t.Fatalf("ZCARD %s = %d, want 3", index, n)
	}
	clk.Set(storetest.T0.Add(time.Minute))
	if err := s.Revoke(ctx, ns, "new", storetest.T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := rc.ZRange(ctx, index, 0, -1).Val(); len(got) != 1 || got[0] != "new" {
		t.Fatalf("index after a revocation past the others' exp = %q, want [new]", got)
	}
	if score := rc.ZScore(ctx, index, "new").Val(); int64(score) != storetest.T0.Add(time.Hour).UnixMilli() {
		t.Fatalf("score = %v, want the exp in unix milliseconds", score)
	}
}

// TestAtomicityAcrossStores: two Store values (two replicas) racing on one
// Redis: one rotation wins and one first use, as within one process.
func TestAtomicityAcrossStores(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := open(t, srv.URL(), redisstore.Options{})
	b := open(t, srv.URL(), redisstore.Options{})
	ns := store.DefaultNamespace
	f := storetest.Family("f", "h0")
	f.ExpiresAt = time.Now().Add(time.Hour)
	if err := a.CreateFamily(ctx, ns, f); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var rotations, firsts atomic.Int32
	for i := range 40 {
		s := []*redisstore.Store{a, b}[i%2]
		wg.Go(func() {
			next := storetest.Family("f", fmt.Sprintf("h%d", i+1))
			next.ExpiresAt = f.ExpiresAt
			switch err := s.Rotate(ctx, ns, "f", []byte("h0"), next); {
			case err == nil:
				rotations.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("Rotate: %v", err)
			}
			if ok, err := s.UseOnce(ctx, ns, "jti", time.Now().Add(time.Hour)); err != nil {
				t.Errorf("UseOnce: %v", err)
			} else if ok {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if rotations.Load() != 1 || firsts.Load() != 1 {
		t.Fatalf("%d rotations and %d first uses succeeded, want 1 and 1", rotations.Load(), firsts.Load())
	}
}

func TestOpenUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://user:s3cret@" + srv.Addr() + "/0"
	srv.Stop()
	_, err := redisstore.Open(context.Background(), url, redisstore.Options{DialTimeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("Open of a stopped Redis succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q contains the password", err)
	}
	if !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("error %q does not say Redis is unreachable", err)
	}
}

func TestZeroStore(t *testing.T) {
	var s redisstore.Store
	ctx := context.Background()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping on the zero Store succeeded")
	}
	if _, err := s.Generation(ctx); err == nil {
		t.Error("Generation on the zero Store succeeded")
	}
	if err := s.Subscribe(ctx, func(store.Change) {}, func() {}); err == nil {
		t.Error("Subscribe on the zero Store succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// aclCommands are the commands docs/operations.md tells operators to grant
// Verdict's Redis user; TestACLUser proves they are enough.
const aclCommands = "+ping +hello +get +set +setnx +incr +hget +hset +hdel +hexists +hgetall +zadd +zrangebyscore +zremrangebyscore +watch +unwatch +multi +exec +discard +eval +publish +subscribe +unsubscribe"

// TestACLUser: a Redis user allowed only the documented commands, keys and
// channel runs the whole conformance suite and the announcements.
func TestACLUser(t *testing.T) {
	srv := redistest.Start(t)
	// Every store of the suite has a prefix t<N>:, so the user gets the keys
	// {t...} and the channels t....
	args := append([]string{"ACL", "SETUSER", "verdict", "on", ">pw", "resetkeys", "~{t*", "resetchannels", "&t*", "-@all"}, strings.Fields(aclCommands)...)
	if _, err := redistest.Do(srv.Addr(), args...); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	url := "redis://verdict:pw@" + srv.Addr() + "/0"
	storetest.Run(t, opener(url))

	s := open(t, url, redisstore.Options{Prefix: "tacl:"})
	c := subscribe(t, s)
	if err := s.PutKey(context.Background(), store.DefaultNamespace, storetest.Key("k", storetest.T0)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the announcement", 10*time.Millisecond, func() bool { got, _ := c.snapshot(); return len(got) == 1 })
	if _, err := s.Pepper(context.Background(), func() ([]byte, error) { return []byte("p"), nil }); err != nil {
		t.Fatalf("Pepper: %v", err)
	}
}

// TestPepperShared: the first Pepper call sets it, every later one (from
// any replica) gets the same.
func TestPepperShared(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := open(t, srv.URL(), redisstore.Options{})
	b := open(t, srv.URL(), redisstore.Options{})
	p1, err := a.Pepper(ctx, func() ([]byte, error) { return []byte("first"), nil })
	if err != nil || string(p1) != "first" {
		t.Fatalf("first Pepper = %q, %v", p1, err)
	}
	p2, err := b.Pepper(ctx, func() ([]byte, error) { return []byte("second"), nil })
	if err != nil || string(p2) != "first" {
		t.Fatalf("second Pepper = %q, %v; want the first one", p2, err)
	}
	if _, err := b.Pepper(ctx, func() ([]byte, error) { return nil, errors.New("boom") }); err != nil {
		t.Errorf("an existing pepper needs no new one: %v", err)
	}
}

// TestOutageIsErrUnavailable: with Redis gone, reads and writes fail with
// store.ErrUnavailable (a 503 for callers), and a missing record is still
// ErrNotFound once Redis is back.
func TestOutageIsErrUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), redisstore.Options{DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	srv.Stop()
	if _, err := s.Client(ctx, store.DefaultNamespace, "gw"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read while Redis is down: %v, want store.ErrUnavailable", err)
	}
	if err := s.Revoke(ctx, store.DefaultNamespace, "j1", time.Now().Add(time.Minute)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write while Redis is down: %v, want store.ErrUnavailable", err)
	}
	if _, err := s.Generation(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("generation while Redis is down: %v", err)
	}
	srv.Restart()
	var err error
	for i := 0; i < 100; i++ {
		if _, err = s.Client(ctx, store.DefaultNamespace, "gw"); errors.Is(err, store.ErrNotFound) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after Redis is back: %v, want store.ErrNotFound", err)
}
