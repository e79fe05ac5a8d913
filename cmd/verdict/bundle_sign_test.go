package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict/bundles"
)

// unsignedOK writes a configuration that serves unsigned bundles outside
// --dev, for tests about something else than signatures.
func unsignedOK(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "unsigned.yaml")
	writeFile(t, p, "bundles: {require_signature: false, acknowledge_unsigned: true}\n")
	return p
}

// signedBundle makes a bundle directory of files, signs it with a key from
// `verdict bundle keygen` and `verdict bundle sign`, and returns it with a
// configuration that trusts the key as "ci".
func signedBundle(t *testing.T, files map[string]string) (dir, cfg string) {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "keys")
	if code, _, errOut := cli(t, "", "bundle", "keygen", "--alg", "ES256", "--out", keys); code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	dir = bundleDir(t, files)
	if code, out, errOut := cli(t, "", "bundle", "sign", dir, "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci"); code != 0 {
		t.Fatalf("sign: %d %s %s", code, out, errOut)
	}
	cfg = filepath.Join(keys, "verdict.yaml")
	writeFile(t, cfg, "bundles:\n  keys:\n    ci: {algorithm: ES256, key_file: public.pem}\n")
	return dir, cfg
}

func TestBundleKeygen(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k")
	code, stdout, errOut := cli(t, "", "bundle", "keygen", "--alg", "EdDSA", "--out", out)
	if code != 0 || !strings.Contains(stdout, "key_file: "+filepath.Join(out, "public.pem")) {
		t.Fatalf("keygen: %d %s %s", code, stdout, errOut)
	}
	fi, err := os.Stat(filepath.Join(out, "private.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi, err)
	}
	pub, _ := os.ReadFile(filepath.Join(out, "public.pem"))
	if err := (bundles.VerificationKey{Algorithm: "EdDSA", Key: string(pub)}).Validate(); err != nil {
		t.Fatalf("public.pem does not load as a verification key: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(out, "private.pem"))
	if code, _, errOut := cli(t, "", "bundle", "keygen", "--out", out); code != 2 || !strings.Contains(errOut, "not overwriting") {
		t.Fatalf("keygen over existing keys: %d %s", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "private.pem")); !bytes.Equal(before, after) {
		t.Fatal("the private key was overwritten")
	}
	for _, args := range [][]string{{"--out", t.TempDir(), "--alg", "HS256"}, {"--alg", "ES256"}} {
		if code, _, _ := cli(t, "", append([]string{"bundle", "keygen"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestBundleSign: sign writes a .signatures.json that bundle test verifies
// when --config gives the key; a change after signing fails the test run,
// and without keys bundle test requires nothing.
func TestBundleSign(t *testing.T) {
	dir, cfg := signedBundle(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	if _, err := os.Stat(filepath.Join(dir, bundles.SignaturesFile)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli(t, "", "bundle", "test", "--config", cfg, dir); code != 0 {
		t.Fatalf("signed bundle: %d %s", code, out)
	}
	writeFile(t, filepath.Join(dir, "p_test.yaml"), tests+"\n")
	code, out, _ := cli(t, "", "bundle", "test", "--config", cfg, dir)
	if code != 1 || !strings.Contains(out, "p_test.yaml: hash mismatch") {
		t.Fatalf("changed after signing: %d %s", code, out)
	}
	if code, out, _ := cli(t, "", "bundle", "test", dir); code != 0 {
		t.Fatalf("without keys, bundle test must not verify: %d %s", code, out)
	}
	// decide also verifies a present signature when keys are configured.
	in := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	if code, _, errOut := cli(t, in, "decide", "--config", cfg, "--bundle", dir); code != 2 || !strings.Contains(errOut, "hash mismatch") {
		t.Fatalf("decide on a changed bundle: %d %s", code, errOut)
	}
	if code, out, _ := cli(t, in, "decide", "--bundle", dir); code != 0 || !strings.Contains(out, `"decision": true`) {
		t.Fatalf("decide without keys: %d %s", code, out)
	}
	// Signing again makes it good; --output-file-path writes elsewhere.
	keys := filepath.Dir(cfg)
	elsewhere := t.TempDir()
	if code, out, _ := cli(t, "", "bundle", "sign", dir, "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci", "--output-file-path", elsewhere); code != 0 || !strings.Contains(out, filepath.Join(elsewhere, bundles.SignaturesFile)) {
		t.Fatalf("sign --output-file-path: %d %s", code, out)
	}
	sig, _ := os.ReadFile(filepath.Join(elsewhere, bundles.SignaturesFile))
	writeFile(t, filepath.Join(dir, bundles.SignaturesFile), string(sig))
	if code, out, _ := cli(t, "", "bundle", "test", "--config", cfg, dir); code != 0 {
		t.Fatalf("re-signed: %d %s", code, out)
	}
	for name, args := range map[string][]string{
		"no key":      {dir, "--key-id", "ci"},
		"no key id":   {dir, "--signing-key", filepath.Join(keys, "private.pem")},
		"public key":  {dir, "--signing-key", filepath.Join(keys, "public.pem"), "--key-id", "ci"},
		"wrong alg":   {dir, "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci", "--alg", "RS256"},
		"missing key": {dir, "--signing-key", filepath.Join(keys, "nope.pem"), "--key-id", "ci"},
		"no dir":      {},
		"not a dir":   {filepath.Join(keys, "public.pem"), "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci"},
	} {
		if code, _, errOut := cli(t, "", append([]string{"bundle", "sign"}, args...)...); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errOut)
		}
	}
	if code, _, _ := cli(t, "", "bundle", "sign", filepath.Join(dir, "missing"), "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci"); code != 1 {
		t.Errorf("unreadable bundle: exit %d, want 1", code)
	}
}

// TestBundleBuild: build writes an OPA-layout archive that Verdict verifies
// with the key and OPA's own reader verifies too.
func TestBundleBuild(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if code, _, errOut := cli(t, "", "bundle", "keygen", "--alg", "ES384", "--out", keys); code != 0 {
		t.Fatal(errOut)
	}
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests, "data.json": `{"x": 1}`})
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	code, stdout, errOut := cli(t, "", "bundle", "build", dir, "-o", out, "--revision", "2026-12-01.1",
		"--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci", "--scope", "prod")
	if code != 0 || !strings.Contains(stdout, "signed with key ci") {
		t.Fatalf("build: %d %s %s", code, stdout, errOut)
	}
	b, err := bundles.Load(out, bundles.DefaultLimits())
	if err != nil || b.Revision() != "2026-12-01.1" {
		t.Fatalf("load: %v %+v", err, b)
	}
	pub, _ := os.ReadFile(filepath.Join(keys, "public.pem"))
	cfg := bundles.SigningConfig{Required: true, Keys: map[string]bundles.VerificationKey{"ci": {Algorithm: "ES384", Key: string(pub), Scope: "prod"}}}
	if err := bundles.Verify(b, cfg); err != nil {
		t.Fatalf("verify: %v", err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	vc := opabundle.NewVerificationConfig(map[string]*opabundle.KeyConfig{"ci": {Key: string(pub), Algorithm: "ES384", Scope: "prod"}}, "", "", nil)
	ob, err := opabundle.NewReader(f).WithBundleVerificationConfig(vc).Read()
	if err != nil || ob.Manifest.Revision != "2026-12-01.1" {
		t.Fatalf("OPA reading the built bundle: %v", err)
	}
	// The same input builds the same bytes.
	first, _ := os.ReadFile(out)
	out2 := filepath.Join(t.TempDir(), "b.tar.gz")
	if code, _, _ := cli(t, "", "bundle", "build", dir, "-o", out2, "--revision", "2026-12-01.1"); code != 0 {
		t.Fatal("unsigned build failed")
	}
	unsigned, _ := bundles.Load(out2, bundles.DefaultLimits())
	if _, ok := unsigned.Files[bundles.SignaturesFile]; ok || len(first) == 0 {
		t.Fatal("an unsigned build carries a signature")
	}
	again := filepath.Join(t.TempDir(), "c.tar.gz")
	cli(t, "", "bundle", "build", dir, "-o", again, "--revision", "2026-12-01.1")
	if a, b := mustRead(t, out2), mustRead(t, again); !bytes.Equal(a, b) {
		t.Fatal("two builds of the same input differ")
	}
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	if code, stdout, _ := cli(t, "", "bundle", "build", broken, "-o", filepath.Join(t.TempDir(), "x.tar.gz")); code != 1 || !strings.Contains(stdout, "p.verdict.yaml:7:") {
		t.Fatalf("broken bundle: %d %s", code, stdout)
	}
	for name, args := range map[string][]string{
		"no output":      {dir},
		"key id, no key": {dir, "-o", filepath.Join(t.TempDir(), "y.tar.gz"), "--key-id", "ci"},
		"bad alg":        {dir, "-o", filepath.Join(t.TempDir(), "y.tar.gz"), "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci", "--alg", "HS256"},
	} {
		if code, _, errOut := cli(t, "", append([]string{"bundle", "build"}, args...)...); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errOut)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeRequiresSignatures: outside --dev, serve rejects an unsigned
// bundle (not ready) and says why and how to fix it; a signed bundle with
// its key configured serves.
func TestServeRequiresSignatures(t *testing.T) {
	start := func(args ...string) (*bytes.Buffer, func()) {
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var out, errb bytes.Buffer
		go func() {
			done <- run(ctx, append([]string{"serve", "--addr", addr, "--data-dir", t.TempDir()}, args...), strings.NewReader(""), &out, &errb)
		}()
		var status int
		for i := 0; i < 200; i++ {
			if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		errb.WriteString("\nreadyz " + http.StatusText(status))
		return &errb, func() { cancel(); <-done }
	}
	unsigned := bundleDir(t, map[string]string{"p.verdict.yaml": policy})
	// Signatures required with no key configured: no bundle could ever be
	// served, so serve refuses to start and says how to fix it.
	code, _, errOut := cli(t, "", "serve", "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--bundle", unsigned)
	for _, want := range []string{"invalid configuration", "bundles.keys", "require_signature: false", "acknowledge_unsigned: true"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("unsigned bundle, no keys: %q missing from\n%s", want, errOut)
		}
	}
	if code == 0 {
		t.Errorf("unsigned bundle, no keys: serve exit 0")
	}
	dir, cfg := signedBundle(t, map[string]string{"p.verdict.yaml": policy})
	log, stop := start("--config", cfg, "--bundle", unsigned)
	stop()
	if !strings.Contains(log.String(), "readyz Service Unavailable") || !strings.Contains(log.String(), "verdict bundle sign") {
		t.Errorf("unsigned bundle with keys: %s", log)
	}
	log, stop = start("--config", cfg, "--bundle", dir)
	stop()
	if !strings.Contains(log.String(), "readyz OK") || !strings.Contains(log.String(), "bundle signatures required") {
		t.Errorf("signed bundle: %s", log)
	}
	log, stop = start("--dev", "--bundle", unsigned)
	stop()
	if !strings.Contains(log.String(), "readyz OK") {
		t.Errorf("--dev serves unsigned bundles: %s", log)
	}
}

// TestBundleSignNames: sign lists the files under DIR as OPA would name
// them given DIR (an absolute path without its "/"), or under --opa-path,
// with the same folder path in the verdict_dir claim; the result verifies
// wherever the directory lies. A path climbing out with ".." is refused.
func TestBundleSignNames(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if code, _, errOut := cli(t, "", "bundle", "keygen", "--alg", "ES256", "--out", keys); code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	cfg := filepath.Join(keys, "verdict.yaml")
	writeFile(t, cfg, "bundles:\n  keys:\n    ci: {algorithm: ES256, key_file: public.pem}\n")
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	abs := strings.TrimPrefix(filepath.ToSlash(dir), "/")
	for _, tc := range []struct {
		opaPath, wantDir, wantOut string
	}{
		{"", abs, "files listed as " + abs + "/…"},
		{"policies/main/", "policies/main", "opa run -b policies/main verifies it from this folder"},
		{".", "", "files listed from the bundle root"},
	} {
		args := []string{"bundle", "sign", dir, "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci"}
		if tc.opaPath != "" {
			args = append(args, "--opa-path", tc.opaPath)
		}
		code, out, errOut := cli(t, "", args...)
		if code != 0 || !strings.Contains(out, tc.wantOut) {
			t.Fatalf("--opa-path %q: %d %s %s", tc.opaPath, code, out, errOut)
		}
		p := signedPayload(t, filepath.Join(dir, bundles.SignaturesFile))
		prefix := ""
		if tc.wantDir != "" {
			prefix = tc.wantDir + "/"
		}
		if p.Dir != tc.wantDir || len(p.Files) != 2 || p.Files[0].Name != prefix+"p.verdict.yaml" || p.Files[1].Name != prefix+"p_test.yaml" {
			t.Fatalf("--opa-path %q: payload %+v", tc.opaPath, p)
		}
		if code, out, _ := cli(t, "", "bundle", "test", "--config", cfg, dir); code != 0 {
			t.Fatalf("--opa-path %q: Verdict refuses it: %d %s", tc.opaPath, code, out)
		}
	}
	code, _, errOut := cli(t, "", "bundle", "sign", dir, "--signing-key", filepath.Join(keys, "private.pem"), "--key-id", "ci", "--opa-path", "../main")
	if code != 2 || !strings.Contains(errOut, "climbs out of this folder") {
		t.Fatalf("--opa-path ../main: %d %s", code, errOut)
	}
}

// signedPayload returns the payload of the signature in the
// .signatures.json at p, unverified.
func signedPayload(t *testing.T, p string) (payload struct {
	Files []bundles.FileInfo `json:"files"`
	Dir   string             `json:"verdict_dir"`
}) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var sigs struct{ Signatures []string }
	if err := json.Unmarshal(raw, &sigs); err != nil || len(sigs.Signatures) != 1 {
		t.Fatalf("%s: %v %s", p, err, raw)
	}
	parts := strings.Split(sigs.Signatures[0], ".")
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		t.Fatal(err)
	}
	return payload
}
