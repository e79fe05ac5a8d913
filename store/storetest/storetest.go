// Package storetest is the conformance suite every store.Store runs, so
// that the embedded and the Redis store cannot drift apart: Run checks the
// semantics documented in package store (not-found and conflict errors,
// orderings, Rotate's compare-and-swap, UseOnce's first use, expiry against
// the store's clock, idempotent PutRevision, namespaces kept apart). It
// also holds the record builders those tests share.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// Opener returns a new, empty store whose Revoked and UseOnce read the
// clock now, and closes it when t ends.
type Opener func(t *testing.T, now func() time.Time) store.Store

// Run runs every conformance test against stores made by open, each as a
// subtest with a store of its own.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Keys", testKeys},
		{"Clients", testClients},
		{"Families", testFamilies},
		{"RotateConcurrent", testRotateConcurrent},
		{"Revocations", testRevocations},
		{"RevokedTokens", testRevokedTokens},
		{"UseOnce", testUseOnce},
		{"UseOnceConcurrent", testUseOnceConcurrent},
		{"NamespacesIsolated", testNamespacesIsolated},
		{"InvalidNamespace", testInvalidNamespace},
		{"CancelledContext", testCancelledContext},
		{"BundleRevisions", testBundleRevisions},
		{"ConcurrentPutRevision", testConcurrentPutRevision},
		{"Shadows", testShadows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// start opens a store with a fake clock at T0.
func start(t *testing.T, open Opener) (store.Store, *Clock) {
	t.Helper()
	clk := &Clock{now: T0}
	return open(t, clk.Now), clk
}

// testUseOnceConcurrent: of concurrent first uses of one id exactly one
// reports true.
func testUseOnceConcurrent(t *testing.T, open Opener) {
	b, _ := start(t, open)
	ctx := context.Background()
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	gate := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-gate
			ok, err := b.UseOnce(ctx, store.DefaultNamespace, "jti", T0.Add(time.Minute))
			if err != nil {
				t.Errorf("UseOnce: %v", err)
			}
			if ok {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	if firsts != 1 {
		t.Fatalf("%d of %d concurrent uses were first, want exactly 1", firsts, n)
	}
}

// T0 is the fake clock's start, in the future so that Redis never
// expires a record the tests still read.
var T0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Clock is a settable fake clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Key is a signing key record created at created.
func Key(kid string, created time.Time) store.SigningKey {
	return store.SigningKey{
		KID:        kid,
		Alg:        "ES256",
		PrivateJWK: []byte(`{"kty":"EC","kid":"` + kid + `"}`),
		CreatedAt:  created,
		SignFrom:   created.Add(time.Hour),
	}
}

// Client is a client record with a secret, created at T0.
func Client(id string) store.Client {
	return store.Client{
		ID:         id,
		SecretHMAC: []byte("hmac-" + id),
		Scopes:     []string{"read"},
		Grants:     []string{"client_credentials"},
		CreatedAt:  T0,
		UpdatedAt:  T0,
	}
}

// Family is a new refresh family expiring a day after T0.
func Family(id, hash string) store.RefreshToken {
	return store.RefreshToken{
		Family:    id,
		TokenHash: []byte(hash),
		ClientID:  "c1",
		Subject:   "alice",
		Scopes:    []string{"read"},
		ExpiresAt: T0.Add(24 * time.Hour),
	}
}

// Rotated is Family(id, hash) as a rotation writes it, at T0+1m.
func Rotated(id, hash string) store.RefreshToken {
	t := Family(id, hash)
	t.RotatedAt = T0.Add(time.Minute)
	return t
}

// MustDeepEqual stops t unless got and want are deeply equal.
func MustDeepEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// Revision is a bundle revision record pushed at at.
func Revision(rev, digest string, at time.Time) store.BundleRevision {
	return store.BundleRevision{Revision: rev, Digest: digest, PushedAt: at, PushedBy: "ci", Tests: store.BundleTests{Passed: 3}}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Ops calls every namespaced method once with valid arguments.
func Ops(b store.Store) map[string]func(ctx context.Context, ns string) error {
	exp := T0.Add(time.Hour)
	return map[string]func(ctx context.Context, ns string) error{
		"PutKey": func(ctx context.Context, ns string) error { return b.PutKey(ctx, ns, Key("k", T0)) },
		"Keys": func(ctx context.Context, ns string) error {
			_, err := b.Keys(ctx, ns)
			return err
		},
		"DeleteKey":    func(ctx context.Context, ns string) error { return b.DeleteKey(ctx, ns, "k") },
		"CreateClient": func(ctx context.Context, ns string) error { return b.CreateClient(ctx, ns, Client("c")) },
		"UpdateClient": func(ctx context.Context, ns string) error { return b.UpdateClient(ctx, ns, Client("c")) },
		"Client": func(ctx context.Context, ns string) error {
			_, err := b.Client(ctx, ns, "c")
			return err
		},
		"ListClients": func(ctx context.Context, ns string) error {
			_, err := b.ListClients(ctx, ns)
			return err
		},
		"DeleteClient": func(ctx context.Context, ns string) error { return b.DeleteClient(ctx, ns, "c") },
		"CreateFamily": func(ctx context.Context, ns string) error { return b.CreateFamily(ctx, ns, Family("f", "h")) },
		"Rotate": func(ctx context.Context, ns string) error {
			return b.Rotate(ctx, ns, "f", []byte("h"), Family("f", "h2"))
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
		"RevokedTokens": func(ctx context.Context, ns string) error {
			_, err := b.RevokedTokens(ctx, ns)
			return err
		},
		"UseOnce": func(ctx context.Context, ns string) error {
			_, err := b.UseOnce(ctx, ns, "j", exp)
			return err
		},
	}
}

func testKeys(t *testing.T, open Opener) {
	ctx := context.Background()
	b, _ := start(t, open)
	ns := store.DefaultNamespace

	got, err := b.Keys(ctx, ns)
	if err != nil || len(got) != 0 {
		t.Fatalf("Keys on empty store = %v, %v", got, err)
	}

	k3 := Key("c", T0.Add(2*time.Hour))
	k1 := Key("b", T0)
	k2 := Key("a", T0.Add(time.Hour))
	k1b := Key("z", T0) // same CreatedAt as k1: KID breaks the tie
	for _, k := range []store.SigningKey{k3, k1b, k1, k2} {
		if err := b.PutKey(ctx, ns, k); err != nil {
			t.Fatalf("PutKey(%s): %v", k.KID, err)
		}
	}
	// Replace k2.
	k2.RetiredAt = T0.Add(3 * time.Hour)
	k2.PublishUntil = T0.Add(4 * time.Hour)
	k2.Revoked = true
	if err := b.PutKey(ctx, ns, k2); err != nil {
		t.Fatal(err)
	}
	got, err = b.Keys(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	MustDeepEqual(t, got, []store.SigningKey{k1, k1b, k2, k3})

	tests := []struct {
		name string
		kid  string
		want error
	}{
		{"existing", "a", nil},
		{"already deleted", "a", store.ErrNotFound},
		{"never existed", "nope", store.ErrNotFound},
		{"empty", "", store.ErrNotFound},
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
	MustDeepEqual(t, got, []store.SigningKey{k1, k1b, k3})

	if err := b.PutKey(ctx, ns, store.SigningKey{}); err == nil {
		t.Error("PutKey with empty KID succeeded")
	}
}

func testClients(t *testing.T, open Opener) {
	ctx := context.Background()
	b, _ := start(t, open)
	ns := store.DefaultNamespace

	list, err := b.ListClients(ctx, ns)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListClients on empty store = %v, %v", list, err)
	}

	for _, id := range []string{"c", "a", "b"} {
		if err := b.CreateClient(ctx, ns, Client(id)); err != nil {
			t.Fatalf("CreateClient(%s): %v", id, err)
		}
	}

	t.Run("create", func(t *testing.T) {
		tests := []struct {
			name string
			c    store.Client
			want error
		}{
			{"duplicate", Client("a"), store.ErrConflict},
			{"empty id", store.Client{}, nil},
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
		MustDeepEqual(t, got, Client("a"))
		for _, id := range []string{"nope", ""} {
			if _, err := b.Client(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Client(%q) = %v, want store.ErrNotFound", id, err)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		c := Client("b")
		c.SecretHMAC = nil
		c.JWKS = []byte(`{"keys":[]}`)
		c.Scopes = []string{"read", "write"}
		c.UpdatedAt = T0.Add(time.Minute)
		if err := b.UpdateClient(ctx, ns, c); err != nil {
			t.Fatal(err)
		}
		got, err := b.Client(ctx, ns, "b")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, c)
		for _, id := range []string{"nope", ""} {
			if err := b.UpdateClient(ctx, ns, Client(id)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UpdateClient(%q) = %v, want store.ErrNotFound", id, err)
			}
		}
		if _, err := b.Client(ctx, ns, "nope"); !errors.Is(err, store.ErrNotFound) {
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
		MustDeepEqual(t, ids, []string{"a", "b", "c"})
	})

	t.Run("delete", func(t *testing.T) {
		tests := []struct {
			id   string
			want error
		}{
			{"a", nil},
			{"a", store.ErrNotFound},
			{"nope", store.ErrNotFound},
			{"", store.ErrNotFound},
		}
		for _, tt := range tests {
			if err := b.DeleteClient(ctx, ns, tt.id); !errors.Is(err, tt.want) {
				t.Errorf("DeleteClient(%q) = %v, want %v", tt.id, err, tt.want)
			}
		}
		if _, err := b.Client(ctx, ns, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Client after delete = %v, want store.ErrNotFound", err)
		}
	})
}

func testUseOnce(t *testing.T, open Opener) {
	ctx := context.Background()
	b, clk := start(t, open)
	ns := store.DefaultNamespace
	exp := T0.Add(time.Minute)

	steps := []struct {
		name string
		now  time.Time
		jti  string
		exp  time.Time
		want bool
	}{
		{"first use", T0, "a", exp, true},
		{"second use", T0, "a", exp, false},
		{"other id", T0, "b", exp, true},
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

func testNamespacesIsolated(t *testing.T, open Opener) {
	ctx := context.Background()
	b, _ := start(t, open)
	a, o := "a", "b"
	exp := T0.Add(time.Hour)

	if err := b.PutKey(ctx, a, Key("k", T0)); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateClient(ctx, a, Client("c")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateFamily(ctx, a, Family("f", "h")); err != nil {
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
	if _, err := b.Client(ctx, o, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Client(other) = %v, want store.ErrNotFound", err)
	}
	if err := b.DeleteKey(ctx, o, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteKey(other) = %v, want store.ErrNotFound", err)
	}
	if _, err := b.Family(ctx, o, "f"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Family(other) = %v, want store.ErrNotFound", err)
	}
	if err := b.Rotate(ctx, o, "f", []byte("h"), Family("f", "h2")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rotate(other) = %v, want store.ErrNotFound", err)
	}
	if ok, err := b.Revoked(ctx, o, "j"); err != nil || ok {
		t.Errorf("Revoked(other) = %v, %v", ok, err)
	}
	if ok, err := b.UseOnce(ctx, o, "j", exp); err != nil || !ok {
		t.Errorf("UseOnce(other) = %v, %v; want true", ok, err)
	}
	// The same ids in the other namespace do not conflict.
	if err := b.CreateClient(ctx, o, Client("c")); err != nil {
		t.Errorf("CreateClient(other): %v", err)
	}
	if err := b.CreateFamily(ctx, o, Family("f", "h")); err != nil {
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

func testInvalidNamespace(t *testing.T, open Opener) {
	b, _ := start(t, open)
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for name, op := range Ops(b) {
			err := op(context.Background(), ns)
			if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				t.Errorf("%s(ns=%q) = %v, want a namespace error", name, ns, err)
			}
		}
	}
	// Nothing was written where a valid namespace could see it.
	mustBeEmpty(t, b, store.DefaultNamespace, "a")
}

// mustBeEmpty fails t unless every namespace of nss holds no record Ops
// would have written.
func mustBeEmpty(t *testing.T, b store.Store, nss ...string) {
	t.Helper()
	ctx := context.Background()
	for _, ns := range nss {
		if keys, err := b.Keys(ctx, ns); err != nil || len(keys) != 0 {
			t.Errorf("Keys(%q) = %v, %v; want none", ns, keys, err)
		}
		if list, err := b.ListClients(ctx, ns); err != nil || len(list) != 0 {
			t.Errorf("ListClients(%q) = %v, %v; want none", ns, list, err)
		}
		if _, err := b.Family(ctx, ns, "f"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Family(%q) = %v, want ErrNotFound", ns, err)
		}
		if ok, err := b.Revoked(ctx, ns, "j"); err != nil || ok {
			t.Errorf("Revoked(%q) = %v, %v; want false", ns, ok, err)
		}
		if list, err := b.RevokedTokens(ctx, ns); err != nil || len(list) != 0 {
			t.Errorf("RevokedTokens(%q) = %v, %v; want none", ns, list, err)
		}
	}
}

func testCancelledContext(t *testing.T, open Opener) {
	b, _ := start(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, op := range Ops(b) {
		if err := op(ctx, store.DefaultNamespace); !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", name, err)
		}
	}
	if err := b.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping = %v, want context.Canceled", err)
	}
	// Nothing was written.
	mustBeEmpty(t, b, store.DefaultNamespace)
}

func testBundleRevisions(t *testing.T, open Opener) {
	b, _ := start(t, open)
	ctx := context.Background()
	if _, err := b.ActiveRevision(ctx, store.DefaultNamespace); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("active before any push: %v", err)
	}
	if revs, err := b.Revisions(ctx, store.DefaultNamespace); err != nil || len(revs) != 0 {
		t.Fatalf("empty list: %v %v", revs, err)
	}
	colon := "sha256:" + strings.Repeat("ab", 32)
	for i, r := range []store.BundleRevision{Revision("v1", "sha256:1", T0), Revision("v2/x", "sha256:2", T0.Add(time.Minute)), Revision(colon, colon, T0.Add(2*time.Minute))} {
		created, err := b.PutRevision(ctx, store.DefaultNamespace, r, []byte(fmt.Sprintf("archive-%d", i)))
		if err != nil || !created {
			t.Fatalf("put %s: %v %v", r.Revision, created, err)
		}
	}
	// Same revision and digest: idempotent, the first archive stays.
	created, err := b.PutRevision(ctx, store.DefaultNamespace, Revision("v1", "sha256:1", T0.Add(time.Hour)), []byte("other bytes"))
	if err != nil || created {
		t.Fatalf("identical put: %v %v", created, err)
	}
	// Same revision, other digest: conflict, nothing changes.
	if _, err := b.PutRevision(ctx, store.DefaultNamespace, Revision("v1", "sha256:9", T0), []byte("x")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflicting put: %v", err)
	}
	if _, err := b.PutRevision(ctx, store.DefaultNamespace, store.BundleRevision{Revision: "v9"}, nil); err == nil {
		t.Fatal("a revision without digest must be refused")
	}
	revs, err := b.Revisions(ctx, store.DefaultNamespace)
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
	if revs[2].Size != int64(len("archive-0")) || revs[2].PushedAt != T0 || revs[2].Tests.Passed != 3 || revs[2].PushedBy != "ci" {
		t.Fatalf("record %+v", revs[2])
	}
	if a, err := b.Archive(ctx, store.DefaultNamespace, "v1"); err != nil || string(a) != "archive-0" {
		t.Fatalf("archive v1: %q %v", a, err)
	}
	if _, err := b.Archive(ctx, store.DefaultNamespace, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown archive: %v", err)
	}
	if _, err := b.Revision(ctx, store.DefaultNamespace, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown revision: %v", err)
	}
	if err := b.SetActive(ctx, store.DefaultNamespace, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("activating an unknown revision: %v", err)
	}
	if err := b.SetActive(ctx, store.DefaultNamespace, colon); err != nil {
		t.Fatal(err)
	}
	if rev, err := b.ActiveRevision(ctx, store.DefaultNamespace); err != nil || rev != colon {
		t.Fatalf("active %q %v", rev, err)
	}
	// Namespaces are apart.
	if revs, _ := b.Revisions(ctx, "other"); len(revs) != 0 {
		t.Fatalf("other namespace sees %v", revs)
	}
	if _, err := b.ActiveRevision(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other namespace active: %v", err)
	}
}

// TestConcurrentPutRevision: racing pushes of one revision with two
// different contents: exactly one content wins, every caller with that
// content sees success (one of them "created"), every other a conflict.
func testConcurrentPutRevision(t *testing.T, open Opener) {
	b, _ := start(t, open)
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
			c, err := b.PutRevision(ctx, store.DefaultNamespace, Revision("v1", digest, T0), []byte(digest))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrConflict):
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
	r, err := b.Revision(ctx, store.DefaultNamespace, "v1")
	if err != nil || r.Digest != winner {
		t.Fatalf("stored %+v %v, winner %s", r, err, winner)
	}
	if a, _ := b.Archive(ctx, store.DefaultNamespace, "v1"); string(a) != winner {
		t.Fatalf("archive %q of another content than the record %s", a, winner)
	}
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }
