package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// serveDev runs `verdict serve --dev` on addr over dataDir with extra args
// until the returned stop is called; it waits until the server answers
// /healthz (it may not be ready: no bundle yet).
func serveDev(t *testing.T, addr, dataDir string, args ...string) (stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var sout, serr bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"serve", "--dev", "--addr", addr, "--data-dir", dataDir}, args...), strings.NewReader(""), &sout, &serr)
	}()
	for i := 0; i < 250; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return func() string {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("serve exit %d: %s", code, serr.String())
				}
				return serr.String()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	t.Fatalf("serve never answered: %s", serr.String())
	return nil
}

// decideRev asks the (--dev, open) server whether alice may read her
// document and returns the decision and the revision that made it.
func decideRev(t *testing.T, base, action string) (bool, string) {
	t.Helper()
	b := `{"subject":{"type":"user","id":"alice"},"action":{"name":"` + action + `"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	resp, err := http.Post(base+"/v1/decide", "application/json", strings.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("decide: %d %v", resp.StatusCode, err)
	}
	return m["decision"].(bool), m["context"].(map[string]any)["revision"].(string)
}

// TestBundlePushEndToEnd: a client with verdict:bundles:write pushes a
// directory to a real serve, a broken bundle is refused with every problem
// printed, a second revision is stored without activation, listed and then
// activated and rolled back; a restart serves the last active revision.
func TestBundlePushEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "ci", "--scope", "verdict:bundles:write", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("client add: %d %s", code, errOut)
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	base := "http://" + addr
	stop := serveDev(t, addr, dataDir)
	remote := []string{"--server", base, "--client-id", "ci"}

	v1 := bundleDir(t, map[string]string{".manifest": `{"revision":"v1"}`, "p.verdict.yaml": policy, "p_test.yaml": tests})
	t.Setenv("VERDICT_CLIENT_SECRET", "")
	if code, _, errOut := cli(t, "", append([]string{"bundle", "push", v1}, remote...)...); code != 2 || !strings.Contains(errOut, "VERDICT_CLIENT_SECRET") {
		t.Fatalf("push without a secret: %d %s", code, errOut)
	}
	t.Setenv("VERDICT_CLIENT_SECRET", secret)
	code, out, errOut = cli(t, "", append([]string{"bundle", "push", v1}, remote...)...)
	if code != 0 || !strings.Contains(out, "revision:  v1") || !strings.Contains(out, "2 passed, 0 failed") || !strings.Contains(out, "activated: true") {
		t.Fatalf("push v1: %d %s %s", code, out, errOut)
	}
	if ok, rev := decideRev(t, base, "read"); !ok || rev != "v1" {
		t.Fatalf("after push: %v %s", ok, rev)
	}
	broken := bundleDir(t, map[string]string{".manifest": `{"revision":"v9"}`,
		"a.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1),
		"b.verdict.yaml": strings.Replace(strings.Replace(policy, "name: docs", "name: b", 1), "condition: has(resource.properties.owner) && resource.properties.owner == subject.id", `condition: "1 + 2"`, 1)})
	code, _, errOut = cli(t, "", append([]string{"bundle", "push", broken}, remote...)...)
	if code != 1 || !strings.HasPrefix(errOut, "bundle rejected: 422 bundle_invalid") || !strings.Contains(errOut, "a.verdict.yaml:") || !strings.Contains(errOut, "b.verdict.yaml:") {
		t.Fatalf("broken push: %d %s", code, errOut)
	}
	v2 := bundleDir(t, map[string]string{".manifest": `{"revision":"v2"}`, "p.verdict.yaml": strings.Replace(policy, "effect: allow", "effect: allow\n    actions: [read, delete]", 1)})
	if code, out, errOut := cli(t, "", append([]string{"bundle", "push", v2, "--no-activate"}, remote...)...); code != 0 || !strings.Contains(out, "activated: false") {
		t.Fatalf("push v2: %d %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, "", append([]string{"bundle", "revisions"}, remote...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "v2") || !strings.Contains(lines[1], "inactive") ||
		!strings.HasPrefix(lines[2], "v1") || !strings.Contains(lines[2], " active") || !strings.Contains(lines[2], "ci") {
		t.Fatalf("revisions: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "", append([]string{"bundle", "activate", "v2"}, remote...)...); code != 0 || !strings.Contains(out, "revision:  v2") {
		t.Fatalf("activate v2: %d %s %s", code, out, errOut)
	}
	if ok, rev := decideRev(t, base, "delete"); !ok || rev != "v2" {
		t.Fatalf("after activating v2: %v %s", ok, rev)
	}
	if code, _, errOut := cli(t, "", append([]string{"bundle", "activate", "v1"}, remote...)...); code != 0 {
		t.Fatalf("roll back: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", append([]string{"bundle", "activate", "nope"}, remote...)...); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("unknown revision: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "bundle", "revisions", "--server", base, "--client-id", "ci", "--json"); code != 0 {
		t.Fatalf("revisions --json: %d %s", code, errOut)
	}
	logs := stop()
	if strings.Contains(logs, secret) {
		t.Error("the client secret was logged")
	}

	// Restart without --bundle: the rolled-back v1 serves.
	stop = serveDev(t, addr, dataDir)
	if ok, rev := decideRev(t, base, "read"); !ok || rev != "v1" {
		t.Fatalf("after restart: %v %s", ok, rev)
	}
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if b := st["bundle"].(map[string]any); b["source"] != "push" || b["revision"] != "v1" {
		t.Fatalf("status after restart: %v", st)
	}
	stop()

	// A server that cannot be reached and bad usage exit 2.
	if code, _, _ := cli(t, "", "bundle", "push", v1, "--server", "http://"+freeAddr(t), "--client-id", "ci"); code != 2 {
		t.Fatalf("unreachable server: %d", code)
	}
	if code, _, _ := cli(t, "", "bundle", "push", v1, "--client-id", "ci"); code != 2 {
		t.Fatalf("no --server: %d", code)
	}
	if code, _, errOut := cli(t, "", "serve", "--watch", "--data-dir", t.TempDir()); code != 2 || !strings.Contains(errOut, "--bundle") {
		t.Fatalf("--watch without --bundle: %d %s", code, errOut)
	}
}

// TestServeWatch: serve --watch picks up a good change, keeps serving
// through a broken one, and picks up the fix.
func TestServeWatch(t *testing.T) {
	dir := bundleDir(t, map[string]string{".manifest": `{"revision":"w1"}`, "p.verdict.yaml": policy, "p_test.yaml": tests})
	addr := freeAddr(t)
	base := "http://" + addr
	stop := serveDev(t, addr, t.TempDir(), "--bundle", dir, "--watch")
	defer stop()
	waitRev := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok, rev := decideRev(t, base, "read")
			if rev == want && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("serving %s, want %s", rev, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRev("w1")
	time.Sleep(100 * time.Millisecond) // the watch is set up in the background at start
	writeFile(t, dir+"/.manifest", `{"revision":"w2"}`)
	waitRev("w2")
	writeFile(t, dir+"/p.verdict.yaml", strings.Replace(policy, "== subject.id", "== subject.nope(", 1))
	writeFile(t, dir+"/.manifest", `{"revision":"w3"}`)
	time.Sleep(600 * time.Millisecond) // three debounce periods
	if ok, rev := decideRev(t, base, "read"); !ok || rev != "w2" {
		t.Fatalf("a broken change replaced w2: %v %s", ok, rev)
	}
	writeFile(t, dir+"/p.verdict.yaml", policy)
	waitRev("w3")
}
