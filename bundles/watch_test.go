package bundles

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchReloadsAllOrNothing: a good change is served, a broken one is
// logged and the old bundle keeps serving, the fix is served; a directory
// created after the watch started is watched too.
func TestWatchReloadsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".manifest", `{"revision":"r1"}`)
	write(t, dir, "data.json", `{"admins":["root"]}`)
	write(t, dir, "docs.verdict.yaml", okPolicy)
	write(t, dir, "docs_test.yaml", okTests)
	logs := &testutil.SyncBuffer{}
	m := NewManager(DefaultConfig(), slog.New(slog.NewTextHandler(logs, nil)))
	if _, err := m.LoadPaths(context.Background(), []string{dir}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, []string{dir}, 20*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	testutil.WaitFor(t, "the watch to start", 10*time.Millisecond, func() bool { return strings.Count(logs.String(), "watching bundles") == 1 })
	rev := func() string { return m.Active().Snapshot.Revision() }

	write(t, dir, ".manifest", `{"revision":"r2"}`)
	testutil.WaitFor(t, "r2 to serve", 10*time.Millisecond, func() bool { return rev() == "r2" })

	rejected := strings.Count(logs.String(), "bundle rejected")
	write(t, dir, "docs.verdict.yaml", strings.Replace(okPolicy, "effect: allow", "effect: allow ((", 1))
	write(t, dir, ".manifest", `{"revision":"r3"}`)
	testutil.WaitFor(t, "the broken change to be rejected", 10*time.Millisecond, func() bool { return strings.Count(logs.String(), "bundle rejected") > rejected })
	if rev() != "r2" {
		t.Fatalf("a broken change replaced the bundle: %s", rev())
	}

	write(t, dir, "docs.verdict.yaml", okPolicy)
	testutil.WaitFor(t, "the fix to serve", 10*time.Millisecond, func() bool { return rev() == "r3" })

	// A new subdirectory, and a policy in it after it was created.
	if err := os.Mkdir(filepath.Join(dir, "more"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the watcher add the directory
	write(t, dir, "more/extra.verdict.yaml", strings.Replace(okPolicy, "name: docs", "name: extra", 1))
	testutil.WaitFor(t, "the policy in the new directory to serve", 10*time.Millisecond, func() bool {
		return m.Active().Snapshot.Counts()[KindCEL] == 2
	})
}

func TestWatchNeedsExistingPaths(t *testing.T) {
	m := NewManager(DefaultConfig(), nil)
	if err := m.Watch(context.Background(), []string{filepath.Join(t.TempDir(), "missing")}, 0); err == nil {
		t.Fatal("watching a missing path must fail")
	}
}
