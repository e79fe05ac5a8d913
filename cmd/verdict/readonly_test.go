package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListsWhileServing: client list and keys list read the data dir of a
// running serve (which holds its database) instead of failing, and see
// what it holds; the commands that write still refuse, saying what to do
// instead, and so is a second serve. On a data dir with no state they list nothing and create
// nothing.
func TestListsWhileServing(t *testing.T) {
	dataDir := t.TempDir()
	addClient(t, dataDir, "gw", "verdict:decide")
	addr := freeAddr(t)
	stop := serveDev(t, addr, dataDir)
	defer stop()

	code, out, errOut := cli(t, "", "client", "list", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "gw") || !strings.Contains(out, "verdict:decide") {
		t.Fatalf("client list while serving: %d %s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "keys", "list", "--data-dir", dataDir, "--json")
	var keys []struct {
		KID   string `json:"kid"`
		State string `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 1 || keys[0].State != "signing" {
		t.Fatalf("keys list while serving: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", "client", "add", "--id", "x", "--scope", "verdict:decide", "--data-dir", dataDir); code != 2 ||
		!strings.Contains(errOut, "held by a running verdict serve") || !strings.Contains(errOut, "/v1/admin/") {
		t.Fatalf("client add while serving: %d %s", code, errOut)
	}
	// A second serve beside it is told what to give it of its own.
	if code, _, errOut := cli(t, "", "serve", "--dev", "--data-dir", dataDir, "--addr", freeAddr(t)); code != 2 ||
		!strings.Contains(errOut, "held by a running verdict serve") || !strings.Contains(errOut, "its own --data-dir and --addr") {
		t.Fatalf("a second serve on the data dir: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "serve", "--dev", "--data-dir", t.TempDir(), "--addr", addr); code != 2 ||
		!strings.Contains(errOut, addr+" is in use") || !strings.Contains(errOut, "another --addr") {
		t.Fatalf("a second serve on the address: %d %s", code, errOut)
	}
	if names, _ := filepath.Glob(filepath.Join(dataDir, ".verdict-snapshot-*")); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}

	empty := filepath.Join(t.TempDir(), "nothing-here")
	for _, args := range [][]string{{"client", "list"}, {"keys", "list"}} {
		code, out, errOut := cli(t, "", append(args, "--data-dir", empty)...)
		if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "holds no state yet") {
			t.Errorf("%v on an empty data dir: %d %q %q", args, code, out, errOut)
		}
		if code, out, _ := cli(t, "", append(args, "--data-dir", empty, "--json")...); code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("%v --json on an empty data dir: %d %q", args, code, out)
		}
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Fatalf("a list made the data dir: %v", err)
	}
}
