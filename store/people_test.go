package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/store/storetest"
)

// TestPeopleConformance runs the shared semantics of store.People against
// Bolt.
func TestPeopleConformance(t *testing.T) {
	storetest.RunPeople(t, boltOpener)
}

// TestAPIKeysConformance runs the shared semantics of store.APIKeys
// against Bolt.
func TestAPIKeysConformance(t *testing.T) {
	storetest.RunAPIKeys(t, boltOpener)
}

// boltOpener opens a new embedded store for a conformance test.
func boltOpener(t *testing.T, now func() time.Time) store.Store {
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{Now: now})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// TestSweepPeople: Sweep deletes the people records that have expired at
// its time (codes, login attempts, user families, sessions with their
// index entries) and keeps the live ones and those that never expire.
func TestSweepPeople(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	ns := store.DefaultNamespace
	now := storetest.T0.Add(time.Hour)
	dead, live := now, now.Add(time.Nanosecond)

	for id, exp := range map[string]time.Time{"s-dead": dead, "s-live": live} {
		s := storetest.Session(id, "u1", storetest.T0)
		s.ExpiresAt = exp
		if err := b.PutSession(ctx, ns, s); err != nil {
			t.Fatal(err)
		}
		c := storetest.Code("h" + id)
		c.ExpiresAt = exp
		if err := b.CreateCode(ctx, ns, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddFailure(ctx, ns, "k"+id, exp); err != nil {
			t.Fatal(err)
		}
		if err := b.AddUserFamily(ctx, ns, "u1", store.UserFamily{Family: "f" + id, ClientID: "c", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CreateUser(ctx, ns, storetest.User("u1", "u1@example.com")); err != nil {
		t.Fatal(err)
	}
	if err := b.PutConsent(ctx, ns, store.Consent{UserID: "u1", ClientID: "c", GrantedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(ctx, ns, storetest.Event("e1", "u1", storetest.T0)); err != nil {
		t.Fatal(err)
	}

	if n, err := b.Sweep(ctx, now); err != nil || n != 4 {
		t.Fatalf("Sweep = %d, %v; want 4 (a session, a code, an attempts record, a family)", n, err)
	}
	for kind, want := range map[string]int{
		"sessions": 1, "user_sessions": 1, "auth_codes": 1, "login_attempts": 1, "user_families": 1,
		"users": 1, "user_emails": 1, "consents": 1, "audit": 1,
	} {
		if got := store.CountRecords(t, b, ns, kind); got != want {
			t.Errorf("%s holds %d records after Sweep, want %d", kind, got, want)
		}
	}
	if _, err := b.Session(ctx, ns, "s-live"); err != nil {
		t.Errorf("the live session after Sweep: %v", err)
	}
	store.CheckConsistent(t, b)
}
