package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// RunPeople runs the conformance tests of store.People against stores made
// by open, which must also implement store.People, each as a subtest with
// a store of its own.
func RunPeople(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Users", testUsers},
		{"UsersConcurrentCreate", testUsersConcurrentCreate},
		{"UsersConcurrentUpdate", testUsersConcurrentUpdate},
		{"UserFamilies", testUserFamilies},
		{"Sessions", testSessions},
		{"Consents", testConsents},
		{"Codes", testCodes},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"Attempts", testAttempts},
		{"AttemptsConcurrent", testAttemptsConcurrent},
		{"Audit", testAudit},
		{"NamespacesIsolated", testPeopleNamespaces},
		{"InvalidNamespace", testPeopleInvalidNamespace},
		{"CancelledContext", testPeopleCancelledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// startPeople opens a store with a fake clock at T0, as store.People.
func startPeople(t *testing.T, open Opener) (store.People, *Clock) {
	t.Helper()
	s, clk := start(t, open)
	p, ok := s.(store.People)
	if !ok {
		t.Fatalf("%T does not implement store.People", s)
	}
	return p, clk
}

// User is an active user record created at T0.
func User(id, email string) store.User {
	return store.User{
		ID:           id,
		Email:        email,
		Name:         "Name of " + id,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2g",
		Status:       store.UserActive,
		Roles:        []string{"member"},
		CreatedAt:    T0,
		UpdatedAt:    T0,
	}
}

// Session is a password session of the user created at created, expiring
// a day later.
func Session(id, userID string, created time.Time) store.Session {
	return store.Session{
		ID:         id,
		UserID:     userID,
		AuthTime:   created,
		AMR:        []string{"pwd"},
		CreatedAt:  created,
		LastSeenAt: created,
		ExpiresAt:  created.Add(24 * time.Hour),
		IP:         "192.0.2.1",
		UserAgent:  "storetest",
	}
}

// Code is an authorization code stored under hash, expiring a minute after
// T0.
func Code(hash string) store.AuthCode {
	return store.AuthCode{
		Hash:                hash,
		ClientID:            "c1",
		RedirectURI:         "https://app.example/cb",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		UserID:              "u1",
		SessionID:           "s1",
		Scopes:              []string{"openid", "profile"},
		Nonce:               "n-0S6_WzA2Mj",
		AuthTime:            T0,
		AMR:                 []string{"pwd"},
		ExpiresAt:           T0.Add(time.Minute),
	}
}

// Event is a sign-in audit event of the user at at.
func Event(id, userID string, at time.Time) store.AuditEvent {
	return store.AuditEvent{ID: id, Time: at, Type: "sign_in", UserID: userID, Outcome: "success", Detail: "pwd", IP: "192.0.2.1"}
}

// PeopleOps calls every namespaced store.People method once with valid
// arguments.
func PeopleOps(p store.People) map[string]func(ctx context.Context, ns string) error {
	exp := T0.Add(time.Hour)
	fam := store.UserFamily{Family: "f", ClientID: "c", ExpiresAt: exp}
	consent := store.Consent{UserID: "u", ClientID: "c", Scopes: []string{"openid"}, GrantedAt: T0}
	return map[string]func(ctx context.Context, ns string) error{
		"CreateUser":         func(ctx context.Context, ns string) error { return p.CreateUser(ctx, ns, User("u", "u@example.com")) },
		"UpdateUser":         func(ctx context.Context, ns string) error { return p.UpdateUser(ctx, ns, User("u", "u@example.com")) },
		"User":               func(ctx context.Context, ns string) error { return second(p.User(ctx, ns, "u")) },
		"UserByEmail":        func(ctx context.Context, ns string) error { return second(p.UserByEmail(ctx, ns, "u@example.com")) },
		"ListUsers":          func(ctx context.Context, ns string) error { return second(p.ListUsers(ctx, ns)) },
		"DeleteUser":         func(ctx context.Context, ns string) error { return p.DeleteUser(ctx, ns, "u") },
		"AddUserFamily":      func(ctx context.Context, ns string) error { return p.AddUserFamily(ctx, ns, "u", fam) },
		"UserFamilies":       func(ctx context.Context, ns string) error { return second(p.UserFamilies(ctx, ns, "u")) },
		"DeleteUserFamilies": func(ctx context.Context, ns string) error { return p.DeleteUserFamilies(ctx, ns, "u") },
		"PutSession":         func(ctx context.Context, ns string) error { return p.PutSession(ctx, ns, Session("s", "u", T0)) },
		"Session":            func(ctx context.Context, ns string) error { return second(p.Session(ctx, ns, "s")) },
		"UserSessions":       func(ctx context.Context, ns string) error { return second(p.UserSessions(ctx, ns, "u")) },
		"DeleteSession":      func(ctx context.Context, ns string) error { return second(p.DeleteSession(ctx, ns, "s")) },
		"PutConsent":         func(ctx context.Context, ns string) error { return p.PutConsent(ctx, ns, consent) },
		"Consent":            func(ctx context.Context, ns string) error { return second(p.Consent(ctx, ns, "u", "c")) },
		"UserConsents":       func(ctx context.Context, ns string) error { return second(p.UserConsents(ctx, ns, "u")) },
		"DeleteUserConsents": func(ctx context.Context, ns string) error { return p.DeleteUserConsents(ctx, ns, "u") },
		"CreateCode":         func(ctx context.Context, ns string) error { return p.CreateCode(ctx, ns, Code("h")) },
		"RedeemCode": func(ctx context.Context, ns string) error {
			_, _, err := p.RedeemCode(ctx, ns, "h", "f", "j")
			return err
		},
		"AddFailure":        func(ctx context.Context, ns string) error { return second(p.AddFailure(ctx, ns, "k", exp)) },
		"LockUntil":         func(ctx context.Context, ns string) error { return p.LockUntil(ctx, ns, "k", exp) },
		"Attempts":          func(ctx context.Context, ns string) error { return second(p.Attempts(ctx, ns, "k")) },
		"ClearAttempts":     func(ctx context.Context, ns string) error { return p.ClearAttempts(ctx, ns, "k") },
		"AppendAudit":       func(ctx context.Context, ns string) error { return p.AppendAudit(ctx, ns, Event("e", "u", T0)) },
		"UserAudit":         func(ctx context.Context, ns string) error { return second(p.UserAudit(ctx, ns, "u")) },
		"PseudonymizeAudit": func(ctx context.Context, ns string) error { return second(p.PseudonymizeAudit(ctx, ns, "u", "p")) },
	}
}

// mustFail fails t unless err is non-nil and, when want is not nil, is
// want.
func mustFail(t *testing.T, what string, err, want error) {
	t.Helper()
	if err == nil || (want != nil && !errors.Is(err, want)) {
		t.Errorf("%s = %v, want %v", what, err, cmpErr(want))
	}
}

func cmpErr(want error) any {
	if want == nil {
		return "an error"
	}
	return want
}

// userIDs lists the ids of us.
func userIDs(us []store.User) []string {
	ids := []string{}
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

func testUsers(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace

	if list, err := p.ListUsers(ctx, ns); err != nil || len(list) != 0 {
		t.Fatalf("ListUsers on an empty store = %v, %v", list, err)
	}
	alice := User("u2", "alice@example.com")
	alice.Groups = []string{"staff"}
	alice.TOTPSecret = "JBSWY3DPEHPK3PXP"
	alice.TOTPLastStep = 56000000
	alice.RecoveryHashes = [][]byte{[]byte("hash-1"), []byte("hash-2")}
	alice.PasswordChangedAt = T0.Add(-time.Hour)
	alice.LastSignInAt = T0.Add(-time.Minute)
	bob, carol := User("u1", "bob@example.com"), User("u3", "carol@example.com")
	for _, u := range []store.User{alice, bob, carol} {
		if err := p.CreateUser(ctx, ns, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", u.ID, err)
		}
	}

	t.Run("create errors", func(t *testing.T) {
		tests := []struct {
			name string
			u    store.User
			want error // nil: any error
		}{
			{"same id", User("u1", "other@example.com"), store.ErrConflict},
			{"same email", User("u9", "alice@example.com"), store.ErrConflict},
			{"no id", User("", "x@example.com"), nil},
			{"no email", User("u8", ""), nil},
		}
		for _, tt := range tests {
			mustFail(t, "CreateUser "+tt.name, p.CreateUser(ctx, ns, tt.u), tt.want)
		}
		// Nothing of the refused creations was written.
		for _, id := range []string{"u9", "u8"} {
			if _, err := p.User(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("User(%s) after a refused create = %v, want ErrNotFound", id, err)
			}
		}
		for _, email := range []string{"other@example.com", "x@example.com"} {
			if _, err := p.UserByEmail(ctx, ns, email); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByEmail(%s) after a refused create = %v, want ErrNotFound", email, err)
			}
		}
		if got, err := p.User(ctx, ns, "u1"); err != nil || got.Email != bob.Email {
			t.Errorf("User(u1) after a refused create = %+v, %v; want bob unchanged", got, err)
		}
	})

	t.Run("get", func(t *testing.T) {
		got, err := p.User(ctx, ns, "u2")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, alice)
		got, err = p.UserByEmail(ctx, ns, "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, alice)
		for _, id := range []string{"nope", ""} {
			if _, err := p.User(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("User(%q) = %v, want ErrNotFound", id, err)
			}
		}
		for _, email := range []string{"nope@example.com", ""} {
			if _, err := p.UserByEmail(ctx, ns, email); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByEmail(%q) = %v, want ErrNotFound", email, err)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		list, err := p.ListUsers(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, list, []store.User{bob, alice, carol})
	})

	t.Run("update", func(t *testing.T) {
		moved := alice
		moved.Email, moved.Name, moved.UpdatedAt = "alice@new.example", "Alice B.", T0.Add(time.Minute)
		moved.TOTPSecret, moved.RecoveryHashes = "", nil
		if err := p.UpdateUser(ctx, ns, moved); err != nil {
			t.Fatal(err)
		}
		got, err := p.User(ctx, ns, "u2")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, moved)
		if got, err := p.UserByEmail(ctx, ns, "alice@new.example"); err != nil || got.ID != "u2" {
			t.Errorf("UserByEmail(new email) = %+v, %v", got, err)
		}
		if _, err := p.UserByEmail(ctx, ns, "alice@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByEmail(old email) = %v, want ErrNotFound", err)
		}
		// The old email is free for another user.
		if err := p.CreateUser(ctx, ns, User("u4", "alice@example.com")); err != nil {
			t.Errorf("CreateUser with the moved-from email: %v", err)
		}

		// Another user's email: a conflict, nothing changes.
		taken := carol
		taken.Email, taken.Name = bob.Email, "Carol C."
		mustFail(t, "UpdateUser to another user's email", p.UpdateUser(ctx, ns, taken), store.ErrConflict)
		if got, err := p.User(ctx, ns, "u3"); err != nil || !equalUser(got, carol) {
			t.Errorf("User(u3) after a refused update = %+v, %v; want unchanged", got, err)
		}
		if got, err := p.UserByEmail(ctx, ns, bob.Email); err != nil || got.ID != "u1" {
			t.Errorf("UserByEmail(bob) after a refused update = %+v, %v", got, err)
		}
		if got, err := p.UserByEmail(ctx, ns, carol.Email); err != nil || got.ID != "u3" {
			t.Errorf("UserByEmail(carol) after a refused update = %+v, %v", got, err)
		}

		// The same email, other fields.
		disabled := carol
		disabled.Status = store.UserDisabled
		if err := p.UpdateUser(ctx, ns, disabled); err != nil {
			t.Fatal(err)
		}
		got, err = p.UserByEmail(ctx, ns, carol.Email)
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, disabled)

		for _, id := range []string{"nope", ""} {
			mustFail(t, fmt.Sprintf("UpdateUser(%q)", id), p.UpdateUser(ctx, ns, User(id, "nope@example.com")), store.ErrNotFound)
		}
		if _, err := p.UserByEmail(ctx, ns, "nope@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateUser of a missing user indexed its email: %v", err)
		}
		noEmail := bob
		noEmail.Email = ""
		mustFail(t, "UpdateUser without email", p.UpdateUser(ctx, ns, noEmail), nil)
		if got, err := p.UserByEmail(ctx, ns, bob.Email); err != nil || !equalUser(got, bob) {
			t.Errorf("UserByEmail(bob) after a refused update = %+v, %v", got, err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := p.DeleteUser(ctx, ns, "u1"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.User(ctx, ns, "u1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User after delete = %v, want ErrNotFound", err)
		}
		if _, err := p.UserByEmail(ctx, ns, bob.Email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByEmail after delete = %v, want ErrNotFound", err)
		}
		for _, id := range []string{"u1", "nope", ""} {
			mustFail(t, fmt.Sprintf("DeleteUser(%q)", id), p.DeleteUser(ctx, ns, id), store.ErrNotFound)
		}
		// The email is free again.
		if err := p.CreateUser(ctx, ns, User("u5", bob.Email)); err != nil {
			t.Fatalf("CreateUser with a deleted user's email: %v", err)
		}
		if got, err := p.UserByEmail(ctx, ns, bob.Email); err != nil || got.ID != "u5" {
			t.Errorf("UserByEmail(bob's old email) = %+v, %v; want u5", got, err)
		}
		list, err := p.ListUsers(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, userIDs(list), []string{"u2", "u3", "u4", "u5"})
	})
}

