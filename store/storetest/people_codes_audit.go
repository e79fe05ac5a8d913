package storetest

// Conformance tests of the people records: authorization codes, failed
// sign-ins, audit events, namespaces and contexts (RunPeople runs them).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

func testCodes(t *testing.T, open Opener) {
	ctx := context.Background()
	p, clk := startPeople(t, open)
	ns := store.DefaultNamespace

	for _, h := range []string{"h1", "h2", "h3"} {
		if err := p.CreateCode(ctx, ns, Code(h)); err != nil {
			t.Fatalf("CreateCode(%s): %v", h, err)
		}
	}
	mustFail(t, "CreateCode of an existing hash", p.CreateCode(ctx, ns, Code("h1")), store.ErrConflict)
	mustFail(t, "CreateCode without hash", p.CreateCode(ctx, ns, Code("")), nil)
	noExpiry := Code("h9")
	noExpiry.ExpiresAt = time.Time{}
	mustFail(t, "CreateCode without expiry", p.CreateCode(ctx, ns, noExpiry), nil)
	if _, _, err := p.RedeemCode(ctx, ns, "h9", "f", "j"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RedeemCode of a refused code = %v, want ErrNotFound", err)
	}

	want := Code("h1")
	want.Redeemed, want.Family, want.AccessJTI = true, "fam1", "jti1"
	got, first, err := p.RedeemCode(ctx, ns, "h1", "fam1", "jti1")
	if err != nil || !first {
		t.Fatalf("first RedeemCode = %v, %v; want first", first, err)
	}
	MustDeepEqual(t, got, want)

	// A replay gets what the first redemption recorded.
	got, first, err = p.RedeemCode(ctx, ns, "h1", "fam2", "jti2")
	if err != nil || first {
		t.Fatalf("replayed RedeemCode = %v, %v; want not first", first, err)
	}
	MustDeepEqual(t, got, want)

	for _, h := range []string{"nope", ""} {
		if _, first, err := p.RedeemCode(ctx, ns, h, "f", "j"); !errors.Is(err, store.ErrNotFound) || first {
			t.Errorf("RedeemCode(%q) = %v, %v; want ErrNotFound", h, first, err)
		}
	}

	exp := Code("h2").ExpiresAt
	clk.Set(exp.Add(-time.Nanosecond))
	if _, first, err := p.RedeemCode(ctx, ns, "h2", "f", "j"); err != nil || !first {
		t.Errorf("RedeemCode just before expiry = %v, %v; want first", first, err)
	}
	clk.Set(exp)
	for _, h := range []string{"h1", "h2", "h3"} {
		if _, first, err := p.RedeemCode(ctx, ns, h, "f", "j"); !errors.Is(err, store.ErrNotFound) || first {
			t.Errorf("RedeemCode(%s) at its ExpiresAt = %v, %v; want ErrNotFound", h, first, err)
		}
	}
}

// testRedeemConcurrent: of concurrent redemptions of one code exactly one
// is first, and every other gets what that one recorded.
func testRedeemConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace
	if err := p.CreateCode(ctx, ns, Code("h")); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var mu sync.Mutex
	var firsts []int
	got := make([]store.AuthCode, n)
	race(n, func(i int) {
		c, first, err := p.RedeemCode(ctx, ns, "h", fmt.Sprintf("f%d", i), fmt.Sprintf("j%d", i))
		if err != nil {
			t.Errorf("RedeemCode: %v", err)
			return
		}
		got[i] = c
		if first {
			mu.Lock()
			firsts = append(firsts, i)
			mu.Unlock()
		}
	})
	if len(firsts) != 1 {
		t.Fatalf("%d of %d concurrent redemptions were first, want exactly 1", len(firsts), n)
	}
	w := firsts[0]
	for i, c := range got {
		if !c.Redeemed || c.Family != fmt.Sprintf("f%d", w) || c.AccessJTI != fmt.Sprintf("j%d", w) {
			t.Errorf("redemption %d got %+v, want the first one's (f%d, j%d)", i, c, w, w)
		}
	}
}

