package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const policy = `apiVersion: verdict.dev/v1
kind: Policy
name: docs
rules:
  - id: owners
    effect: allow
    condition: has(resource.properties.owner) && resource.properties.owner == subject.id
`

const tests = `tests:
  - name: owner
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: alice}}}
    expect: {decision: true, reasons: [owners]}
  - name: stranger
    input: {subject: {type: user, id: bob}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: alice}}}
    expect: false
`

func bundleDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cli(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBundleTest(t *testing.T) {
	good := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	code, out, _ := cli(t, "", "bundle", "test", good)
	if code != 0 || !strings.Contains(out, "2 passed, 0 failed") || !strings.HasPrefix(out, "PASS") {
		t.Fatalf("good bundle: %d\n%s", code, out)
	}
	failing := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": strings.Replace(tests, "expect: false", "expect: true", 1)})
	code, out, _ = cli(t, "", "bundle", "test", failing)
	if code != 1 || !strings.Contains(out, "--- FAIL: stranger") || !strings.Contains(out, "p_test.yaml:5") || !strings.Contains(out, "1 passed, 1 failed") {
		t.Fatalf("failing bundle: %d\n%s", code, out)
	}
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	code, out, _ = cli(t, "", "bundle", "test", broken)
	if code != 1 || !strings.Contains(out, "p.verdict.yaml:7:") {
		t.Fatalf("broken bundle: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "", "bundle", "test", filepath.Join(good, "missing"))
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("missing bundle: %d\n%s", code, out)
	}
	cfg := filepath.Join(t.TempDir(), "v.yaml")
	os.WriteFile(cfg, []byte("bundle_limits: {max_files: 1}\n"), 0o644)
	code, out, _ = cli(t, "", "bundle", "test", "--config", cfg, good)
	if code != 1 || !strings.Contains(out, "more than 1 entries") {
		t.Fatalf("--config limits not applied: %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "", "bundle", "test"); code != 2 || !strings.Contains(errOut, "missing PATH") {
		t.Fatalf("no path: %d %s", code, errOut)
	}
}

func TestDecide(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy})
	in := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	code, out, errOut := cli(t, in, "decide", "--bundle", dir)
	if code != 0 {
		t.Fatalf("decide: %d %s", code, errOut)
	}
	var d struct {
		Decision bool
		Context  struct{ Reasons []string }
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || !d.Decision || d.Context.Reasons[0] != "owners" {
		t.Fatalf("decide output %s (%v)", out, err)
	}
	file := filepath.Join(t.TempDir(), "in.json")
	os.WriteFile(file, []byte(strings.Replace(in, `"id":"alice"`, `"id":"bob"`, 1)), 0o644)
	code, out, _ = cli(t, "", "decide", "--bundle", dir, "--input", file)
	if code != 0 || !strings.Contains(out, `"decision": false`) {
		t.Fatalf("decide --input: %d %s", code, out)
	}
	if code, _, errOut := cli(t, `{"subject":1}`, "decide", "--bundle", dir); code != 2 || !strings.Contains(errOut, "subject") {
		t.Fatalf("bad input: %d %s", code, errOut)
	}
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badCfg, []byte("server: {max_depth: 0}\n"), 0o644)
	if code, _, errOut := cli(t, in, "decide", "--bundle", dir, "--config", badCfg); code != 2 || !strings.Contains(errOut, "max_depth") {
		t.Fatalf("invalid --config: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, in, "decide"); code != 2 || !strings.Contains(errOut, "--bundle") {
		t.Fatalf("no bundle: %d %s", code, errOut)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := cli(t, "", "version"); code != 0 || !strings.HasPrefix(out, "verdict ") {
		t.Fatalf("version: %d %q", code, out)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"decide", "--help"}, {"bundle", "test", "--help"}, {"bundle", "--help"}, {"bundle", "sign", "--help"}, {"bundle", "build", "--help"}, {"bundle", "keygen", "--help"}} {
		if code, out, _ := cli(t, "", args...); code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	if code, _, _ := cli(t, "", "nosuch"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServe runs `verdict serve --dev` in process on a loopback port (no
// caller authentication), asks for a decision, then stops it as SIGTERM
// would (context cancellation).
func TestServe(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	addr := freeAddr(t)
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", addr, "--bundle", dir, "--data-dir", dataDir}, strings.NewReader(""), &out, &errb)
	}()
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		resp, err = http.Get("http://" + addr + "/readyz")
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server never answered: %v\n%s", err, errb.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	resp, err = http.Post("http://"+addr+"/v1/decide", "application/json", strings.NewReader(`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["decision"] != true {
		t.Fatalf("decision %v", d)
	}
	// The signing keys are published, and the data dir is held.
	resp, err = http.Get("http://" + addr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["use"] != "sig" || jwks.Keys[0]["d"] != nil || resp.Header.Get("Cache-Control") == "" {
		t.Fatalf("jwks: %v %v", jwks, resp.Header)
	}
	if code, _, errOut := cli(t, "", "keys", "rotate", "--data-dir", dataDir); code != 2 || !strings.Contains(errOut, "running verdict serve") {
		t.Fatalf("keys rotate on a held data dir: %d %s", code, errOut)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d\n%s", code, errb.String())
	}
	// After the stop, the key the server published is the one in the data dir.
	if ks := listKeys(t, dataDir); len(ks) != 1 || ks[0].KID != jwks.Keys[0]["kid"] {
		t.Fatalf("keys after restart: %+v", ks)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "v.yaml")
	os.WriteFile(cfg, []byte("server: {addr: nonsense}\n"), 0o644)
	code, _, errOut := cli(t, "", "serve", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "addr") {
		t.Fatalf("bad config: %d %s", code, errOut)
	}
}