// equalUser compares the fields a refused write could have changed.
func equalUser(a, b store.User) bool {
	return a.ID == b.ID && a.Email == b.Email && a.Name == b.Name && a.Status == b.Status
}

// race runs fn(i) for i in [0, n) at once and waits for them.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			fn(i)
		})
	}
	close(gate)
	wg.Wait()
}

// testUsersConcurrentCreate: of concurrent creations with one email (or
// one id) exactly one succeeds, the others get ErrConflict and leave
// nothing behind.
func testUsersConcurrentCreate(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace
	const n = 8

	var mu sync.Mutex
	var won []int
	race(n, func(i int) {
		err := p.CreateUser(ctx, ns, User(fmt.Sprintf("u%d", i), "same@example.com"))
		switch {
		case err == nil:
			mu.Lock()
			won = append(won, i)
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("CreateUser: %v, want nil or ErrConflict", err)
		}
	})
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent creations with one email succeeded, want exactly 1", len(won), n)
	}
	winner := fmt.Sprintf("u%d", won[0])
	if got, err := p.UserByEmail(ctx, ns, "same@example.com"); err != nil || got.ID != winner {
		t.Errorf("UserByEmail = %+v, %v; want %s", got, err, winner)
	}
	if list, err := p.ListUsers(ctx, ns); err != nil || len(list) != 1 {
		t.Errorf("ListUsers = %v, %v; want only the winner", userIDs(list), err)
	}

	won = nil
	race(n, func(i int) {
		err := p.CreateUser(ctx, ns, User("same", fmt.Sprintf("e%d@example.com", i)))
		switch {
		case err == nil:
			mu.Lock()
			won = append(won, i)
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("CreateUser: %v, want nil or ErrConflict", err)
		}
	})
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent creations with one id succeeded, want exactly 1", len(won), n)
	}
	for i := range n {
		email := fmt.Sprintf("e%d@example.com", i)
		_, err := p.UserByEmail(ctx, ns, email)
		if i == won[0] && err != nil {
			t.Errorf("UserByEmail(winner's %s) = %v", email, err)
		}
		if i != won[0] && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByEmail(loser's %s) = %v, want ErrNotFound", email, err)
		}
	}
}