// mustAttempts fails t unless key's record is want (times compared with
// Equal).
func mustAttempts(t *testing.T, p store.People, ns, key string, want store.LoginAttempts) {
	t.Helper()
	got, err := p.Attempts(context.Background(), ns, key)
	if err != nil {
		t.Fatalf("Attempts(%s): %v", key, err)
	}
	if got.Failures != want.Failures || !got.LockedUntil.Equal(want.LockedUntil) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("Attempts(%s) = %+v, want %+v", key, got, want)
	}
}

func testAttempts(t *testing.T, open Opener) {
	ctx := context.Background()
	p, clk := startPeople(t, open)
	ns := store.DefaultNamespace
	exp := T0.Add(15 * time.Minute)

	mustAttempts(t, p, ns, "k", store.LoginAttempts{})
	add := func(key string, expires time.Time, want int) {
		t.Helper()
		if n, err := p.AddFailure(ctx, ns, key, expires); err != nil || n != want {
			t.Fatalf("AddFailure(%s) = %d, %v; want %d", key, n, err, want)
		}
	}
	add("k", exp, 1)
	add("k", exp, 2)
	add("k", T0.Add(10*time.Minute), 3) // an earlier expiry does not shorten the record
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 3, ExpiresAt: exp})
	mustAttempts(t, p, ns, "k2", store.LoginAttempts{})
	if _, err := p.AddFailure(ctx, ns, "", exp); err == nil {
		t.Error("AddFailure with an empty key succeeded")
	}

	// A lockout is kept; one past the record's end makes it live that long.
	lock := T0.Add(5 * time.Minute)
	if err := p.LockUntil(ctx, ns, "k", lock); err != nil {
		t.Fatal(err)
	}
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 3, LockedUntil: lock, ExpiresAt: exp})
	lock = T0.Add(30 * time.Minute)
	if err := p.LockUntil(ctx, ns, "k", lock); err != nil {
		t.Fatal(err)
	}
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 3, LockedUntil: lock, ExpiresAt: lock})
	add("k", exp, 4)
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 4, LockedUntil: lock, ExpiresAt: lock})
	mustFail(t, "LockUntil without a record", p.LockUntil(ctx, ns, "nope", lock), store.ErrNotFound)
	mustAttempts(t, p, ns, "nope", store.LoginAttempts{})
	mustFail(t, "LockUntil with an empty key", p.LockUntil(ctx, ns, "", lock), nil)

	// At its ExpiresAt the record is gone, and counting starts again.
	clk.Set(lock.Add(-time.Nanosecond))
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 4, LockedUntil: lock, ExpiresAt: lock})
	clk.Set(lock)
	mustAttempts(t, p, ns, "k", store.LoginAttempts{})
	mustFail(t, "LockUntil of an expired record", p.LockUntil(ctx, ns, "k", lock.Add(time.Hour)), store.ErrNotFound)
	exp2 := lock.Add(15 * time.Minute)
	add("k", exp2, 1)
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: 1, ExpiresAt: exp2})

	if err := p.ClearAttempts(ctx, ns, "k"); err != nil {
		t.Fatal(err)
	}
	mustAttempts(t, p, ns, "k", store.LoginAttempts{})
	for _, key := range []string{"k", "nope", ""} {
		if err := p.ClearAttempts(ctx, ns, key); err != nil {
			t.Errorf("ClearAttempts(%q) with nothing to clear: %v", key, err)
		}
	}
	add("k", exp2, 1)
}

// testAttemptsConcurrent: concurrent failures are all counted, each
// AddFailure seeing its own count.
func testAttemptsConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace
	const n = 8
	counts := make([]int, n)
	race(n, func(i int) {
		c, err := p.AddFailure(ctx, ns, "k", T0.Add(time.Hour))
		if err != nil {
			t.Errorf("AddFailure: %v", err)
		}
		counts[i] = c
	})
	slices.Sort(counts)
	MustDeepEqual(t, counts, []int{1, 2, 3, 4, 5, 6, 7, 8})
	mustAttempts(t, p, ns, "k", store.LoginAttempts{Failures: n, ExpiresAt: T0.Add(time.Hour)})
}

