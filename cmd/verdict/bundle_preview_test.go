package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// everyoneReads adds an allow that lets the stranger of `tests` read.
var everyoneReads = policy + `  - id: everyone-reads
    effect: allow
    condition: action.name == "read"
`

func TestBundlePreviewLocal(t *testing.T) {
	active := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests, ".manifest": `{"revision":"r1"}`})
	cand := bundleDir(t, map[string]string{"p.verdict.yaml": everyoneReads, ".manifest": `{"revision":"r2"}`})

	// No inputs: the active bundle's tests are decided; the stranger changes.
	code, out, errOut := cli(t, "", "bundle", "preview", cand, "--against", active)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"candidate r2 against active r1", "2 inputs: 1 changed (0 allow→deny, 1 deny→allow), 1 unchanged",
		"deny→allow", "active tests", "user:bob", "deny [verdict:no-matching-allow]", "allow [everyone-reads]"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "reasons     active tests  p_test.yaml:2: owner") {
		t.Fatalf("the owner's changed reasons are not listed:\n%s", out)
	}

	// Inputs from a file, as JSON.
	inputs := filepath.Join(t.TempDir(), "inputs.json")
	writeFile(t, inputs, `[{"subject":{"type":"user","id":"carol"},"action":{"name":"read"},"resource":{"type":"doc","id":"9"}},
		{"subject":{"type":"user","id":"carol"},"action":{"name":"write"},"resource":{"type":"doc","id":"9"}}]`)
	code, out, _ = cli(t, "", "bundle", "preview", cand, "--against", active, "--inputs", inputs, "--json")
	var rep bundles.PreviewReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("--json: %d %s", code, out)
	}
	if rep.Summary.Total != 2 || rep.Summary.DenyToAllow != 1 || rep.Items[0].Source != bundles.SourceRequest || rep.Items[0].Name != "inputs[0]" {
		t.Fatalf("report %+v", rep)
	}
	if code, out, _ := cli(t, "", "bundle", "preview", active, "--against", active); code != 0 ||
		!strings.Contains(out, "0 changed") || !strings.Contains(out, "no decision changes") || strings.Contains(out, "user:alice") {
		t.Fatalf("no change: %d\n%s", code, out)
	}
	if code, out, _ := cli(t, "", "bundle", "preview", active, "--against", active, "--all"); code != 0 ||
		!strings.Contains(out, "0 changed") || !strings.Contains(out, "user:alice") {
		t.Fatalf("--all: %d\n%s", code, out)
	}

	// Bad usage and bad bundles.
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	badInputs := filepath.Join(t.TempDir(), "bad.json")
	writeFile(t, badInputs, `[{"subject": 1}]`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{cand}, 2, "exactly one of --server"},
		{[]string{cand, "--against", active, "--server", "http://127.0.0.1:1"}, 2, "exactly one of --server"},
		{[]string{cand, "--against", active, "--client-id", "ci"}, 2, "--client-id needs --server"},
		{[]string{broken, "--against", active}, 1, "p.verdict.yaml:7:"},
		{[]string{cand, "--against", broken}, 1, "--against"},
		{[]string{cand, "--against", active, "--inputs", badInputs}, 2, "inputs[0].subject"},
		{[]string{cand, "--server", "http://127.0.0.1:1", "--client-id", "ci"}, 2, "VERDICT_CLIENT_SECRET"},
	} {
		code, out, errOut := cli(t, "", append([]string{"bundle", "preview"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
}

// TestBundlePreviewAgainstServer previews on a running server with a token
// fetched by client credentials.
func TestBundlePreviewAgainstServer(t *testing.T) {
	dataDir := t.TempDir()
	secret := addClient(t, dataDir, "ci", "verdict:bundles:write")
	gwSecret := addClient(t, dataDir, "gw", "verdict:decide")
	addr := freeAddr(t)
	stop := serveAt(t, addr, dataDir)
	defer stop()
	base := "http://" + addr

	cand := bundleDir(t, map[string]string{"p.verdict.yaml": everyoneReads, "p_test.yaml": tests})
	t.Setenv(secretEnv, secret)
	code, out, errOut := cli(t, "", "bundle", "preview", cand, "--server", base, "--client-id", "ci")
	// The candidate's own "stranger" test now fails: reported, exit 0.
	if code != 0 || !strings.Contains(out, "candidate tests: 0 passed, 2 failed") || !strings.Contains(out, "deny→allow") ||
		!strings.Contains(out, "candidate tests  p_test.yaml:5: stranger") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	// A client without verdict:bundles:write is refused: exit 1 with the server's error.
	t.Setenv(secretEnv, gwSecret)
	code, out, errOut = cli(t, "", "bundle", "preview", cand, "--server", base, "--client-id", "gw")
	if code == 0 || !strings.Contains(out+errOut, "invalid_scope") {
		t.Fatalf("a client without the scope: exit %d\n%s%s", code, out, errOut)
	}
	// A candidate that does not compile: 422 with every problem.
	t.Setenv(secretEnv, secret)
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	code, _, errOut = cli(t, "", "bundle", "preview", broken, "--server", base, "--client-id", "ci")
	if code != 1 || !strings.Contains(errOut, "preview refused: 422 bundle_invalid") || !strings.Contains(errOut, "p.verdict.yaml:7:") {
		t.Fatalf("broken candidate: exit %d\n%s", code, errOut)
	}
}
