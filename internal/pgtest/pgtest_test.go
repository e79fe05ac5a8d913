//go:build unix

package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartStop(t *testing.T) {
	s := Start(t)
	if s.Port() == 5432 {
		t.Fatal("the test server took PostgreSQL's default port")
	}
	if !strings.HasPrefix(s.DSN(), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(s.DSN(), "/postgres?sslmode=disable") {
		t.Errorf("DSN = %q", s.DSN())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var fsync, port, dataDir string
	if err := db.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('port'), current_setting('data_directory')").Scan(&fsync, &port, &dataDir); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" {
		t.Errorf("fsync = %s, want off", fsync)
	}
	if !strings.HasPrefix(dataDir, os.TempDir()) {
		t.Errorf("data directory %s is not under the test's temporary directory", dataDir)
	}
	if _, err := db.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, tags text[])"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 1, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM t WHERE $1 = ANY(tags)", "b").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid after Stop: %v", err)
	}
	if db2, err := pgx.Connect(ctx, s.DSN()); err == nil {
		db2.Close(ctx)
		t.Fatal("a stopped server answers")
	}
	s.Stop() // stopping twice is fine
}

// Two servers of one test run side by side, each on its own port and in
// its own directory.
func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port() == b.Port() {
		t.Fatalf("both servers on port %d", a.Port())
	}
}

func TestFindBinaries(t *testing.T) {
	root := t.TempDir()
	mk := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pattern := filepath.Join(root, "lib", "*", "bin")
	empty := filepath.Join(root, "empty")

	if _, err := findBinaries(empty, pattern); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("nothing installed: %v", err)
	}

	// Debian: versioned directories off PATH, the highest wins.
	for _, v := range []string{"9", "15", "13"} {
		mk(filepath.Join(root, "lib", v, "bin", "initdb"))
		mk(filepath.Join(root, "lib", v, "bin", "postgres"))
	}
	got, err := findBinaries(empty, pattern)
	if err != nil || got.initdb != filepath.Join(root, "lib", "15", "bin", "initdb") || got.postgres != filepath.Join(root, "lib", "15", "bin", "postgres") {
		t.Fatalf("Debian layout: %+v, %v", got, err)
	}

	// PATH first; a symlink leads to its installation's postgres.
	onPath := filepath.Join(root, "bin")
	if err := os.MkdirAll(onPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "lib", "13", "bin", "initdb"), filepath.Join(onPath, "initdb")); err != nil {
		t.Fatal(err)
	}
	got, err = findBinaries(onPath, pattern)
	if err != nil || got.postgres != filepath.Join(root, "lib", "13", "bin", "postgres") {
		t.Fatalf("symlink on PATH: %+v, %v", got, err)
	}

	// initdb without a postgres anywhere is an error naming it.
	lone := filepath.Join(root, "lone")
	mk(filepath.Join(lone, "initdb"))
	if _, err := findBinaries(lone, filepath.Join(root, "none", "*")); err == nil || !strings.Contains(err.Error(), "postgres program") {
		t.Fatalf("initdb alone: %v", err)
	}
}
