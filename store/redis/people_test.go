package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
	"github.com/verdictpdp/verdict/store/storetest"
)

func TestPeopleConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunPeople(t, opener(srv.URL()))
}

func TestAPIKeysConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunAPIKeys(t, opener(srv.URL()))
}

func TestRosterConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunRoster(t, opener(srv.URL()))
}

// TestPeopleConformanceSentinel: the people records behind Sentinel.
func TestPeopleConformanceSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	storetest.RunPeople(t, opener("redis+sentinel://"+sentinel.Addr()+"/mymaster"))
}

// TestPeopleConformanceCluster: every people key carries the hash tag, so
// the transactions, scripts and MGETs work in a Cluster too.
func TestPeopleConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	c := redistest.StartCluster(t, 3)
	storetest.RunPeople(t, opener(c.URL()))
	storetest.RunRoster(t, opener(c.URL()))
}

// peopleACLCommands are the commands the people records need besides
// aclCommands (docs/operations.md should list them too).
const peopleACLCommands = "+del +mget +pexpireat +hincrby +zrange +zrem +zcard +zremrangebylex +sadd +srem +scard +smembers +evalsha"

// TestPeopleACLUser: a Redis user allowed only the documented commands
// and the people ones runs the people conformance suite.
func TestPeopleACLUser(t *testing.T) {
	srv := redistest.Start(t)
	args := append([]string{"ACL", "SETUSER", "verdict", "on", ">pw", "resetkeys", "~{t*", "resetchannels", "&t*", "-@all"},
		strings.Fields(aclCommands+" "+peopleACLCommands)...)
	if _, err := redistest.Do(srv.Addr(), args...); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	storetest.RunPeople(t, opener("redis://verdict:pw@"+srv.Addr()+"/0"))
	storetest.RunAPIKeys(t, opener("redis://verdict:pw@"+srv.Addr()+"/0"))
	storetest.RunRoster(t, opener("redis://verdict:pw@"+srv.Addr()+"/0"))
}

// TestPeopleAnnouncements: user writes and session deletions increment the
// generation once and publish their Change, in order; the other people
// writes and every read leave it alone.
func TestPeopleAnnouncements(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := open(t, srv.URL(), redisstore.Options{Now: storetest.NewClock(storetest.T0).Now})
	ns := store.DefaultNamespace
	c := subscribe(t, s)

	exp := storetest.T0.Add(time.Hour)
	user := &store.Change{Kind: store.ChangeUser, ID: "u/1"}
	steps := []struct {
		name     string
		write    func() error
		announce *store.Change // nil: not announced
	}{
		{"CreateUser", func() error { return s.CreateUser(ctx, ns, storetest.User("u/1", "a@example.com")) }, user},
		{"CreateUser conflict", func() error { _ = s.CreateUser(ctx, ns, storetest.User("u/1", "b@example.com")); return nil }, nil},
		{"UpdateUser", func() error { return s.UpdateUser(ctx, ns, storetest.User("u/1", "b@example.com")) }, user},
		{"UpdateUser unknown", func() error { _ = s.UpdateUser(ctx, ns, storetest.User("u9", "c@example.com")); return nil }, nil},
		{"PutSession", func() error { return s.PutSession(ctx, ns, storetest.Session("s1", "u/1", storetest.T0)) }, nil},
		{"DeleteSession", func() error { _, err := s.DeleteSession(ctx, ns, "s1"); return err }, &store.Change{Kind: store.ChangeSession, ID: "s1"}},
		{"DeleteSession again", func() error { _, _ = s.DeleteSession(ctx, ns, "s1"); return nil }, nil},
		{"other writes", func() error {
			_, err1 := s.AddFailure(ctx, ns, "k", exp)
			_, _, err2 := func() (store.AuthCode, bool, error) {
				if err := s.CreateCode(ctx, ns, storetest.Code("h")); err != nil {
					return store.AuthCode{}, false, err
				}
				return s.RedeemCode(ctx, ns, "h", "f", "j")
			}()
			_, err3 := s.PseudonymizeAudit(ctx, ns, "u/1", "anon")
			_, err4 := s.PruneAudit(ctx, exp)
			return errors.Join(err1, err2, err3, err4,
				s.LockUntil(ctx, ns, "k", exp),
				s.ClearAttempts(ctx, ns, "k"),
				s.AddUserFamily(ctx, ns, "u/1", store.UserFamily{Family: "f", ClientID: "c", ExpiresAt: exp}),
				s.DeleteUserFamilies(ctx, ns, "u/1"),
				s.PutConsent(ctx, ns, store.Consent{UserID: "u/1", ClientID: "c", GrantedAt: storetest.T0}),
				s.DeleteUserConsents(ctx, ns, "u/1"),
				s.AppendAudit(ctx, ns, storetest.Event("e1", "u/1", storetest.T0)))
		}, nil},
		{"reads", func() error {
			_, err1 := s.User(ctx, ns, "u/1")
			_, err2 := s.UserByEmail(ctx, ns, "b@example.com")
			_, err3 := s.ListUsers(ctx, ns)
			_, err4 := s.UserSessions(ctx, ns, "u/1")
			_, err5 := s.Attempts(ctx, ns, "k")
			_, err6 := s.UserAudit(ctx, ns, "anon")
			return errors.Join(err1, err2, err3, err4, err5, err6)
		}, nil},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, ns, "u/1") }, user},
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
	got, _ := c.snapshot()
	storetest.MustDeepEqual(t, got, want)
}