func testAudit(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns, other := store.DefaultNamespace, "other"

	e1 := Event("e1", "u1", T0.Add(2*time.Minute))
	e2 := Event("e2", "u1", T0)
	e3 := Event("e3", "u1", T0.Add(time.Minute))
	e3.Type, e3.Outcome, e3.Detail = "lockout", "failure", "5 failures"
	e7 := Event("e0", "u1", T0.Add(time.Minute+time.Microsecond)) // a µs after e3, id before it
	e4 := Event("e4", "u2", T0.Add(30*time.Second))
	anon := Event("e5", "", T0)
	anon.Outcome = "failure"
	eo := Event("e6", "u1", T0)
	for _, e := range []store.AuditEvent{e1, e2, e3, e7, e4, anon} {
		if err := p.AppendAudit(ctx, ns, e); err != nil {
			t.Fatalf("AppendAudit(%s): %v", e.ID, err)
		}
	}
	if err := p.AppendAudit(ctx, other, eo); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "AppendAudit without id", p.AppendAudit(ctx, ns, Event("", "u1", T0)), nil)
	mustFail(t, "AppendAudit without time", p.AppendAudit(ctx, ns, Event("e9", "u1", time.Time{})), nil)

	list := func(ns, user string) []store.AuditEvent {
		t.Helper()
		got, err := p.UserAudit(ctx, ns, user)
		if err != nil {
			t.Fatalf("UserAudit(%s, %s): %v", ns, user, err)
		}
		return got
	}
	MustDeepEqual(t, list(ns, "u1"), []store.AuditEvent{e2, e3, e7, e1})
	MustDeepEqual(t, list(ns, "u2"), []store.AuditEvent{e4})
	MustDeepEqual(t, list(other, "u1"), []store.AuditEvent{eo})
	if got := list(ns, "nobody"); len(got) != 0 {
		t.Errorf("UserAudit(nobody) = %v, want none", got)
	}

	n, err := p.PseudonymizeAudit(ctx, ns, "u1", "anon-1")
	if err != nil || n != 4 {
		t.Fatalf("PseudonymizeAudit = %d, %v; want 4", n, err)
	}
	pseudo := func(es ...store.AuditEvent) []store.AuditEvent {
		out := []store.AuditEvent{}
		for _, e := range es {
			e.UserID, e.IP = "anon-1", ""
			out = append(out, e)
		}
		return out
	}
	if got := list(ns, "u1"); len(got) != 0 {
		t.Errorf("UserAudit(u1) after PseudonymizeAudit = %v, want none", got)
	}
	MustDeepEqual(t, list(ns, "anon-1"), pseudo(e2, e3, e7, e1))
	MustDeepEqual(t, list(ns, "u2"), []store.AuditEvent{e4})
	MustDeepEqual(t, list(other, "u1"), []store.AuditEvent{eo})
	for _, user := range []string{"u1", "nobody"} {
		if n, err := p.PseudonymizeAudit(ctx, ns, user, "anon-2"); err != nil || n != 0 {
			t.Errorf("PseudonymizeAudit(%s) with no events = %d, %v; want 0", user, n, err)
		}
	}

	// Older than before, in every namespace: e2, e4, anon and eo; e3 is
	// at before and stays.
	if n, err := p.PruneAudit(ctx, e3.Time); err != nil || n != 4 {
		t.Fatalf("PruneAudit = %d, %v; want 4", n, err)
	}
	MustDeepEqual(t, list(ns, "anon-1"), pseudo(e3, e7, e1))
	if got := list(ns, "u2"); len(got) != 0 {
		t.Errorf("UserAudit(u2) after PruneAudit = %v, want none", got)
	}
	if got := list(other, "u1"); len(got) != 0 {
		t.Errorf("UserAudit(other, u1) after PruneAudit = %v, want none", got)
	}
	if n, err := p.PruneAudit(ctx, e3.Time); err != nil || n != 0 {
		t.Errorf("PruneAudit again = %d, %v; want 0", n, err)
	}
	if n, err := p.PruneAudit(ctx, T0.Add(time.Hour)); err != nil || n != 3 {
		t.Errorf("PruneAudit of the rest = %d, %v; want 3", n, err)
	}
	// A pruned user and namespace take events again.
	e8 := Event("e8", "u2", T0.Add(time.Hour))
	for _, n := range []string{ns, other} {
		if err := p.AppendAudit(ctx, n, e8); err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, list(n, "u2"), []store.AuditEvent{e8})
	}
	if n, err := p.PruneAudit(ctx, T0.Add(2*time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneAudit after new events = %d, %v; want 2", n, err)
	}
}