// testUsersConcurrentUpdate: of users concurrently moving to one email
// exactly one gets it; the others keep theirs.
func testUsersConcurrentUpdate(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace
	const n = 8
	for i := range n {
		if err := p.CreateUser(ctx, ns, User(fmt.Sprintf("u%d", i), fmt.Sprintf("u%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var won []int
	race(n, func(i int) {
		err := p.UpdateUser(ctx, ns, User(fmt.Sprintf("u%d", i), "taken@example.com"))
		switch {
		case err == nil:
			mu.Lock()
			won = append(won, i)
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("UpdateUser: %v, want nil or ErrConflict", err)
		}
	})
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent moves to one email succeeded, want exactly 1", len(won), n)
	}
	if got, err := p.UserByEmail(ctx, ns, "taken@example.com"); err != nil || got.ID != fmt.Sprintf("u%d", won[0]) {
		t.Errorf("UserByEmail(taken) = %+v, %v; want u%d", got, err, won[0])
	}
	for i := range n {
		own := fmt.Sprintf("u%d@example.com", i)
		got, err := p.UserByEmail(ctx, ns, own)
		switch {
		case i == won[0] && !errors.Is(err, store.ErrNotFound):
			t.Errorf("UserByEmail(winner's old %s) = %v, want ErrNotFound", own, err)
		case i != won[0] && (err != nil || got.ID != fmt.Sprintf("u%d", i)):
			t.Errorf("UserByEmail(loser's %s) = %+v, %v", own, got, err)
		}
	}
}

func testUserFamilies(t *testing.T, open Opener) {
	ctx := context.Background()
	p, clk := startPeople(t, open)
	ns := store.DefaultNamespace

	if got, err := p.UserFamilies(ctx, ns, "u1"); err != nil || len(got) != 0 {
		t.Fatalf("UserFamilies on an empty store = %v, %v", got, err)
	}
	fb := store.UserFamily{Family: "fb", SessionID: "s1", ClientID: "c1", ExpiresAt: T0.Add(time.Hour)}
	fa := store.UserFamily{Family: "fa", ClientID: "c2", ExpiresAt: T0.Add(2 * time.Hour)}
	fc := store.UserFamily{Family: "fc", SessionID: "s2", ClientID: "c1", ExpiresAt: T0.Add(30 * time.Minute)}
	other := store.UserFamily{Family: "fo", ClientID: "c1", ExpiresAt: T0.Add(time.Hour)}
	for _, f := range []store.UserFamily{fb, fa, fc} {
		if err := p.AddUserFamily(ctx, ns, "u1", f); err != nil {
			t.Fatalf("AddUserFamily(%s): %v", f.Family, err)
		}
	}
	if err := p.AddUserFamily(ctx, ns, "u2", other); err != nil {
		t.Fatal(err)
	}
	list := func(user string) []store.UserFamily {
		t.Helper()
		got, err := p.UserFamilies(ctx, ns, user)
		if err != nil {
			t.Fatalf("UserFamilies(%s): %v", user, err)
		}
		return got
	}
	MustDeepEqual(t, list("u1"), []store.UserFamily{fa, fb, fc})

	// The same family again replaces its record.
	fb2 := fb
	fb2.SessionID, fb2.ExpiresAt = "s3", T0.Add(3*time.Hour)
	if err := p.AddUserFamily(ctx, ns, "u1", fb2); err != nil {
		t.Fatal(err)
	}
	MustDeepEqual(t, list("u1"), []store.UserFamily{fa, fb2, fc})

	for name, add := range map[string]func() error{
		"no user": func() error { return p.AddUserFamily(ctx, ns, "", fa) },
		"no family": func() error {
			return p.AddUserFamily(ctx, ns, "u1", store.UserFamily{ClientID: "c", ExpiresAt: T0.Add(time.Hour)})
		},
		"no expiry": func() error { return p.AddUserFamily(ctx, ns, "u1", store.UserFamily{Family: "fx", ClientID: "c"}) },
	} {
		mustFail(t, "AddUserFamily "+name, add(), nil)
	}

	// Expired families are left out, from their ExpiresAt on.
	clk.Set(fc.ExpiresAt.Add(-time.Nanosecond))
	MustDeepEqual(t, list("u1"), []store.UserFamily{fa, fb2, fc})
	clk.Set(fc.ExpiresAt)
	MustDeepEqual(t, list("u1"), []store.UserFamily{fa, fb2})
	clk.Set(fa.ExpiresAt)
	MustDeepEqual(t, list("u1"), []store.UserFamily{fb2})
	fd := store.UserFamily{Family: "fd", ClientID: "c1", ExpiresAt: T0.Add(4 * time.Hour)}
	if err := p.AddUserFamily(ctx, ns, "u1", fd); err != nil {
		t.Fatal(err)
	}
	MustDeepEqual(t, list("u1"), []store.UserFamily{fb2, fd})
	clk.Set(T0)
	MustDeepEqual(t, list("u2"), []store.UserFamily{other})

	if err := p.DeleteUserFamilies(ctx, ns, "u1"); err != nil {
		t.Fatal(err)
	}
	if got := list("u1"); len(got) != 0 {
		t.Errorf("UserFamilies after DeleteUserFamilies = %v, want none", got)
	}
	MustDeepEqual(t, list("u2"), []store.UserFamily{other})
	for _, user := range []string{"u1", "nobody"} {
		if err := p.DeleteUserFamilies(ctx, ns, user); err != nil {
			t.Errorf("DeleteUserFamilies(%s) with none: %v", user, err)
		}
	}
}

func testSessions(t *testing.T, open Opener) {
	ctx := context.Background()
	p, clk := startPeople(t, open)
	ns := store.DefaultNamespace

	s1 := Session("s1", "u1", T0.Add(time.Minute))
	s2 := Session("s2", "u1", T0)
	s3 := Session("s3", "u1", T0.Add(time.Minute)) // as old as s1: the id orders them
	s3.ExpiresAt = T0.Add(time.Hour)
	s3.MFAPending = true
	s4 := Session("s4", "u2", T0)
	for _, s := range []store.Session{s3, s1, s2, s4} {
		if err := p.PutSession(ctx, ns, s); err != nil {
			t.Fatalf("PutSession(%s): %v", s.ID, err)
		}
	}
	list := func(user string) []store.Session {
		t.Helper()
		got, err := p.UserSessions(ctx, ns, user)
		if err != nil {
			t.Fatalf("UserSessions(%s): %v", user, err)
		}
		return got
	}

	t.Run("put errors", func(t *testing.T) {
		noID, noUser, noExpiry := Session("", "u1", T0), Session("s9", "", T0), Session("s9", "u1", T0)
		noExpiry.ExpiresAt = time.Time{}
		for name, s := range map[string]store.Session{"no id": noID, "no user": noUser, "no expiry": noExpiry} {
			mustFail(t, "PutSession "+name, p.PutSession(ctx, ns, s), nil)
		}
		if _, err := p.Session(ctx, ns, "s9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session after refused puts = %v, want ErrNotFound", err)
		}
	})

	t.Run("get", func(t *testing.T) {
		got, err := p.Session(ctx, ns, "s3")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, s3)
		for _, id := range []string{"nope", ""} {
			if _, err := p.Session(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Session(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		MustDeepEqual(t, list("u1"), []store.Session{s2, s1, s3})
		MustDeepEqual(t, list("u2"), []store.Session{s4})
		if got := list("nobody"); len(got) != 0 {
			t.Errorf("UserSessions(nobody) = %v, want none", got)
		}
	})

	s1b := s1
	t.Run("replace", func(t *testing.T) {
		s1b.LastSeenAt, s1b.AMR, s1b.AuthTime = T0.Add(10*time.Minute), []string{"pwd", "otp"}, T0.Add(10*time.Minute)
		if err := p.PutSession(ctx, ns, s1b); err != nil {
			t.Fatal(err)
		}
		got, err := p.Session(ctx, ns, "s1")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, s1b)
		MustDeepEqual(t, list("u1"), []store.Session{s2, s1b, s3})
	})

	t.Run("expiry", func(t *testing.T) {
		clk.Set(s3.ExpiresAt.Add(-time.Nanosecond))
		if _, err := p.Session(ctx, ns, "s3"); err != nil {
			t.Errorf("Session just before its ExpiresAt: %v", err)
		}
		clk.Set(s3.ExpiresAt)
		if _, err := p.Session(ctx, ns, "s3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session at its ExpiresAt = %v, want ErrNotFound", err)
		}
		MustDeepEqual(t, list("u1"), []store.Session{s2, s1b})
	})

	t.Run("move to another user", func(t *testing.T) {
		s2b := s2
		s2b.UserID = "u2"
		if err := p.PutSession(ctx, ns, s2b); err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, list("u1"), []store.Session{s1b})
		MustDeepEqual(t, list("u2"), []store.Session{s2b, s4})
	})

	t.Run("delete", func(t *testing.T) {
		got, err := p.DeleteSession(ctx, ns, "s1")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, s1b)
		if _, err := p.Session(ctx, ns, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session after delete = %v, want ErrNotFound", err)
		}
		for _, id := range []string{"s1", "nope", ""} {
			if _, err := p.DeleteSession(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteSession(%q) = %v, want ErrNotFound", id, err)
			}
		}
		if got := list("u1"); len(got) != 0 {
			t.Errorf("UserSessions after delete = %v, want none", got)
		}
		if got := list("u2"); len(got) != 2 {
			t.Errorf("UserSessions(u2) after deleting u1's = %v, want 2", got)
		}
	})
}

