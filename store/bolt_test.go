package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/store/storetest"
)

// TestConformance runs the shared store semantics against Bolt.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
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
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openTest opens a Bolt in a fresh temp dir with a fake clock at
// storetest.T0 and closes it when the test ends.
func openTest(t *testing.T) (*store.Bolt, *storetest.Clock, string) {
	t.Helper()
	clk := storetest.NewClock(storetest.T0)
	dir := t.TempDir()
	b, err := store.OpenBolt(dir, store.BoltOptions{Now: clk.Now})
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

func TestOpenBoltCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	b, err := store.OpenBolt(dir, store.BoltOptions{})
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
	st, err = os.Stat(filepath.Join(dir, store.BoltFile))
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
	if _, err := store.OpenBolt("", store.BoltOptions{}); err == nil {
		t.Error("OpenBolt(\"\") succeeded")
	}
	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(file, store.BoltOptions{}); err == nil || errors.Is(err, store.ErrLocked) {
		t.Errorf("OpenBolt(file) = %v, want a non-lock error", err)
	}
}

func TestOpenBoltLocked(t *testing.T) {
	_, _, dir := openTest(t)
	b2, err := store.OpenBolt(dir, store.BoltOptions{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		b2.Close()
		t.Fatal("second OpenBolt succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another Verdict process") {
		t.Errorf("err = %q, want it to say the dir is in use", err)
	}
}

func TestCloseReleasesLock(t *testing.T) {
	dir := t.TempDir()
	b, err := store.OpenBolt(dir, store.BoltOptions{})
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
	if _, err := b.Keys(context.Background(), store.DefaultNamespace); err == nil {
		t.Error("Keys after Close succeeded")
	}
	b2, err := store.OpenBolt(dir, store.BoltOptions{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	b2.Close()
}

func TestZeroBolt(t *testing.T) {
	var b store.Bolt
	if err := b.Ping(context.Background()); err == nil {
		t.Error("Ping on zero store.Bolt succeeded")
	}
	if _, err := b.Client(context.Background(), store.DefaultNamespace, "x"); err == nil {
		t.Error("Client on zero store.Bolt succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close on zero store.Bolt: %v", err)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	b, _, _ := openTest(t)
	now := storetest.T0.Add(time.Hour)
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
			f := storetest.Family(e.jti, "h")
			f.ExpiresAt = e.exp
			if err := b.CreateFamily(ctx, ns, f); err != nil {
				t.Fatal(err)
			}
		}
		// Keys and clients never expire.
		if err := b.PutKey(ctx, ns, storetest.Key("k", storetest.T0)); err != nil {
			t.Fatal(err)
		}
		if err := b.CreateClient(ctx, ns, storetest.Client("c")); err != nil {
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
		for _, kind := range []string{"revoked", "onetime", "refresh"} {
			if got := store.CountRecords(t, b, ns, kind); got != 1 {
				t.Errorf("%s/%s holds %d records after Sweep, want 1", ns, kind, got)
			}
		}
		if _, err := b.Family(ctx, ns, "future"); err != nil {
			t.Errorf("%s: live family swept: %v", ns, err)
		}
		for _, id := range []string{"past", "now"} {
			if _, err := b.Family(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: expired family %q = %v, want store.ErrNotFound", ns, id, err)
			}
		}
		if ok, err := b.Revoked(ctx, ns, "future"); err != nil || !ok {
			t.Errorf("%s: live revocation swept: %v, %v", ns, ok, err)
		}
		if got := store.CountRecords(t, b, ns, "keys"); got != 1 {
			t.Errorf("%s: keys = %d, want 1", ns, got)
		}
		if got := store.CountRecords(t, b, ns, "clients"); got != 1 {
			t.Errorf("%s: clients = %d, want 1", ns, got)
		}
	}
	if n, err := b.Sweep(ctx, now); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0, nil", n, err)
	}
}

func TestDurability(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(storetest.T0)
	dir := t.TempDir()
	opts := store.BoltOptions{Now: clk.Now}
	b, err := store.OpenBolt(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ns := store.DefaultNamespace
	k := storetest.Key("k", storetest.T0)
	c := storetest.Client("c")
	f := storetest.Family("f", "h1")
	f.AccessJTIs = []string{"j1"}
	for _, err := range []error{
		b.PutKey(ctx, ns, k),
		b.CreateClient(ctx, ns, c),
		b.CreateFamily(ctx, ns, f),
		b.Rotate(ctx, ns, "f", []byte("h1"), storetest.Rotated("f", "h2")),
		b.Revoke(ctx, ns, "j1", storetest.T0.Add(time.Hour)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := b.UseOnce(ctx, ns, "once", storetest.T0.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("UseOnce = %v, %v", ok, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = store.OpenBolt(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := b.Keys(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustDeepEqual(t, keys, []store.SigningKey{k})
	gotC, err := b.Client(ctx, ns, "c")
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustDeepEqual(t, gotC, c)
	gotF, err := b.Family(ctx, ns, "f")
	if err != nil {
		t.Fatal(err)
	}
	// The previous hash and the rotation time survive too: the reuse grace
	// of a refresh that lost a race works across a restart.
	wantF := storetest.Rotated("f", "h2")
	wantF.AccessJTIs = []string{"j1"}
	wantF.PrevHash = []byte("h1")
	storetest.MustDeepEqual(t, gotF, wantF)
	if ok, err := b.Revoked(ctx, ns, "j1"); err != nil || !ok {
		t.Errorf("Revoked after reopen = %v, %v", ok, err)
	}
	if ok, err := b.UseOnce(ctx, ns, "once", storetest.T0.Add(time.Hour)); err != nil || ok {
		t.Errorf("UseOnce after reopen = %v, %v; want false", ok, err)
	}
}

// TestInvalidNamespaceWritesNothing: refused namespaces leave no bucket
// behind (the conformance suite checks the errors).
func TestInvalidNamespaceWritesNothing(t *testing.T) {
	b, _, _ := openTest(t)
	for _, ns := range []string{"", "a/b", "/", "a\x00b"} {
		for _, op := range storetest.Ops(b) {
			_ = op(context.Background(), ns)
		}
	}
	if names := store.BucketNames(t, b); len(names) != 0 {
		t.Errorf("buckets %q after refused writes, want none", names)
	}
}

func TestSweepCancelled(t *testing.T) {
	b, _, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := b.Sweep(ctx, storetest.T0); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Sweep = %d, %v; want 0, context.Canceled", n, err)
	}
}

// TestBundleRevisionsSurviveReopen: what was committed is there after the
// file is closed and opened again (as after a crash or a restart), and the
// active pointer is never left pointing at nothing.
func TestBundleRevisionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := store.OpenBolt(dir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	archive := bytes.Repeat([]byte{0x1f, 0x8b, 7}, 1000)
	if _, err := b.PutRevision(ctx, store.DefaultNamespace, storetest.Revision("v1", "sha256:1", storetest.T0), archive); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutRevision(ctx, store.DefaultNamespace, storetest.Revision("v2", "sha256:2", storetest.T0.Add(time.Second)), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(ctx, store.DefaultNamespace, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(ctx, store.DefaultNamespace, "v3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = store.OpenBolt(dir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rev, err := b.ActiveRevision(ctx, store.DefaultNamespace); err != nil || rev != "v1" {
		t.Fatalf("active after reopen: %q %v", rev, err)
	}
	if a, err := b.Archive(ctx, store.DefaultNamespace, "v1"); err != nil || !bytes.Equal(a, archive) {
		t.Fatalf("archive after reopen: %d bytes %v", len(a), err)
	}
	if revs, err := b.Revisions(ctx, store.DefaultNamespace); err != nil || len(revs) != 2 {
		t.Fatalf("revisions after reopen: %v %v", revs, err)
	}
}
