package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable fake clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// openTest opens a Bolt in a fresh temp dir with a fake clock at t0 and
// closes it when the test ends.
func openTest(t *testing.T) (*Bolt, *clock, string) {
	t.Helper()
	clk := &clock{now: t0}
	dir := t.TempDir()
	b, err := OpenBolt(dir, BoltOptions{Now: clk.Now})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, clk, dir
}

func key(kid string, created time.Time) SigningKey {
	return SigningKey{
		KID:        kid,
		Alg:        "ES256",
		PrivateJWK: []byte(`{"kty":"EC","kid":"` + kid + `"}`),
		CreatedAt:  created,
		SignFrom:   created.Add(time.Hour),
	}
}

func client(id string) Client {
	return Client{
		ID:         id,
		SecretHMAC: []byte("hmac-" + id),
		Scopes:     []string{"read"},
		Grants:     []string{"client_credentials"},
		CreatedAt:  t0,
		UpdatedAt:  t0,
	}
}

func family(id, hash string) RefreshToken {
	return RefreshToken{
		Family:    id,
		TokenHash: []byte(hash),
		ClientID:  "c1",
		Subject:   "alice",
		Scopes:    []string{"read"},
		ExpiresAt: t0.Add(24 * time.Hour),
	}
}

// rotated is family(id, hash) as a rotation writes it, at t0+1m.
func rotated(id, hash string) RefreshToken {
	t := family(id, hash)
	t.RotatedAt = t0.Add(time.Minute)
	return t
}

func mustDeepEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestOpenBoltCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	b, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	defer b.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("dir mode = %v, want no group/other bits", perm)
	}
	st, err = os.Stat(filepath.Join(dir, BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("file mode = %v, want no group/other bits", perm)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenBoltErrors(t *testing.T) {
	if _, err := OpenBolt("", BoltOptions{}); err == nil {
		t.Error("OpenBolt(\"\") succeeded")
	}
	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(file, BoltOptions{}); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("OpenBolt(file) = %v, want a non-lock error", err)
	}
}

func TestOpenBoltLocked(t *testing.T) {
	_, _, dir := openTest(t)
	b2, err := OpenBolt(dir, BoltOptions{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		b2.Close()
		t.Fatal("second OpenBolt succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another Verdict process") {
		t.Errorf("err = %q, want it to say the dir is in use", err)
	}
}

func TestCloseReleasesLock(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if _, err := b.Keys(context.Background(), DefaultNamespace); err == nil {
		t.Error("Keys after Close succeeded")
	}
	b2, err := OpenBolt(dir, BoltOptions{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	b2.Close()
}

func TestZeroBolt(t *testing.T) {
	var b Bolt
	if err := b.Ping(context.Background()); err == nil {
		t.Error("Ping on zero Bolt succeeded")
	}
	if _, err := b.Client(context.Background(), DefaultNamespace, "x"); err == nil {
		t.Error("Client on zero Bolt succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close on zero Bolt: %v", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	ns := DefaultNamespace

	got, err := b.Keys(ctx, ns)
	if err != nil || len(got) != 0 {
		t.Fatalf("Keys on empty store = %v, %v", got, err)
	}

	k3 := key("c", t0.Add(2*time.Hour))
	k1 := key("b", t0)
	k2 := key("a", t0.Add(time.Hour))
	k1b := key("z", t0) // same CreatedAt as k1: KID breaks the tie
	for _, k := range []SigningKey{k3, k1b, k1, k2} {
		if err := b.PutKey(ctx, ns, k); err != nil {
			t.Fatalf("PutKey(%s): %v", k.KID, err)
		}
	}
	// Replace k2.
	k2.RetiredAt = t0.Add(3 * time.Hour)
	k2.PublishUntil = t0.Add(4 * time.Hour)
	k2.Revoked = true
	if err := b.PutKey(ctx, ns, k2); err != nil {
		t.Fatal(err)
	}
	got, err = b.Keys(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	mustDeepEqual(t, got, []SigningKey{k1, k1b, k2, k3})

	tests := []struct {
		name string
		kid  string
		want error
	}{
		{"existing", "a", nil},
		{"already deleted", "a", ErrNotFound},
		{"never existed", "nope", ErrNotFound},
		{"empty", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run("delete "+tt.name, func(t *testing.T) {
			if err := b.DeleteKey(ctx, ns, tt.kid); !errors.Is(err, tt.want) {
				t.Fatalf("DeleteKey(%q) = %v, want %v", tt.kid, err, tt.want)
			}
		})
	}
	got, err = b.Keys(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	mustDeepEqual(t, got, []SigningKey{k1, k1b, k3})

	if err := b.PutKey(ctx, ns, SigningKey{}); err == nil {
		t.Error("PutKey with empty KID succeeded")
	}
}

func TestClients(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	ns := DefaultNamespace

	list, err := b.ListClients(ctx, ns)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListClients on empty store = %v, %v", list, err)
	}

	for _, id := range []string{"c", "a", "b"} {
		if err := b.CreateClient(ctx, ns, client(id)); err != nil {
			t.Fatalf("CreateClient(%s): %v", id, err)
		}
	}

	t.Run("create", func(t *testing.T) {
		tests := []struct {
			name string
			c    Client
			want error
		}{
			{"duplicate", client("a"), ErrConflict},
			{"empty id", Client{}, nil},
		}
		for _, tt := range tests {
			err := b.CreateClient(ctx, ns, tt.c)
			if tt.want == nil {
				if err == nil {
					t.Errorf("%s: CreateClient succeeded", tt.name)
				}
				continue
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: CreateClient = %v, want %v", tt.name, err, tt.want)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		got, err := b.Client(ctx, ns, "a")
		if err != nil {
			t.Fatal(err)
		}
		mustDeepEqual(t, got, client("a"))
		for _, id := range []string{"nope", ""} {
			if _, err := b.Client(ctx, ns, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Client(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		c := client("b")
		c.SecretHMAC = nil
		c.JWKS = []byte(`{"keys":[]}`)
		c.Scopes = []string{"read", "write"}
		c.UpdatedAt = t0.Add(time.Minute)
		if err := b.UpdateClient(ctx, ns, c); err != nil {
			t.Fatal(err)
		}
		got, err := b.Client(ctx, ns, "b")
		if err != nil {
			t.Fatal(err)
		}
		mustDeepEqual(t, got, c)
		for _, id := range []string{"nope", ""} {
			if err := b.UpdateClient(ctx, ns, client(id)); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateClient(%q) = %v, want ErrNotFound", id, err)
			}
		}
		if _, err := b.Client(ctx, ns, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateClient of a missing client created it")
		}
	})

	t.Run("list", func(t *testing.T) {
		list, err := b.ListClients(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		mustDeepEqual(t, ids, []string{"a", "b", "c"})
	})

	t.Run("delete", func(t *testing.T) {
		tests := []struct {
			id   string
			want error
		}{
			{"a", nil},
			{"a", ErrNotFound},
			{"nope", ErrNotFound},
			{"", ErrNotFound},
		}
		for _, tt := range tests {
			if err := b.DeleteClient(ctx, ns, tt.id); !errors.Is(err, tt.want) {
				t.Errorf("DeleteClient(%q) = %v, want %v", tt.id, err, tt.want)
			}
		}
		if _, err := b.Client(ctx, ns, "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Client after delete = %v, want ErrNotFound", err)
		}
	})
}

func TestFamilies(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	ns := DefaultNamespace

	f := family("f1", "h1")
	f.AccessJTIs = []string{"j1"}
	if err := b.CreateFamily(ctx, ns, f); err != nil {
		t.Fatal(err)
	}

	t.Run("create errors", func(t *testing.T) {
		noHash := family("f2", "")
		noExp := family("f3", "h")
		noExp.ExpiresAt = time.Time{}
		tests := []struct {
			name string
			t    RefreshToken
			want error // nil: any error
		}{
			{"exists", family("f1", "other"), ErrConflict},
			{"no family", family("", "h"), nil},
			{"no hash", noHash, nil},
			{"no expiry", noExp, nil},
		}
		for _, tt := range tests {
			err := b.CreateFamily(ctx, ns, tt.t)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("%s: CreateFamily = %v, want %v", tt.name, err, tt.want)
			}
		}
		got, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		mustDeepEqual(t, got, f)
	})

	t.Run("family not found", func(t *testing.T) {
		for _, id := range []string{"nope", ""} {
			if _, err := b.Family(ctx, ns, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Family(%q) = %v, want ErrNotFound", id, err)
			}
			if _, err := b.RevokeFamily(ctx, ns, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("RevokeFamily(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("rotate", func(t *testing.T) {
		next := family("ignored", "h2")
		next.ExpiresAt = t0.Add(48 * time.Hour)
		next.AccessJTIs = []string{"j2", "j1"}
		next.RotatedAt = t0.Add(time.Minute)
		// The store, not the caller, says which hash was replaced.
		next.PrevHash = []byte("made up")
		if err := b.Rotate(ctx, ns, "f1", []byte("h1"), next); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		got, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		want := next
		want.Family = "f1"
		want.AccessJTIs = []string{"j1", "j2"}
		want.PrevHash = []byte("h1")
		mustDeepEqual(t, got, want)

		tests := []struct {
			name    string
			family  string
			oldHash string
			next    RefreshToken
			want    error // nil: any error
		}{
			{"reuse of rotated token", "f1", "h1", family("f1", "h3"), ErrConflict},
			{"wrong hash", "f1", "zz", family("f1", "h3"), ErrConflict},
			{"empty old hash", "f1", "", family("f1", "h3"), ErrConflict},
			{"missing family", "nope", "h1", family("nope", "h3"), ErrNotFound},
			{"empty next hash", "f1", "h2", family("f1", ""), nil},
		}
		for _, tt := range tests {
			err := b.Rotate(ctx, ns, tt.family, []byte(tt.oldHash), tt.next)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("%s: Rotate = %v, want %v", tt.name, err, tt.want)
			}
		}
		got, err = b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.TokenHash, []byte("h2")) {
			t.Errorf("failed rotations changed the hash to %q", got.TokenHash)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		got, err := b.RevokeFamily(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Revoked {
			t.Error("RevokeFamily returned a family not marked revoked")
		}
		mustDeepEqual(t, got.AccessJTIs, []string{"j1", "j2"})
		stored, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		mustDeepEqual(t, stored, got)
		if _, err := b.RevokeFamily(ctx, ns, "f1"); err != nil {
			t.Errorf("second RevokeFamily: %v", err)
		}
		// The current token of a revoked family no longer rotates.
		if err := b.Rotate(ctx, ns, "f1", []byte("h2"), family("f1", "h3")); !errors.Is(err, ErrConflict) {
			t.Errorf("Rotate of revoked family = %v, want ErrConflict", err)
		}
	})
}

func TestRotateConcurrent(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	ns := DefaultNamespace
	if err := b.CreateFamily(ctx, ns, family("f", "h0")); err != nil {
		t.Fatal(err)
	}

	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			next := family("f", fmt.Sprintf("h%d", i+1))
			next.AccessJTIs = []string{fmt.Sprintf("j%d", i+1)}
			errs[i] = b.Rotate(ctx, ns, "f", []byte("h0"), next)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrConflict):
			t.Errorf("rotation %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got, err := b.Family(ctx, ns, "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("h%d", winner+1); string(got.TokenHash) != want {
		t.Errorf("hash = %q, want the winner's %q", got.TokenHash, want)
	}
	mustDeepEqual(t, got.AccessJTIs, []string{fmt.Sprintf("j%d", winner+1)})
	if string(got.PrevHash) != "h0" {
		t.Errorf("prev hash = %q, want the replaced h0", got.PrevHash)
	}
}

func TestRevocations(t *testing.T) {
	ctx := context.Background()
	b, clk, _ := openTest(t)
	ns := DefaultNamespace
	exp := t0.Add(time.Hour)

	if err := b.Revoke(ctx, ns, "j", exp); err != nil {
		t.Fatal(err)
	}
	// An earlier exp does not shorten the revocation.
	if err := b.Revoke(ctx, ns, "j", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, ns, "", exp); err == nil {
		t.Error("Revoke with empty jti succeeded")
	}

	tests := []struct {
		name string
		now  time.Time
		jti  string
		want bool
	}{
		{"before exp", t0, "j", true},
		{"just before exp", exp.Add(-time.Nanosecond), "j", true},
		{"at exp", exp, "j", false},
		{"after exp", exp.Add(time.Hour), "j", false},
		{"unknown", t0, "other", false},
		{"empty", t0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.now)
			got, err := b.Revoked(ctx, ns, tt.jti)
			if err != nil || got != tt.want {
				t.Fatalf("Revoked(%q) at %v = %v, %v; want %v", tt.jti, tt.now, got, err, tt.want)
			}
		})
	}
}

func TestUseOnce(t *testing.T) {
	ctx := context.Background()
	b, clk, _ := openTest(t)
	ns := DefaultNamespace
	exp := t0.Add(time.Minute)

	steps := []struct {
		name string
		now  time.Time
		jti  string
		exp  time.Time
		want bool
	}{
		{"first use", t0, "a", exp, true},
		{"second use", t0, "a", exp, false},
		{"other id", t0, "b", exp, true},
		{"just before exp", exp.Add(-time.Nanosecond), "a", exp, false},
		{"at exp", exp, "a", exp.Add(time.Minute), true},
		{"reuse after new exp recorded", exp, "a", exp.Add(time.Minute), false},
	}
	for _, s := range steps {
		clk.Set(s.now)
		got, err := b.UseOnce(ctx, ns, s.jti, s.exp)
		if err != nil || got != s.want {
			t.Fatalf("%s: UseOnce(%q) = %v, %v; want %v", s.name, s.jti, got, err, s.want)
		}
	}
	if ok, err := b.UseOnce(ctx, ns, "", exp); err == nil || ok {
		t.Errorf("UseOnce with empty jti = %v, %v; want false and an error", ok, err)
	}
}

// count returns how many records the kind bucket of ns holds.
func count(t *testing.T, b *Bolt, ns string, kind []byte) int {
	t.Helper()
	var n int
	err := b.db.View(func(tx *bolt.Tx) error {
		if bk := readBucket(tx, ns, kind); bk != nil {
			n = bk.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	now := t0.Add(time.Hour)
	past, future := now.Add(-time.Second), now.Add(time.Second)

	for _, ns := range []string{"default", "other"} {
		for _, e := range []struct {
			jti string
			exp time.Time
		}{{"past", past}, {"now", now}, {"future", future}} {
			if err := b.Revoke(ctx, ns, e.jti, e.exp); err != nil {
				t.Fatal(err)
			}
			if _, err := b.UseOnce(ctx, ns, e.jti, e.exp); err != nil {
				t.Fatal(err)
			}
			f := family(e.jti, "h")
			f.ExpiresAt = e.exp
			if err := b.CreateFamily(ctx, ns, f); err != nil {
				t.Fatal(err)
			}
		}
		// Keys and clients never expire.
		if err := b.PutKey(ctx, ns, key("k", t0)); err != nil {
			t.Fatal(err)
		}
		if err := b.CreateClient(ctx, ns, client("c")); err != nil {
			t.Fatal(err)
		}
	}

	n, err := b.Sweep(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// Per namespace: "past" and "now" of three kinds.
	if n != 2*3*2 {
		t.Errorf("Sweep deleted %d, want 12", n)
	}
	for _, ns := range []string{"default", "other"} {
		for _, kind := range [][]byte{bucketRevoked, bucketOneTime, bucketRefresh} {
			if got := count(t, b, ns, kind); got != 1 {
				t.Errorf("%s/%s holds %d records after Sweep, want 1", ns, kind, got)
			}
		}
		if _, err := b.Family(ctx, ns, "future"); err != nil {
			t.Errorf("%s: live family swept: %v", ns, err)
		}
		for _, id := range []string{"past", "now"} {
			if _, err := b.Family(ctx, ns, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: expired family %q = %v, want ErrNotFound", ns, id, err)
			}
		}
		if ok, err := b.Revoked(ctx, ns, "future"); err != nil || !ok {
			t.Errorf("%s: live revocation swept: %v, %v", ns, ok, err)
		}
		if got := count(t, b, ns, bucketKeys); got != 1 {
			t.Errorf("%s: keys = %d, want 1", ns, got)
		}
		if got := count(t, b, ns, bucketClients); got != 1 {
			t.Errorf("%s: clients = %d, want 1", ns, got)
		}
	}
	if n, err := b.Sweep(ctx, now); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0, nil", n, err)
	}
}

func TestDurability(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	dir := t.TempDir()
	opts := BoltOptions{Now: clk.Now}
	b, err := OpenBolt(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ns := DefaultNamespace
	k := key("k", t0)
	c := client("c")
	f := family("f", "h1")
	f.AccessJTIs = []string{"j1"}
	for _, err := range []error{
		b.PutKey(ctx, ns, k),
		b.CreateClient(ctx, ns, c),
		b.CreateFamily(ctx, ns, f),
		b.Rotate(ctx, ns, "f", []byte("h1"), rotated("f", "h2")),
		b.Revoke(ctx, ns, "j1", t0.Add(time.Hour)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := b.UseOnce(ctx, ns, "once", t0.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("UseOnce = %v, %v", ok, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = OpenBolt(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := b.Keys(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	mustDeepEqual(t, keys, []SigningKey{k})
	gotC, err := b.Client(ctx, ns, "c")
	if err != nil {
		t.Fatal(err)
	}
	mustDeepEqual(t, gotC, c)
	gotF, err := b.Family(ctx, ns, "f")
	if err != nil {
		t.Fatal(err)
	}
	// The previous hash and the rotation time survive too: the reuse grace
	// of a refresh that lost a race works across a restart.
	wantF := rotated("f", "h2")
	wantF.AccessJTIs = []string{"j1"}
	wantF.PrevHash = []byte("h1")
	mustDeepEqual(t, gotF, wantF)
	if ok, err := b.Revoked(ctx, ns, "j1"); err != nil || !ok {
		t.Errorf("Revoked after reopen = %v, %v", ok, err)
	}
	if ok, err := b.UseOnce(ctx, ns, "once", t0.Add(time.Hour)); err != nil || ok {
		t.Errorf("UseOnce after reopen = %v, %v; want false", ok, err)
	}
}

func TestNamespacesIsolated(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	a, o := "a", "b"
	exp := t0.Add(time.Hour)

	if err := b.PutKey(ctx, a, key("k", t0)); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateClient(ctx, a, client("c")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateFamily(ctx, a, family("f", "h")); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, a, "j", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UseOnce(ctx, a, "j", exp); err != nil {
		t.Fatal(err)
	}

	if keys, err := b.Keys(ctx, o); err != nil || len(keys) != 0 {
		t.Errorf("Keys(other) = %v, %v", keys, err)
	}
	if list, err := b.ListClients(ctx, o); err != nil || len(list) != 0 {
		t.Errorf("ListClients(other) = %v, %v", list, err)
	}
	if _, err := b.Client(ctx, o, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Client(other) = %v, want ErrNotFound", err)
	}
	if err := b.DeleteKey(ctx, o, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteKey(other) = %v, want ErrNotFound", err)
	}
	if _, err := b.Family(ctx, o, "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Family(other) = %v, want ErrNotFound", err)
	}
	if err := b.Rotate(ctx, o, "f", []byte("h"), family("f", "h2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rotate(other) = %v, want ErrNotFound", err)
	}
	if ok, err := b.Revoked(ctx, o, "j"); err != nil || ok {
		t.Errorf("Revoked(other) = %v, %v", ok, err)
	}
	if ok, err := b.UseOnce(ctx, o, "j", exp); err != nil || !ok {
		t.Errorf("UseOnce(other) = %v, %v; want true", ok, err)
	}
	// The same ids in the other namespace do not conflict.
	if err := b.CreateClient(ctx, o, client("c")); err != nil {
		t.Errorf("CreateClient(other): %v", err)
	}
	if err := b.CreateFamily(ctx, o, family("f", "h")); err != nil {
		t.Errorf("CreateFamily(other): %v", err)
	}
	// And the first namespace still has everything.
	if keys, err := b.Keys(ctx, a); err != nil || len(keys) != 1 {
		t.Errorf("Keys(a) = %v, %v", keys, err)
	}
	if ok, err := b.Revoked(ctx, a, "j"); err != nil || !ok {
		t.Errorf("Revoked(a) = %v, %v", ok, err)
	}
}

// ops calls every namespaced method once with valid arguments.
func ops(b *Bolt) map[string]func(ctx context.Context, ns string) error {
	exp := t0.Add(time.Hour)
	return map[string]func(ctx context.Context, ns string) error{
		"PutKey": func(ctx context.Context, ns string) error { return b.PutKey(ctx, ns, key("k", t0)) },
		"Keys": func(ctx context.Context, ns string) error {
			_, err := b.Keys(ctx, ns)
			return err
		},
		"DeleteKey":    func(ctx context.Context, ns string) error { return b.DeleteKey(ctx, ns, "k") },
		"CreateClient": func(ctx context.Context, ns string) error { return b.CreateClient(ctx, ns, client("c")) },
		"UpdateClient": func(ctx context.Context, ns string) error { return b.UpdateClient(ctx, ns, client("c")) },
		"Client": func(ctx context.Context, ns string) error {
			_, err := b.Client(ctx, ns, "c")
			return err
		},
		"ListClients": func(ctx context.Context, ns string) error {
			_, err := b.ListClients(ctx, ns)
			return err
		},
		"DeleteClient": func(ctx context.Context, ns string) error { return b.DeleteClient(ctx, ns, "c") },
		"CreateFamily": func(ctx context.Context, ns string) error { return b.CreateFamily(ctx, ns, family("f", "h")) },
		"Rotate": func(ctx context.Context, ns string) error {
			return b.Rotate(ctx, ns, "f", []byte("h"), family("f", "h2"))
		},
		"Family": func(ctx context.Context, ns string) error {
			_, err := b.Family(ctx, ns, "f")
			return err
		},
		"RevokeFamily": func(ctx context.Context, ns string) error {
			_, err := b.RevokeFamily(ctx, ns, "f")
			return err
		},
		"Revoke": func(ctx context.Context, ns string) error { return b.Revoke(ctx, ns, "j", exp) },
		"Revoked": func(ctx context.Context, ns string) error {
			_, err := b.Revoked(ctx, ns, "j")
			return err
		},
		"UseOnce": func(ctx context.Context, ns string) error {
			_, err := b.UseOnce(ctx, ns, "j", exp)
			return err
		},
	}
}

func TestInvalidNamespace(t *testing.T) {
	b, _, _ := openTest(t)
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for name, op := range ops(b) {
			err := op(context.Background(), ns)
			if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
				t.Errorf("%s(ns=%q) = %v, want a namespace error", name, ns, err)
			}
		}
	}
	// Nothing was written.
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			return fmt.Errorf("unexpected bucket %q", name)
		})
	})
	if err != nil {
		t.Error(err)
	}
}

func TestCancelledContext(t *testing.T) {
	b, _, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, op := range ops(b) {
		if err := op(ctx, DefaultNamespace); !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", name, err)
		}
	}
	if err := b.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping = %v, want context.Canceled", err)
	}
	if n, err := b.Sweep(ctx, t0); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Sweep = %d, %v; want 0, context.Canceled", n, err)
	}
	// Nothing was written.
	if got := count(t, b, DefaultNamespace, bucketKeys); got != 0 {
		t.Errorf("cancelled PutKey wrote %d keys", got)
	}
}

func revision(rev, digest string, at time.Time) BundleRevision {
	return BundleRevision{Revision: rev, Digest: digest, PushedAt: at, PushedBy: "ci", Tests: BundleTests{Passed: 3}}
}

func TestBundleRevisions(t *testing.T) {
	b, _, _ := openTest(t)
	ctx := context.Background()
	if _, err := b.ActiveRevision(ctx, DefaultNamespace); !errors.Is(err, ErrNotFound) {
		t.Fatalf("active before any push: %v", err)
	}
	if revs, err := b.Revisions(ctx, DefaultNamespace); err != nil || len(revs) != 0 {
		t.Fatalf("empty list: %v %v", revs, err)
	}
	colon := "sha256:" + strings.Repeat("ab", 32)
	for i, r := range []BundleRevision{revision("v1", "sha256:1", t0), revision("v2/x", "sha256:2", t0.Add(time.Minute)), revision(colon, colon, t0.Add(2*time.Minute))} {
		created, err := b.PutRevision(ctx, DefaultNamespace, r, []byte(fmt.Sprintf("archive-%d", i)))
		if err != nil || !created {
			t.Fatalf("put %s: %v %v", r.Revision, created, err)
		}
	}
	// Same revision and digest: idempotent, the first archive stays.
	created, err := b.PutRevision(ctx, DefaultNamespace, revision("v1", "sha256:1", t0.Add(time.Hour)), []byte("other bytes"))
	if err != nil || created {
		t.Fatalf("identical put: %v %v", created, err)
	}
	// Same revision, other digest: conflict, nothing changes.
	if _, err := b.PutRevision(ctx, DefaultNamespace, revision("v1", "sha256:9", t0), []byte("x")); !errors.Is(err, ErrConflict) {
		t.Fatalf("conflicting put: %v", err)
	}
	if _, err := b.PutRevision(ctx, DefaultNamespace, BundleRevision{Revision: "v9"}, nil); err == nil {
		t.Fatal("a revision without digest must be refused")
	}
	revs, err := b.Revisions(ctx, DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range revs {
		order = append(order, r.Revision)
	}
	if want := []string{colon, "v2/x", "v1"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order %v, want newest first %v", order, want)
	}
	if revs[2].Size != int64(len("archive-0")) || revs[2].PushedAt != t0 || revs[2].Tests.Passed != 3 || revs[2].PushedBy != "ci" {
		t.Fatalf("record %+v", revs[2])
	}
	if a, err := b.Archive(ctx, DefaultNamespace, "v1"); err != nil || string(a) != "archive-0" {
		t.Fatalf("archive v1: %q %v", a, err)
	}
	if _, err := b.Archive(ctx, DefaultNamespace, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown archive: %v", err)
	}
	if _, err := b.Revision(ctx, DefaultNamespace, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown revision: %v", err)
	}
	if err := b.SetActive(ctx, DefaultNamespace, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("activating an unknown revision: %v", err)
	}
	if err := b.SetActive(ctx, DefaultNamespace, colon); err != nil {
		t.Fatal(err)
	}
	if rev, err := b.ActiveRevision(ctx, DefaultNamespace); err != nil || rev != colon {
		t.Fatalf("active %q %v", rev, err)
	}
	// Namespaces are apart.
	if revs, _ := b.Revisions(ctx, "other"); len(revs) != 0 {
		t.Fatalf("other namespace sees %v", revs)
	}
	if _, err := b.ActiveRevision(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other namespace active: %v", err)
	}
}

// TestBundleRevisionsSurviveReopen: what was committed is there after the
// file is closed and opened again (as after a crash or a restart), and the
// active pointer is never left pointing at nothing.
func TestBundleRevisionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	archive := bytes.Repeat([]byte{0x1f, 0x8b, 7}, 1000)
	if _, err := b.PutRevision(ctx, DefaultNamespace, revision("v1", "sha256:1", t0), archive); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutRevision(ctx, DefaultNamespace, revision("v2", "sha256:2", t0.Add(time.Second)), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(ctx, DefaultNamespace, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(ctx, DefaultNamespace, "v3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rev, err := b.ActiveRevision(ctx, DefaultNamespace); err != nil || rev != "v1" {
		t.Fatalf("active after reopen: %q %v", rev, err)
	}
	if a, err := b.Archive(ctx, DefaultNamespace, "v1"); err != nil || !bytes.Equal(a, archive) {
		t.Fatalf("archive after reopen: %d bytes %v", len(a), err)
	}
	if revs, err := b.Revisions(ctx, DefaultNamespace); err != nil || len(revs) != 2 {
		t.Fatalf("revisions after reopen: %v %v", revs, err)
	}
}

// TestConcurrentPutRevision: racing pushes of one revision with two
// different contents: exactly one content wins, every caller with that
// content sees success (one of them "created"), every other a conflict.
func TestConcurrentPutRevision(t *testing.T) {
	b, _, _ := openTest(t)
	ctx := context.Background()
	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[string]int{}
		ok      = map[string]int{}
		lost    = map[string]int{}
	)
	for i := 0; i < n; i++ {
		digest := fmt.Sprintf("sha256:%d", i%2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := b.PutRevision(ctx, DefaultNamespace, revision("v1", digest, t0), []byte(digest))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrConflict):
				lost[digest]++
			case err != nil:
				t.Errorf("put: %v", err)
			case c:
				created[digest]++
				ok[digest]++
			default:
				ok[digest]++
			}
		}()
	}
	wg.Wait()
	if len(created) != 1 {
		t.Fatalf("created %v: exactly one put must create", created)
	}
	var winner string
	for d, c := range created {
		winner = d
		if c != 1 {
			t.Fatalf("created %d times", c)
		}
	}
	if ok[winner] != n/2 || lost[winner] != 0 || len(ok) != 1 || sumValues(lost) != n/2 {
		t.Fatalf("winner %s: ok %v lost %v", winner, ok, lost)
	}
	r, err := b.Revision(ctx, DefaultNamespace, "v1")
	if err != nil || r.Digest != winner {
		t.Fatalf("stored %+v %v, winner %s", r, err, winner)
	}
	if a, _ := b.Archive(ctx, DefaultNamespace, "v1"); string(a) != winner {
		t.Fatalf("archive %q of another content than the record %s", a, winner)
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