func testConsents(t *testing.T, open Opener) {
	ctx := context.Background()
	p, _ := startPeople(t, open)
	ns := store.DefaultNamespace

	cb := store.Consent{UserID: "u1", ClientID: "cb", Scopes: []string{"openid", "profile"}, GrantedAt: T0}
	ca := store.Consent{UserID: "u1", ClientID: "ca", Scopes: []string{"openid"}, GrantedAt: T0.Add(time.Minute)}
	other := store.Consent{UserID: "u2", ClientID: "ca", Scopes: []string{"openid"}, GrantedAt: T0}
	for _, c := range []store.Consent{cb, ca, other} {
		if err := p.PutConsent(ctx, ns, c); err != nil {
			t.Fatalf("PutConsent(%s, %s): %v", c.UserID, c.ClientID, err)
		}
	}
	mustFail(t, "PutConsent without user", p.PutConsent(ctx, ns, store.Consent{ClientID: "ca"}), nil)
	mustFail(t, "PutConsent without client", p.PutConsent(ctx, ns, store.Consent{UserID: "u1"}), nil)

	got, err := p.Consent(ctx, ns, "u1", "cb")
	if err != nil {
		t.Fatal(err)
	}
	MustDeepEqual(t, got, cb)
	for _, k := range [][2]string{{"u1", "nope"}, {"nope", "ca"}, {"u2", "cb"}, {"", "ca"}, {"u1", ""}} {
		if _, err := p.Consent(ctx, ns, k[0], k[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Consent(%q, %q) = %v, want ErrNotFound", k[0], k[1], err)
		}
	}

	cb2 := cb
	cb2.Scopes, cb2.GrantedAt = []string{"openid", "profile", "email"}, T0.Add(5*time.Minute)
	if err := p.PutConsent(ctx, ns, cb2); err != nil {
		t.Fatal(err)
	}
	list := func(user string) []store.Consent {
		t.Helper()
		got, err := p.UserConsents(ctx, ns, user)
		if err != nil {
			t.Fatalf("UserConsents(%s): %v", user, err)
		}
		return got
	}
	MustDeepEqual(t, list("u1"), []store.Consent{ca, cb2})
	if got := list("nobody"); len(got) != 0 {
		t.Errorf("UserConsents(nobody) = %v, want none", got)
	}

	if err := p.DeleteUserConsents(ctx, ns, "u1"); err != nil {
		t.Fatal(err)
	}
	if got := list("u1"); len(got) != 0 {
		t.Errorf("UserConsents after DeleteUserConsents = %v, want none", got)
	}
	if _, err := p.Consent(ctx, ns, "u1", "ca"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consent after DeleteUserConsents = %v, want ErrNotFound", err)
	}
	MustDeepEqual(t, list("u2"), []store.Consent{other})
	if err := p.DeleteUserConsents(ctx, ns, "u1"); err != nil {
		t.Errorf("DeleteUserConsents with none: %v", err)
	}
}