// TestPeopleTTLs: the people records that expire carry a Redis expiry at
// their end (an index or a family hash at its last member's), and the
// others none.
func TestPeopleTTLs(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	s := open(t, srv.URL(), redisstore.Options{})
	ns := store.DefaultNamespace
	now := time.Now()
	tag := "{" + redisstore.DefaultPrefix + "}" + ns

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
	near := func(key string, want time.Time) {
		t.Helper()
		if d := expireTime(key).Sub(want); d < 0 || d > time.Millisecond {
			t.Errorf("%s expires at %v, want %v (to the millisecond after)", key, expireTime(key), want)
		}
	}

	long, short := storetest.Session("s/long", "u/1", now), storetest.Session("s/short", "u/1", now)
	long.ExpiresAt, short.ExpiresAt = now.Add(2*time.Hour), now.Add(time.Hour)
	for _, sess := range []store.Session{long, short} {
		if err := s.PutSession(ctx, ns, sess); err != nil {
			t.Fatal(err)
		}
	}
	near(tag+"/sessions/s/long", long.ExpiresAt)
	near(tag+"/sessions/s/short", short.ExpiresAt)
	near(tag+"/user-sessions/u/1", long.ExpiresAt)

	code := storetest.Code("h")
	code.ExpiresAt = now.Add(10 * time.Minute)
	if err := s.CreateCode(ctx, ns, code); err != nil {
		t.Fatal(err)
	}
	near(tag+"/codes/h", code.ExpiresAt)
	if _, _, err := s.RedeemCode(ctx, ns, "h", "f", "j"); err != nil {
		t.Fatal(err)
	}
	near(tag+"/codes/h", code.ExpiresAt)

	if _, err := s.AddFailure(ctx, ns, "k", now.Add(15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	near(tag+"/attempts/k", now.Add(15*time.Minute))
	if err := s.LockUntil(ctx, ns, "k", now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	near(tag+"/attempts/k", now.Add(30*time.Minute))

	for _, f := range []store.UserFamily{
		{Family: "f1", ClientID: "c", ExpiresAt: now.Add(2 * time.Hour)},
		{Family: "f2", ClientID: "c", ExpiresAt: now.Add(time.Hour)},
	} {
		if err := s.AddUserFamily(ctx, ns, "u/1", f); err != nil {
			t.Fatal(err)
		}
	}
	near(tag+"/user-families/u/1", now.Add(2*time.Hour))

	if err := s.CreateUser(ctx, ns, storetest.User("u/1", "a@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsent(ctx, ns, store.Consent{UserID: "u/1", ClientID: "c", GrantedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, ns, storetest.Event("e1", "u/1", now)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{tag + "/users", tag + "/user-emails", tag + "/consents/u/1", tag + "/audit/u/1",
		tag + "/audit-users", "{" + redisstore.DefaultPrefix + "}audit-namespaces"} {
		if n := rc.Exists(ctx, key).Val(); n != 1 {
			t.Errorf("%s does not exist", key)
		}
		if got := expireTime(key); !got.IsZero() {
			t.Errorf("%s expires at %v, want never", key, got)
		}
	}

	// Redis drops an attempts record at its end on its own clock.
	if _, err := s.AddFailure(ctx, ns, "brief", time.Now().Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Redis to drop the attempts record", 20*time.Millisecond, func() bool {
		return rc.Exists(ctx, tag+"/attempts/brief").Val() == 0
	})
}

// TestPeopleRefusedWritesWriteNothing: people writes refused for their
// namespace leave no key in Redis.
func TestPeopleRefusedWritesWriteNothing(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	s := open(t, srv.URL(), redisstore.Options{})
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for _, op := range storetest.PeopleOps(s) {
			_ = op(context.Background(), ns)
		}
	}
	if _, err := s.PruneAudit(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if keys := rc.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("keys %q after refused writes, want none", keys)
	}
}

// TestPeopleAtomicityAcrossStores: two Store values (two replicas) racing
// on one Redis: one creation per email, one first redemption per code, and
// every failure counted.
func TestPeopleAtomicityAcrossStores(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := open(t, srv.URL(), redisstore.Options{})
	b := open(t, srv.URL(), redisstore.Options{})
	ns := store.DefaultNamespace
	code := storetest.Code("h")
	code.ExpiresAt = time.Now().Add(time.Hour)
	if err := a.CreateCode(ctx, ns, code); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	var creations, firsts atomic.Int32
	for i := range n {
		s := []*redisstore.Store{a, b}[i%2]
		wg.Go(func() {
			switch err := s.CreateUser(ctx, ns, storetest.User(fmt.Sprintf("u%d", i), "same@example.com")); {
			case err == nil:
				creations.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("CreateUser: %v", err)
			}
			if _, first, err := s.RedeemCode(ctx, ns, "h", fmt.Sprintf("f%d", i), "j"); err != nil {
				t.Errorf("RedeemCode: %v", err)
			} else if first {
				firsts.Add(1)
			}
			if _, err := s.AddFailure(ctx, ns, "k", time.Now().Add(time.Hour)); err != nil {
				t.Errorf("AddFailure: %v", err)
			}
		})
	}
	wg.Wait()
	if creations.Load() != 1 || firsts.Load() != 1 {
		t.Fatalf("%d creations and %d first redemptions succeeded, want 1 and 1", creations.Load(), firsts.Load())
	}
	if got, err := b.Attempts(ctx, ns, "k"); err != nil || got.Failures != n {
		t.Fatalf("Attempts = %+v, %v; want %d failures", got, err, n)
	}
}