// testPeopleNamespaces: nothing of people written in one namespace is seen
// or changed from another.
func testPeopleNamespaces(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	a, o := "a", "b"
	consent := store.Consent{UserID: "u1", ClientID: "c", Scopes: []string{"openid"}, GrantedAt: T0}
	fam := store.UserFamily{Family: "f", ClientID: "c", ExpiresAt: T0.Add(time.Hour)}
	for name, err := range map[string]error{
		"CreateUser":    p.CreateUser(ctx, a, User("u1", "alice@example.com")),
		"PutSession":    p.PutSession(ctx, a, Session("s1", "u1", T0)),
		"PutConsent":    p.PutConsent(ctx, a, consent),
		"CreateCode":    p.CreateCode(ctx, a, Code("h")),
		"AddUserFamily": p.AddUserFamily(ctx, a, "u1", fam),
		"AppendAudit":   p.AppendAudit(ctx, a, Event("e1", "u1", T0)),
	} {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := p.AddFailure(ctx, a, "k", T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	notFound := map[string]error{
		"User":          second(p.User(ctx, o, "u1")),
		"UserByEmail":   second(p.UserByEmail(ctx, o, "alice@example.com")),
		"UpdateUser":    p.UpdateUser(ctx, o, User("u1", "alice@example.com")),
		"DeleteUser":    p.DeleteUser(ctx, o, "u1"),
		"Session":       second(p.Session(ctx, o, "s1")),
		"DeleteSession": second(p.DeleteSession(ctx, o, "s1")),
		"Consent":       second(p.Consent(ctx, o, "u1", "c")),
		"LockUntil":     p.LockUntil(ctx, o, "k", T0.Add(time.Hour)),
	}
	_, _, notFound["RedeemCode"] = p.RedeemCode(ctx, o, "h", "f", "j")
	for name, err := range notFound {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(other) = %v, want ErrNotFound", name, err)
		}
	}
	if got, err := p.ListUsers(ctx, o); err != nil || len(got) != 0 {
		t.Errorf("ListUsers(other) = %v, %v", got, err)
	}
	if got, err := p.UserSessions(ctx, o, "u1"); err != nil || len(got) != 0 {
		t.Errorf("UserSessions(other) = %v, %v", got, err)
	}
	if got, err := p.UserConsents(ctx, o, "u1"); err != nil || len(got) != 0 {
		t.Errorf("UserConsents(other) = %v, %v", got, err)
	}
	if got, err := p.UserFamilies(ctx, o, "u1"); err != nil || len(got) != 0 {
		t.Errorf("UserFamilies(other) = %v, %v", got, err)
	}
	if got, err := p.Attempts(ctx, o, "k"); err != nil || got.Failures != 0 {
		t.Errorf("Attempts(other) = %+v, %v", got, err)
	}
	if got, err := p.UserAudit(ctx, o, "u1"); err != nil || len(got) != 0 {
		t.Errorf("UserAudit(other) = %v, %v", got, err)
	}
	if n, err := p.PseudonymizeAudit(ctx, o, "u1", "anon"); err != nil || n != 0 {
		t.Errorf("PseudonymizeAudit(other) = %d, %v", n, err)
	}
	// Deleting everything of the user in the other namespace spares a.
	for name, err := range map[string]error{
		"DeleteUserConsents": p.DeleteUserConsents(ctx, o, "u1"),
		"DeleteUserFamilies": p.DeleteUserFamilies(ctx, o, "u1"),
		"ClearAttempts":      p.ClearAttempts(ctx, o, "k"),
	} {
		if err != nil {
			t.Errorf("%s(other): %v", name, err)
		}
	}
	// The same id and email in the other namespace do not conflict.
	if err := p.CreateUser(ctx, o, User("u1", "alice@example.com")); err != nil {
		t.Errorf("CreateUser(other): %v", err)
	}
	if err := p.CreateCode(ctx, o, Code("h")); err != nil {
		t.Errorf("CreateCode(other): %v", err)
	}
	if n, err := p.AddFailure(ctx, o, "k", T0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("AddFailure(other) = %d, %v; want 1", n, err)
	}

	// And the first namespace still has everything.
	if _, err := p.User(ctx, a, "u1"); err != nil {
		t.Errorf("User(a): %v", err)
	}
	if got, err := p.UserSessions(ctx, a, "u1"); err != nil || len(got) != 1 {
		t.Errorf("UserSessions(a) = %v, %v", got, err)
	}
	if got, err := p.UserConsents(ctx, a, "u1"); err != nil || len(got) != 1 {
		t.Errorf("UserConsents(a) = %v, %v", got, err)
	}
	if got, err := p.UserFamilies(ctx, a, "u1"); err != nil || len(got) != 1 {
		t.Errorf("UserFamilies(a) = %v, %v", got, err)
	}
	if got, err := p.Attempts(ctx, a, "k"); err != nil || got.Failures != 1 {
		t.Errorf("Attempts(a) = %+v, %v", got, err)
	}
	if got, err := p.UserAudit(ctx, a, "u1"); err != nil || len(got) != 1 {
		t.Errorf("UserAudit(a) = %v, %v", got, err)
	}
	if _, first, err := p.RedeemCode(ctx, a, "h", "f", "j"); err != nil || !first {
		t.Errorf("RedeemCode(a) = %v, %v; want first", first, err)
	}
}

// second is the error of a two-result call.
func second[T any](_ T, err error) error { return err }

func testPeopleInvalidNamespace(t *testing.T, open Opener) {
	p, _ := startPeople(t, open)
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for name, op := range PeopleOps(p) {
			err := op(context.Background(), ns)
			if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				t.Errorf("%s(ns=%q) = %v, want a namespace error", name, ns, err)
			}
		}
	}
	mustHaveNoPeople(t, p, store.DefaultNamespace, "a")
}

