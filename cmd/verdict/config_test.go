package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
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
	for _, want := range []string{`server addr "nope"`, "server body_limit must be positive", "server cors.allowed_origins[0]", "tokens.refresh_reuse_grace", "tokens.issuer must be set", "bundles.keys", bad + ": 6 problem(s)"} {
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

	good := write("good.yaml", "server:\n  addr: 127.0.0.1:9999\nbundles: {require_signature: false, acknowledge_unsigned: true}\n")
	if code, out, errOut := cli(t, "", "config", "validate", good); code != 0 || out != "" || errOut != "" {
		t.Errorf("good file: exit %d, %q %q", code, out, errOut)
	}
	// The configuration documented in docs/gateways.md validates as the
	// serve --dev it is run with.
	if code, _, errOut := cli(t, "", "config", "validate", "--dev", filepath.Join("..", "..", "policies", "gateway-example", "verdict.yaml")); code != 0 {
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
	// The defaults are valid but for what serve refuses outside dev: no
	// bundle could be activated without a signing key.
	if code, _, errOut := cli(t, "", "config", "validate", again); code != 1 || !strings.Contains(errOut, "bundles.keys: bundle signatures are required") || !strings.Contains(errOut, ": 1 problem(s)") {
		t.Fatalf("the printed defaults: exit %d %s", code, errOut)
	}
	_, reprinted, _ := cli(t, "", "config", "print", "--config", again)
	if want := strings.Replace(defaults, "data_dir: ./verdict-data", "data_dir: "+dir, 1); reprinted != want {
		t.Errorf("printed, loaded and printed again differs:\n%s\nwant\n%s", reprinted, want)
	}
	if code, _, _ := cli(t, "", "config", "print", "--config", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

// TestConfigRefusesInsecureProduction: outside dev, what would run an
// insecure server is refused by config validate and by serve, each problem
// naming its key; the same file with a signing key, an issuer and an
// acknowledged choice validates.
func TestConfigRefusesInsecureProduction(t *testing.T) {
	dir := t.TempDir()
	insecure := filepath.Join(dir, "insecure.yaml")
	writeFile(t, insecure, "server: {addr: 0.0.0.0:8700}\nbundles: {require_signature: false}\nforward_auth: {shared_secret: short}\n")
	code, _, errOut := cli(t, "", "config", "validate", insecure)
	for _, want := range []string{"tokens.issuer must be set when server.addr (0.0.0.0:8700)", "bundles.require_signature: false needs bundles.acknowledge_unsigned: true",
		"forward_auth.shared_secret is too weak: 5 bytes, at least 32", ": 3 problem(s)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in\n%s", want, errOut)
		}
	}
	if code != 1 || strings.Contains(errOut, "short") {
		t.Errorf("exit %d (want 1), or the secret shown:\n%s", code, errOut)
	}
	// serve refuses the same file before it listens.
	code, _, errOut = cli(t, "", "serve", "--config", insecure, "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "tokens.issuer must be set") || !strings.Contains(errOut, "acknowledge_unsigned") {
		t.Errorf("serve: exit %d\n%s", code, errOut)
	}
	// Signatures required (the default) with no key: nothing could ever be served.
	nokeys := filepath.Join(dir, "nokeys.yaml")
	writeFile(t, nokeys, "tokens: {issuer: https://verdict.example}\n")
	if code, _, errOut := cli(t, "", "config", "validate", nokeys); code != 1 || !strings.Contains(errOut, "bundles.keys: bundle signatures are required") {
		t.Errorf("no keys: exit %d\n%s", code, errOut)
	}
	// Dev mode is exempt, on loopback only.
	dev := filepath.Join(dir, "dev.yaml")
	writeFile(t, dev, "dev: true\nforward_auth: {shared_secret: short}\n")
	if code, _, errOut := cli(t, "", "config", "validate", dev); code != 0 {
		t.Errorf("dev on loopback: exit %d\n%s", code, errOut)
	}
	_, keys := signedBundle(t, map[string]string{"p.verdict.yaml": policy})
	good := filepath.Join(filepath.Dir(keys), "good.yaml")
	writeFile(t, good, "server: {addr: 0.0.0.0:8700}\ntokens: {issuer: https://verdict.example}\nbundles:\n  keys:\n    ci: {algorithm: ES256, key_file: public.pem}\n"+
		"forward_auth: {shared_secret: 0123456789abcdef0123456789abcdef}\n")
	if code, _, errOut := cli(t, "", "config", "validate", good); code != 0 {
		t.Errorf("a secure production file: exit %d\n%s", code, errOut)
	}
	ack := filepath.Join(dir, "ack.yaml")
	writeFile(t, ack, "server: {addr: 0.0.0.0:8700}\ntokens: {issuer: https://verdict.example}\nbundles: {require_signature: false, acknowledge_unsigned: true}\n")
	if code, _, errOut := cli(t, "", "config", "validate", ack); code != 0 {
		t.Errorf("unsigned, acknowledged: exit %d\n%s", code, errOut)
	}
}

// TestConfigFromEnvironment: every key can be set from a VERDICT_
// variable (the key path upper-cased, dots as underscores), over the file;
// config print shows the result (secrets still masked) and serve uses it; a
// misspelt variable is refused with the name it probably meant.
func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "verdict.yaml")
	writeFile(t, file, "dev: true\nserver:\n  read_timeout: 7s\n  addr: 127.0.0.1:1\n")
	addr := freeAddr(t)
	t.Setenv("VERDICT_SERVER_ADDR", addr)
	t.Setenv("VERDICT_SERVER_READ_TIMEOUT", "9s")
	t.Setenv("VERDICT_SERVER_CORS_ALLOWED_ORIGINS", "[https://app.example]")
	t.Setenv("VERDICT_FORWARD_AUTH_SHARED_SECRET", "env-secret-env-secret-env-secret-#1")
	t.Setenv("VERDICT_DATA_DIR", filepath.Join(dir, "data"))
	code, out, errOut := cli(t, "", "config", "print", "--config", file)
	if code != 0 {
		t.Fatalf("config print: exit %d %s", code, errOut)
	}
	for _, want := range []string{"addr: " + addr, "read_timeout: 9s", "allowed_origins: ['https://app.example']", "shared_secret: '********'"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "env-secret") {
		t.Errorf("the secret from the environment is printed:\n%s", out)
	}
	// serve listens where the environment says.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", file, "--bundle", filepath.Join("..", "..", "policies", "quickstart")}, strings.NewReader(""), io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testutil.WaitFor(t, "serve ready on the address of VERDICT_SERVER_ADDR", 20*time.Millisecond, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	t.Setenv("VERDICT_SERVER_ADR", "127.0.0.1:2")
	t.Setenv("VERDICT_SERVER_BODY_LIMIT", "lots")
	code, _, errOut = cli(t, "", "config", "validate", file)
	for _, want := range []string{"VERDICT_SERVER_ADR: no configuration key server_adr; did you mean VERDICT_SERVER_ADDR?", "VERDICT_SERVER_BODY_LIMIT (server.body_limit)", ": 2 problem(s)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad variables: missing %q in\n%s", want, errOut)
		}
	}
	if code != 1 || strings.Contains(errOut, "lots") {
		t.Errorf("bad variables: exit %d, or the value shown:\n%s", code, errOut)
	}
}
