package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigValidate: every problem of a file at once, each naming its key
// or line, exit 1; a good file, nothing and exit 0; a bad invocation, 2.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "server:\n  addr: nope\n  body_limit: -1\n  cors:\n    allowed_origins: [\"*\"]\n    allow_credentials: true\ntokens:\n  refresh_reuse_grace: 1h\n")
	code, out, errOut := cli(t, "", "config", "validate", bad)
	for _, want := range []string{`server addr "nope"`, "server body_limit must be positive", "server cors.allowed_origins[0]", "tokens.refresh_reuse_grace", bad + ": 4 problem(s)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad file: missing %q in\n%s", want, errOut)
		}
	}
	if code != 1 || out != "" {
		t.Errorf("bad file: exit %d, stdout %q", code, out)
	}

	typo := write("typo.yaml", "server:\n  adr: 127.0.0.1:1\n")
	if code, _, errOut := cli(t, "", "config", "validate", typo); code != 1 || !strings.Contains(errOut, typo+`:2: key "adr" is unknown`) || !strings.Contains(errOut, ": 1 problem(s)") {
		t.Errorf("misspelt key: exit %d\n%s", code, errOut)
	}

	good := write("good.yaml", "server:\n  addr: 127.0.0.1:9999\n")
	if code, out, errOut := cli(t, "", "config", "validate", good); code != 0 || out != "" || errOut != "" {
		t.Errorf("good file: exit %d, %q %q", code, out, errOut)
	}
	// The configuration documented in docs/operations.md validates.
	if code, _, errOut := cli(t, "", "config", "validate", filepath.Join("..", "..", "policies", "gateway-example", "verdict.yaml")); code != 0 {
		t.Errorf("policies/gateway-example/verdict.yaml: exit %d\n%s", code, errOut)
	}
	if code, _, _ := cli(t, "", "config", "validate"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if code, _, errOut := cli(t, "", "config", "validate", filepath.Join(dir, "missing.yaml")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
}

// TestConfigPrint: the effective configuration, durations as a file holds
// them, secrets masked; what it prints loads and validates again and
// prints the same.
func TestConfigPrint(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cret-s3cret-s3cret-s3cret-s3cret"
	file := filepath.Join(dir, "verdict.yaml")
	body := "store: redis://verdict:hunter2@127.0.0.1:6379/0\nserver:\n  read_timeout: 7s\nforward_auth:\n  shared_secret: " + secret + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "config", "print", "--config", file)
	if code != 0 {
		t.Fatalf("config print: exit %d %s", code, errOut)
	}
	for _, leaked := range []string{secret, "hunter2"} {
		if strings.Contains(out, leaked) {
			t.Fatalf("config print shows a secret (%q):\n%s", leaked, out)
		}
	}
	for _, want := range []string{"read_timeout: 7s", "shared_secret: '********'", "store: redis://verdict:", "request_timeout: 5s", "sample_ratio: 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print: no %q in\n%s", want, out)
		}
	}
	// The defaults print, and load back to the same.
	_, defaults, _ := cli(t, "", "config", "print")
	again := filepath.Join(dir, "again.yaml")
	if err := os.WriteFile(again, []byte(strings.Replace(defaults, "data_dir: ./verdict-data", "data_dir: "+dir, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, "", "config", "validate", again); code != 0 {
		t.Fatalf("the printed defaults do not validate: %s", errOut)
	}
	_, reprinted, _ := cli(t, "", "config", "print", "--config", again)
	if want := strings.Replace(defaults, "data_dir: ./verdict-data", "data_dir: "+dir, 1); reprinted != want {
		t.Errorf("printed, loaded and printed again differs:\n%s\nwant\n%s", reprinted, want)
	}
	if code, _, _ := cli(t, "", "config", "print", "--config", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}