func testPeopleCancelledContext(t *testing.T, open Opener) {
	p, _ := startPeople(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, op := range PeopleOps(p) {
		if err := op(ctx, store.DefaultNamespace); !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", name, err)
		}
	}
	if _, err := p.PruneAudit(ctx, T0); !errors.Is(err, context.Canceled) {
		t.Errorf("PruneAudit = %v, want context.Canceled", err)
	}
	mustHaveNoPeople(t, p, store.DefaultNamespace)
}

// mustHaveNoPeople fails t unless no namespace of nss holds a record
// PeopleOps would have written.
func mustHaveNoPeople(t *testing.T, p store.People, nss ...string) {
	t.Helper()
	ctx := context.Background()
	for _, ns := range nss {
		if got, err := p.ListUsers(ctx, ns); err != nil || len(got) != 0 {
			t.Errorf("ListUsers(%q) = %v, %v; want none", ns, got, err)
		}
		if _, err := p.UserByEmail(ctx, ns, "u@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByEmail(%q) = %v, want ErrNotFound", ns, err)
		}
		if got, err := p.UserFamilies(ctx, ns, "u"); err != nil || len(got) != 0 {
			t.Errorf("UserFamilies(%q) = %v, %v; want none", ns, got, err)
		}
		if got, err := p.UserSessions(ctx, ns, "u"); err != nil || len(got) != 0 {
			t.Errorf("UserSessions(%q) = %v, %v; want none", ns, got, err)
		}
		if got, err := p.UserConsents(ctx, ns, "u"); err != nil || len(got) != 0 {
			t.Errorf("UserConsents(%q) = %v, %v; want none", ns, got, err)
		}
		if _, _, err := p.RedeemCode(ctx, ns, "h", "f", "j"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RedeemCode(%q) = %v, want ErrNotFound", ns, err)
		}
		if got, err := p.Attempts(ctx, ns, "k"); err != nil || got.Failures != 0 {
			t.Errorf("Attempts(%q) = %+v, %v; want none", ns, got, err)
		}
		if got, err := p.UserAudit(ctx, ns, "u"); err != nil || len(got) != 0 {
			t.Errorf("UserAudit(%q) = %v, %v; want none", ns, got, err)
		}
	}
}
