package users_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

const strong = "correct horse battery staple 42"

// revoked records the families the service asked to revoke.
type revoked struct {
	mu  sync.Mutex
	got []string
}

func (r *revoked) RevokeFamily(_ context.Context, f string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, f)
	return nil
}

func (r *revoked) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheap is a configuration whose Argon2 cost keeps tests fast.
func cheap() users.Config {
	cfg := users.Default()
	cfg.Argon2 = users.Argon2{MemoryKiB: 8 * 1024, Time: 1, Parallelism: 1}
	return cfg
}

type fixture struct {
	svc *users.Service
	st  *store.Bolt
	clk *clock
	rev *revoked
}

func newFixture(t *testing.T, cfg users.Config, breached users.Breached) fixture {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rev := &revoked{}
	stores := storeadapt.Users(st, store.DefaultNamespace)
	stores.Revoker = rev
	svc, err := users.New(cfg, stores, breached, nil, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{svc: svc, st: st, clk: clk, rev: rev}
}

func (f fixture) add(t *testing.T, email string) users.User {
	t.Helper()
	u, err := f.svc.Add(context.Background(), users.NewUser{Email: email, Name: "Ada", Password: strong, Roles: []string{"editor", "editor"}}, users.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHashVerifyRehash(t *testing.T) {
	low := users.Argon2{MemoryKiB: 8 * 1024, Time: 1, Parallelism: 1}
	h, err := users.Hash("pw", low)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !users.Verify("pw", h) || users.Verify("pW", h) || users.Verify("pw", h[:len(h)-2]) || users.Verify("pw", "$bcrypt$x") {
		t.Fatal("verify accepts or refuses the wrong things")
	}
	if users.NeedsRehash(h, low) {
		t.Fatal("same cost needs a rehash")
	}
	if !users.NeedsRehash(h, users.Argon2{MemoryKiB: 16 * 1024, Time: 1, Parallelism: 1}) {
		t.Fatal("a raised cost needs no rehash")
	}
	h2, _ := users.Hash("pw", low)
	if h == h2 {
		t.Fatal("two hashes of one password are equal (no salt)")
	}
}

func TestPasswordRules(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "breached.txt")
	// A plain entry and the SHA-1 (HIBP format) of another.
	os.WriteFile(list, []byte("# leaked\nTr0ub4dor&3 horse battery\n7C6A180B36896A0A8C02787EEAFB0E4C2F8E2D8B:42\n"), 0o600)
	bl, err := users.LoadBreached(list)
	if err != nil {
		t.Fatal(err)
	}
	rules := users.Default().Passwords
	cases := map[string]string{
		"short":                     "use at least 12",
		"aaaaaaaaaaaaaaaa":          "too easy",
		"password12345678":          "too easy",
		"ada@example.com!!!":        "too easy",
		"Tr0ub4dor&3 horse battery": "leaked",
		"587cc49a-a1d6-breached":    "",
	}
	for pw, want := range cases {
		err := users.CheckPassword(context.Background(), rules, bl, pw, "ada@example.com", "Ada")
		if want == "" {
			continue
		}
		if err == nil || !errors.Is(err, users.ErrWeakPassword) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", pw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("the error repeats the password: %v", err)
		}
	}
	if err := users.CheckPassword(context.Background(), rules, bl, strong); err != nil {
		t.Fatalf("a strong password is refused: %v", err)
	}
	if bl.Len() != 2 {
		t.Fatalf("list has %d entries", bl.Len())
	}
}

func TestAddNormalisesAndRefuses(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	u, err := f.svc.Add(ctx, users.NewUser{Email: "  Ada@Example.COM ", Password: strong, Roles: []string{"b", "a", "b"}}, users.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ada@example.com" || strings.Join(u.Roles, ",") != "a,b" || u.Status != users.StatusActive {
		t.Fatalf("user %+v", u)
	}
	if _, err := f.svc.Add(ctx, users.NewUser{Email: "ADA@example.com", Password: strong}, users.Meta{}); !errors.Is(err, users.ErrExists) {
		t.Fatalf("duplicate email: %v", err)
	}
	for _, bad := range []users.NewUser{
		{Email: "not-an-email", Password: strong},
		{Email: "Ada <ada@x.com>", Password: strong},
		{Email: "b@example.com", Password: strong, Roles: []string{"has space"}},
		{Email: "b@example.com", Password: "weak"},
	} {
		if _, err := f.svc.Add(ctx, bad, users.Meta{}); err == nil {
			t.Errorf("%+v was added", bad)
		}
	}
	list, _ := f.svc.List(ctx)
	if len(list) != 1 {
		t.Fatalf("refused users were stored: %d", len(list))
	}
	if pub := u.Public(); pub.ID != u.ID || pub.MFA {
		t.Fatalf("public %+v", pub)
	}
}

func TestSignInLockoutWithoutEnumeration(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	f.add(t, "ada@example.com")
	m := users.Meta{IP: "192.0.2.1"}
	// The known and the unknown account answer alike, and both lock.
	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		for i := 1; i <= 5; i++ {
			_, err := f.svc.SignIn(ctx, email, "wrong password!", users.Meta{IP: "192.0.2.1"})
			var le *users.LockedError
			if i < 5 && !errors.Is(err, users.ErrBadCredentials) {
				t.Fatalf("%s try %d: %v", email, i, err)
			}
			if i == 5 && !errors.As(err, &le) {
				t.Fatalf("%s: no lockout after 5 failures: %v", email, err)
			}
		}
	}
	// Locked: even the right password is refused until the lockout ends.
	var le *users.LockedError
	if _, err := f.svc.SignIn(ctx, "ada@example.com", strong, m); !errors.As(err, &le) {
		t.Fatalf("locked account signed in: %v", err)
	}
	if d := le.Until.Sub(f.clk.now()); d != 30*time.Second {
		t.Fatalf("first lockout %s, want 30s", d)
	}
	f.clk.add(31 * time.Second)
	// One more failure doubles the lockout.
	if _, err := f.svc.SignIn(ctx, "ada@example.com", "wrong again!!", users.Meta{IP: "192.0.2.2"}); !errors.As(err, &le) || le.Until.Sub(f.clk.now()) != time.Minute {
		t.Fatalf("second lockout: %v", err)
	}
	f.clk.add(61 * time.Second)
	u, err := f.svc.SignIn(ctx, "ada@example.com", strong, users.Meta{IP: "192.0.2.3"})
	if err != nil || u.LastSignInAt.IsZero() {
		t.Fatalf("sign-in after the lockout: %v", err)
	}
	// Success cleared the count: four failures do not lock.
	for i := 0; i < 4; i++ {
		if _, err := f.svc.SignIn(ctx, "ada@example.com", "nope nope nope", users.Meta{IP: "192.0.2.4"}); !errors.Is(err, users.ErrBadCredentials) {
			t.Fatalf("after success, failure %d: %v", i, err)
		}
	}
	// A disabled account answers like a wrong password.
	disabled := users.StatusDisabled
	f.add(t, "bob@example.com")
	bob, _ := f.svc.Find(ctx, "bob@example.com")
	if _, err := f.svc.Update(ctx, bob.ID, users.Update{Status: &disabled}, users.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SignIn(ctx, "bob@example.com", strong, users.Meta{IP: "192.0.2.5"}); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("disabled: %v", err)
	}
	// The address is throttled too: 20 failures from one address lock it
	// out for any account.
	for i := 0; i < 20; i++ {
		f.svc.SignIn(ctx, "x"+string(rune('a'+i))+"@example.com", "nope nope nope", users.Meta{IP: "198.51.100.9"})
	}
	if _, err := f.svc.SignIn(ctx, "bob@example.com", strong, users.Meta{IP: "198.51.100.9"}); !errors.As(err, &le) {
		t.Fatalf("address not locked out: %v", err)
	}
	ev, _ := f.st.UserAudit(ctx, store.DefaultNamespace, u.ID)
	types := map[string]int{}
	for _, e := range ev {
		types[e.Type+"/"+e.Outcome]++
	}
	if types["user.sign_up/success"] != 1 || types["user.sign_in/success"] != 1 || types["user.sign_in/failure"] < 5 || types["user.lockout/success"] < 1 {
		t.Fatalf("audit events %v", types)
	}
}

