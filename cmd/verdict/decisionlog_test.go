package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDecisionLog runs serve with a file decision log: the decisions
// it answers become redacted JSON lines, every one of them written by the
// time serve returned, and a preview without inputs decides them as
// "logged decisions".
func TestServeDecisionLog(t *testing.T) {
	dataDir, dir := t.TempDir(), t.TempDir()
	_, out, _ := cli(t, "", "client", "add", "--id", "ci", "--scope", "verdict:bundles:write", "--data-dir", dataDir)
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	cfg := filepath.Join(dir, "verdict.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\n"+
		"decision_logs: {sink: file, path: decisions.log, redact: [/subject/properties/email]}\n")
	active := bundleDir(t, map[string]string{"p.verdict.yaml": policy})
	addr := freeAddr(t)
	base := "http://" + addr
	stop := serveDev(t, addr, dataDir, "--config", cfg, "--bundle", active)

	const n = 50
	for range n {
		resp, err := http.Post(base+"/v1/decide", "application/json", strings.NewReader(
			`{"subject":{"type":"user","id":"mallory","properties":{"email":"m@example.com"}},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The log is written asynchronously: the preview may run before the
	// history has the decisions, so it is retried for a while.
	cand := bundleDir(t, map[string]string{"p.verdict.yaml": everyoneReads})
	t.Setenv(secretEnv, secret)
	var prev string
	for i := 0; i < 50; i++ {
		code, pout, perr := cli(t, "", "bundle", "preview", cand, "--server", base, "--client-id", "ci")
		if code != 0 {
			t.Fatalf("preview exit %d: %s%s", code, pout, perr)
		}
		if prev = pout; strings.Contains(pout, "logged decisions") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(prev, "logged decisions") || !strings.Contains(prev, "logged[0]") {
		t.Fatalf("the preview did not decide the logged decisions:\n%s", prev)
	}
	logs := stop()

	f, err := os.Open(filepath.Join(dir, "decisions.log"))
	if err != nil {
		t.Fatalf("decision log not written (relative to the config file): %v\n%s", err, logs)
	}
	defer f.Close()
	var lines int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines++
		if rec["endpoint"] != "decide" || rec["decision"] != false || rec["decision_id"] == "" {
			t.Fatalf("record %v", rec)
		}
		if strings.Contains(sc.Text(), "m@example.com") {
			t.Fatalf("the redacted email was logged: %s", sc.Text())
		}
	}
	if lines != n {
		t.Fatalf("%d records after serve returned, want %d", lines, n)
	}
}
