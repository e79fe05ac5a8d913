package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

func TestOpenBoltReadOnlyCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := store.OpenBoltReadOnly(dir, store.BoltOptions{}); !errors.Is(err, store.ErrNoDatabase) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no database: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the data dir was made: %v", err)
	}
}

// TestOpenBoltReadOnlyWhileAWriterRuns: with the file held by a writer (as
// a running server holds it) a read-only open does not wait for it: it
// reads what was committed, refuses writes, leaves no file behind, and
// several readers may be open at once, with or without a writer.
func TestOpenBoltReadOnlyWhileAWriterRuns(t *testing.T) {
	ctx := context.Background()
	w, _, dir := openTest(t)
	if err := w.CreateClient(ctx, store.DefaultNamespace, store.Client{ID: "gw"}); err != nil {
		t.Fatal(err)
	}
	r, err := store.OpenBoltReadOnly(dir, store.BoltOptions{LockTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("read-only open beside a writer: %v", err)
	}
	defer r.Close()
	if cs, err := r.ListClients(ctx, store.DefaultNamespace); err != nil || len(cs) != 1 || cs[0].ID != "gw" {
		t.Fatalf("clients read: %v %v", cs, err)
	}
	if err := r.CreateClient(ctx, store.DefaultNamespace, store.Client{ID: "x"}); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
		t.Fatalf("files in the data dir: %v", names)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Without a writer, readers share the file itself.
	r2, err := store.OpenBoltReadOnly(dir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r3, err := store.OpenBoltReadOnly(dir, store.BoltOptions{})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	r3.Close()
}

// TestOpenBoltReadOnlyCopiesAConsistentState: while a writer commits as
// fast as it can, every read-only open sees a consistent database (bbolt's
// page check passes) with every record it should hold, and never an older
// state than a reader before it saw. The writer also deletes, so that the
// pages it frees are written again.
func TestOpenBoltReadOnlyCopiesAConsistentState(t *testing.T) {
	ctx := context.Background()
	w, _, dir := openTest(t)
	for i := range 200 { // several pages of records
		if err := w.CreateClient(ctx, store.DefaultNamespace, store.Client{ID: fmt.Sprintf("a-%03d", i), Scopes: []string{"verdict:decide"}}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.CreateClient(ctx, store.DefaultNamespace, store.Client{ID: fmt.Sprintf("c-%06d", i)}); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			if i%2 == 1 {
				if err := w.DeleteClient(ctx, store.DefaultNamespace, fmt.Sprintf("c-%06d", i-1)); err != nil {
					t.Errorf("delete %d: %v", i-1, err)
					return
				}
			}
		}
	}()
	last, opened := "", 0
	for range 30 {
		r, err := store.OpenBoltReadOnly(dir, store.BoltOptions{LockTimeout: time.Millisecond})
		if errors.Is(err, store.ErrLocked) {
			continue // the writer changed the file during every copy: allowed, not wrong
		}
		if err != nil {
			t.Fatalf("read-only open: %v", err)
		}
		opened++
		store.CheckConsistent(t, r)
		cs, err := r.ListClients(ctx, store.DefaultNamespace)
		r.Close()
		if err != nil || len(cs) < 200 {
			t.Fatalf("read %d clients (%v)", len(cs), err)
		}
		newest := cs[len(cs)-1].ID // ids sort in the order they were made
		if newest < last {
			t.Fatalf("read an older state (newest %s) after one with %s", newest, last)
		}
		last = newest
	}
	t.Logf("%d of 30 read-only opens beside the writer succeeded, the newest record %s", opened, last)
	if opened == 0 {
		t.Fatal("no read-only open succeeded beside the writer")
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".verdict-snapshot-*")); len(names) != 0 {
		t.Fatalf("snapshots left behind: %v", names)
	}
}