func TestRehashOnSignIn(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	u := f.add(t, "ada@example.com")
	raised := cheap()
	raised.Argon2.MemoryKiB = 16 * 1024
	stores := storeadapt.Users(f.st, store.DefaultNamespace)
	stores.Revoker = f.rev
	svc2, err := users.New(raised, stores, nil, nil, f.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.SignIn(ctx, "ada@example.com", strong, users.Meta{}); err != nil {
		t.Fatal(err)
	}
	after, _ := svc2.Get(ctx, u.ID)
	if !strings.Contains(after.PasswordHash, "m=16384") || !users.Verify(strong, after.PasswordHash) {
		t.Fatalf("not rehashed: %s", after.PasswordHash)
	}
}

func TestSessionsTimeoutsAndRevocation(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	u := f.add(t, "ada@example.com")
	cookie, ses, err := f.svc.StartSession(ctx, u, []string{users.AMRPassword}, false, users.Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if ses.ID == cookie || ses.ID != users.SessionID(cookie) {
		t.Fatal("the store keeps the cookie value")
	}
	if err := f.svc.RecordFamily(ctx, u.ID, users.UserFamily{Family: "fam1", SessionID: ses.ID, ClientID: "app", ExpiresAt: f.clk.now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.clk.add(29 * time.Minute)
	if _, _, err := f.svc.Resume(ctx, cookie); err != nil {
		t.Fatalf("within the idle timeout: %v", err)
	}
	f.clk.add(29 * time.Minute) // seen 29 min ago: still live
	if _, _, err := f.svc.Resume(ctx, cookie); err != nil {
		t.Fatalf("touched session: %v", err)
	}
	f.clk.add(31 * time.Minute)
	if _, _, err := f.svc.Resume(ctx, cookie); !errors.Is(err, users.ErrNoSession) {
		t.Fatalf("idle session: %v", err)
	}
	if got := f.rev.list(); len(got) != 1 || got[0] != "fam1" {
		t.Fatalf("the idle session's tokens were not revoked: %v", got)
	}
	// The absolute timeout holds however busy the session is.
	cookie, _, _ = f.svc.StartSession(ctx, u, []string{users.AMRPassword}, false, users.Meta{})
	for i := 0; i < 12*3; i++ {
		f.clk.add(20 * time.Minute)
		if _, _, err := f.svc.Resume(ctx, cookie); err != nil {
			if i*20 < 11*60 {
				t.Fatalf("ended after %d min: %v", (i+1)*20, err)
			}
			break
		}
		if i == 12*3-1 {
			t.Fatal("no absolute timeout")
		}
	}
	if _, _, err := f.svc.Resume(ctx, "made-up"); !errors.Is(err, users.ErrNoSession) {
		t.Fatalf("made-up cookie: %v", err)
	}
	// A privilege change ends every session.
	c1, _, _ := f.svc.StartSession(ctx, u, nil, false, users.Meta{})
	c2, _, _ := f.svc.StartSession(ctx, u, nil, false, users.Meta{})
	roles := []string{"admin"}
	if _, err := f.svc.Update(ctx, u.ID, users.Update{Roles: &roles}, users.Meta{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{c1, c2} {
		if _, _, err := f.svc.Resume(ctx, c); !errors.Is(err, users.ErrNoSession) {
			t.Fatalf("session survived a role change: %v", err)
		}
	}
}

func TestTOTPEnrolAndSecondFactor(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	u := f.add(t, "ada@example.com")
	en, err := f.svc.BeginTOTP(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(en.QRPNG) < 100 || !strings.HasPrefix(en.URL, "otpauth://totp/") || !strings.Contains(en.URL, "issuer=Verdict") {
		t.Fatalf("enrolment %+v", en.URL)
	}
	code := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(en.Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := f.svc.ConfirmTOTP(ctx, u.ID, "000000", users.Meta{}); !errors.Is(err, users.ErrBadCode) {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	recovery, err := f.svc.ConfirmTOTP(ctx, u.ID, code(f.clk.now()), users.Meta{})
	if err != nil || len(recovery) != 10 {
		t.Fatalf("confirm: %v %v", recovery, err)
	}
	stored, _ := f.svc.Get(ctx, u.ID)
	for _, rc := range recovery {
		for _, h := range stored.RecoveryHashes {
			if string(h) == rc {
				t.Fatal("a recovery code is stored in clear")
			}
		}
	}
	// The code that confirmed is spent; the next step's code works once.
	if _, err := f.svc.VerifySecondFactor(ctx, u.ID, code(f.clk.now()), users.Meta{}); !errors.Is(err, users.ErrBadCode) {
		t.Fatalf("a used code was accepted again: %v", err)
	}
	f.clk.add(30 * time.Second)
	if m, err := f.svc.VerifySecondFactor(ctx, u.ID, code(f.clk.now()), users.Meta{}); err != nil || m != "otp" {
		t.Fatalf("next code: %v %v", m, err)
	}
	// A recovery code works once.
	if m, err := f.svc.VerifySecondFactor(ctx, u.ID, recovery[3], users.Meta{}); err != nil || m != "recovery" {
		t.Fatalf("recovery: %v %v", m, err)
	}
	if _, err := f.svc.VerifySecondFactor(ctx, u.ID, recovery[3], users.Meta{}); !errors.Is(err, users.ErrBadCode) {
		t.Fatalf("a recovery code worked twice: %v", err)
	}
	// Wrong codes lock the account like wrong passwords.
	var le *users.LockedError
	for i := 0; i < 5; i++ {
		_, err = f.svc.VerifySecondFactor(ctx, u.ID, "123456", users.Meta{})
	}
	if !errors.As(err, &le) {
		t.Fatalf("no lockout after wrong codes: %v", err)
	}
	if _, err := f.svc.BeginTOTP(ctx, u.ID); !errors.Is(err, users.ErrMFAState) {
		t.Fatalf("enrolled twice: %v", err)
	}
}

func TestExportAndErase(t *testing.T) {
	f := newFixture(t, cheap(), nil)
	ctx := context.Background()
	u := f.add(t, "ada@example.com")
	other := f.add(t, "bob@example.com")
	_, ses, _ := f.svc.StartSession(ctx, u, []string{"pwd"}, false, users.Meta{IP: "192.0.2.7"})
	f.svc.GrantConsent(ctx, u.ID, "app", []string{"openid", "email"}, users.Meta{})
	f.svc.RecordFamily(ctx, u.ID, users.UserFamily{Family: "famA", SessionID: ses.ID, ClientID: "app", ExpiresAt: f.clk.now().Add(time.Hour)})
	f.svc.RecordFamily(ctx, u.ID, users.UserFamily{Family: "famB", ClientID: "app", ExpiresAt: f.clk.now().Add(time.Hour)})
	f.svc.SignIn(ctx, "ada@example.com", strong, users.Meta{IP: "192.0.2.7"})

	ex, err := f.svc.Export(ctx, u.ID, users.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.User.Email != "ada@example.com" || len(ex.Sessions) != 1 || len(ex.Consents) != 1 || len(ex.Tokens) != 2 || len(ex.Audit) < 3 {
		t.Fatalf("export %+v", ex)
	}
	stored, _ := f.svc.Get(ctx, u.ID)
	raw := exportJSON(t, ex)
	if strings.Contains(raw, stored.PasswordHash) || strings.Contains(raw, "argon2") || strings.Contains(raw, "password_hash") {
		t.Fatal("the export holds the password hash")
	}

	key := []byte("0123456789abcdef0123456789abcdef")
	pseudo, err := f.svc.Erase(ctx, u.ID, key, users.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if pseudo != users.Pseudonym(key, u.ID) || !strings.HasPrefix(pseudo, "erased:") {
		t.Fatalf("pseudonym %q", pseudo)
	}
	if _, err := f.svc.Get(ctx, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("erased user still there: %v", err)
	}
	if got := strings.Join(f.rev.list(), ","); !strings.Contains(got, "famA") || !strings.Contains(got, "famB") {
		t.Fatalf("tokens not revoked: %v", got)
	}
	if list, _ := f.st.UserSessions(ctx, store.DefaultNamespace, u.ID); len(list) != 0 {
		t.Fatal("sessions survive erasure")
	}
	if list, _ := f.st.UserConsents(ctx, store.DefaultNamespace, u.ID); len(list) != 0 {
		t.Fatal("consents survive erasure")
	}
	if list, _ := f.st.UserAudit(ctx, store.DefaultNamespace, u.ID); len(list) != 0 {
		t.Fatal("audit events still name the erased user")
	}
	left, _ := f.st.UserAudit(ctx, store.DefaultNamespace, pseudo)
	if len(left) < 3 || left[len(left)-1].Type != users.EventErased {
		t.Fatalf("pseudonymous events %+v", left)
	}
	for _, e := range left {
		if e.IP != "" {
			t.Fatal("an address survived erasure")
		}
	}
	// The email is free again; the other user is untouched.
	f.add(t, "ada@example.com")
	if _, err := f.svc.Get(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Erase(ctx, "u_nobody", key, users.Meta{}); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("erasing nobody: %v", err)
	}
}
