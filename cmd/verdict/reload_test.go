package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
)

type statusDoc struct {
	Bundle *struct {
		Revision   string `json:"revision"`
		Generation uint64 `json:"generation"`
	} `json:"bundle"`
}

func getStatus(t *testing.T, addr string) statusDoc {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func decideOwner(t *testing.T, addr string) bool {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/decide", "application/json", strings.NewReader(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct{ Decision bool }
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Decision
}

// TestSIGHUPReloads: SIGHUP reloads the bundles; a broken bundle is rejected
// and the one serving keeps serving; a good one is swapped in.
func TestSIGHUPReloads(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy})
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errb testutil.SyncBuffer
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", addr, "--bundle", dir, "--data-dir", t.TempDir()}, strings.NewReader(""), &out, &errb)
	}()
	testutil.WaitFor(t, "the server to be ready", 20*time.Millisecond, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	first := getStatus(t, addr)
	if first.Bundle == nil || !decideOwner(t, addr) {
		t.Fatalf("first bundle not serving: %+v", first)
	}

	writeFile(t, filepath.Join(dir, "p.verdict.yaml"), strings.Replace(policy, "condition: has(", "condition: has((", 1))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the broken reload to be reported", 20*time.Millisecond, func() bool { return strings.Contains(errb.String(), "bundle rejected") })
	if st := getStatus(t, addr); st.Bundle == nil || st.Bundle.Generation != first.Bundle.Generation || st.Bundle.Revision != first.Bundle.Revision {
		t.Fatalf("a broken reload replaced the bundle: %+v, was %+v", st.Bundle, first.Bundle)
	}
	if !decideOwner(t, addr) {
		t.Fatal("after a broken reload the old bundle must keep deciding")
	}
	if !strings.Contains(errb.String(), "p.verdict.yaml:7:") {
		t.Fatalf("the rejection must name file:line: %s", errb.String())
	}

	writeFile(t, filepath.Join(dir, "p.verdict.yaml"), strings.Replace(policy, "effect: allow", "effect: deny", 1))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the good reload to activate", 20*time.Millisecond, func() bool {
		st := getStatus(t, addr)
		return st.Bundle != nil && st.Bundle.Generation > first.Bundle.Generation
	})
	if decideOwner(t, addr) {
		t.Fatal("the reloaded bundle denies owners, but the old answer came back (stale cache?)")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d\n%s", code, errb.String())
	}
}

// TestDecideSkipTests: decide refuses a bundle whose tests fail, unless
// --skip-tests.
func TestDecideSkipTests(t *testing.T) {
	failing := strings.Replace(tests, "expect: false", "expect: true", 1)
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": failing})
	in := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	if code, _, errOut := cli(t, in, "decide", "--bundle", dir); code != 2 || !strings.Contains(errOut, "stranger") {
		t.Fatalf("failing tests must reject the bundle: %d %s", code, errOut)
	}
	code, out, errOut := cli(t, in, "decide", "--bundle", dir, "--skip-tests")
	if code != 0 || !strings.Contains(out, `"decision": true`) {
		t.Fatalf("--skip-tests: %d %s %s", code, out, errOut)
	}
}
