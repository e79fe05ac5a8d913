package bundles

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// signNames signs, with k as key id ci, a payload listing each file of
// files under the name listed gives it, with the verdict_dir claim dir
// ("" for none), and returns the .signatures.json content.
func signNames(t *testing.T, k keyPair, files map[string][]byte, listed func(string) string, dir string) []byte {
	t.Helper()
	p := payload{Dir: dir}
	for _, n := range sortedNames(files, func(string) bool { return true }) {
		sum, err := fileHash(n, files[n], hashAlgorithm)
		if err != nil {
			t.Fatal(err)
		}
		p.Files = append(p.Files, FileInfo{Name: listed(n), Hash: hex.EncodeToString(sum), Algorithm: hashAlgorithm})
	}
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	jk, err := jwk.Import(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, "ci"); err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(body, jws.WithKey(jwa.ES256(), jk, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(signatures{Signatures: []string{string(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignedNamesWithAFolderPath: a directory whose signature lists its
// files under a folder path OPA may have written for it (the end of its
// path, or its absolute path), or under the folder path its verdict_dir
// claim names, verifies; a signature for another directory, names under
// two folder paths, a folder path climbing out, an archive whose files
// moved out of the folder they were signed in, and anything not listed once
// with its hash do not.
func TestSignedNamesWithAFolderPath(t *testing.T) {
	k := newKeyPair(t, "ec")
	cfg := signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM})
	files := map[string][]byte{"p.rego": []byte(opaPolicy), "sub/q.rego": []byte("package q\n"), "data.json": []byte(`{"users":{}}`)}
	root := t.TempDir()
	dir := filepath.Join(root, "work", "policies", "main")
	for n, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs := OPADirName(dir) // as `opa sign --bundle /…/work/policies/main` lists it
	under := func(prefix string) func(string) string { return func(n string) string { return prefix + n } }
	for _, tc := range []struct {
		name    string
		listed  func(string) string
		claim   string
		archive bool   // verify the files as an archive (no path) rather than the directory
		file    string // the file the error names
		want    string // "" when it verifies
	}{
		{name: "root names", listed: under("")},
		{name: "opa sign --bundle main, from policies", listed: under("main/")},
		{name: "opa sign --bundle policies/main, from work", listed: under("policies/main/")},
		{name: "opa sign --bundle with the absolute path", listed: under(abs + "/")},
		{name: "verdict bundle sign elsewhere (claim)", listed: under("ci/checkout/main/"), claim: "ci/checkout/main"},
		{name: "archive pushed from a Verdict-signed directory", listed: under("main/"), claim: "main", archive: true},
		{name: "archive with root names", listed: under(""), archive: true},

		{name: "another directory's signature", listed: under("other/"), file: "data.json", want: "not listed"},
		{name: "a folder path that is not the end of this one", listed: under("policies/"), file: "data.json", want: "not listed"},
		{name: "a name ending like the folder, not a segment", listed: under("ain/"), file: "data.json", want: "not listed"},
		{name: "a path that only ends like this one", listed: under("x/work/policies/main/"), file: "data.json", want: "not listed"},
		{name: "the absolute path with its slash", listed: under("/" + abs + "/"), file: "data.json", want: "not listed"},
		{name: "./ before the folder (OPA never writes it)", listed: under("./main/"), file: "data.json", want: "not listed"},
		{name: "climbing out", listed: under("main/../"), file: "data.json", want: "not listed"},
		{name: "climbing in", listed: under("../main/"), file: "data.json", want: "not listed"},
		{name: "an empty segment", listed: under("main//"), file: "data.json", want: "not listed"},
		{name: "two folders", listed: func(n string) string {
			if n == "p.rego" {
				return "other/" + n
			}
			return "main/" + n
		}, file: "data.json", want: "not listed"},
		{name: "root and folder mixed", listed: func(n string) string {
			if n == "p.rego" {
				return n
			}
			return "main/" + n
		}, file: "data.json", want: "not listed"},
		{name: "archive under the directory's folder, unclaimed", listed: under("main/"), archive: true, file: "data.json", want: "an archive's signature must list its files from its root"},
		{name: "archive moved out of a folder it was signed in", listed: under("sub/"), archive: true, file: "data.json", want: "not listed"},
		{name: "a claim the names are not under", listed: under("main/"), claim: "other", file: SignaturesFile, want: "not under verdict_dir"},
		{name: "a claim climbing out", listed: under("../main/"), claim: "../main", file: SignaturesFile, want: "not a folder path of plain names"},
		{name: "an absolute claim", listed: under("/main/"), claim: "/main", file: SignaturesFile, want: "not a folder path of plain names"},
		{name: "a claim of part of the names' folder", listed: under("work/main/"), claim: "work", file: "data.json", want: "not listed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				b   *Bundle
				err error
			)
			if tc.archive {
				b, err = FromFiles(files, DefaultLimits())
			} else {
				b, err = Load(dir, DefaultLimits())
			}
			if err != nil {
				t.Fatal(err)
			}
			b.Files[SignaturesFile] = signNames(t, k, files, tc.listed, tc.claim)
			err = Verify(b, cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSigErr(t, err, tc.file, tc.want)
		})
	}

	// Under a folder path, a changed file, an unlisted one and a missing
	// one are still caught, and named as the bundle names them.
	for _, tc := range []struct {
		name, claim string
	}{{"OPA's names", ""}, {"Verdict's names", "policies/main"}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Load(dir, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sig := signNames(t, k, files, under("policies/main/"), tc.claim)
			with := func(name string, c []byte) *Bundle {
				out := &Bundle{Files: maps2(b.Files, name, c), dirs: b.dirs}
				out.Files[SignaturesFile] = sig
				return out
			}
			wantSigErr(t, Verify(with("p.rego", []byte(opaPolicy+"\n# changed\n")), cfg), "p.rego", "hash mismatch")
			wantSigErr(t, Verify(with("extra.rego", []byte("package extra\n")), cfg), "extra.rego", "not listed")
			wantSigErr(t, Verify(with("sub/q.rego", nil), cfg), "sub/q.rego", "missing from the bundle")
			wantSigErr(t, Verify(with("q.rego", files["sub/q.rego"]), cfg), "q.rego", "not listed")
		})
	}
}

// maps2 is m with name set to c (removed when c is nil).
func maps2(m map[string][]byte, name string, c []byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range m {
		out[k] = v
	}
	if c == nil {
		delete(out, name)
	} else {
		out[name] = c
	}
	return out
}

var (
	opaOnce sync.Once
	opaBin  string
	opaErr  error
)

// opaBinary builds the real `opa` command from the OPA module this module
// requires (go.mod's tool line), once per test binary.
func opaBinary(t *testing.T) string {
	t.Helper()
	opaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verdict-opa-")
		if err != nil {
			opaErr = err
			return
		}
		opaBin = filepath.Join(dir, "opa")
		out, err := exec.Command("go", "build", "-o", opaBin, "github.com/open-policy-agent/opa").CombinedOutput()
		if err != nil {
			opaErr = err
			opaBin = string(out)
		}
	})
	if opaErr != nil {
		if os.Getenv("VERDICT_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("building opa: %v\n%s", opaErr, opaBin)
		}
		t.Skipf("the opa binary could not be built (%v); set VERDICT_REQUIRE_INTEGRATION=1 to fail instead", opaErr)
	}
	return opaBin
}

// opaRun runs opa in dir and returns its combined output and whether it
// exited 0.
func opaRun(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(opaBinary(t), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("exit\n") // `opa run` without --server is a REPL
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// opaAccepts reports whether `opa run -b bundle --verification-key
// public.pem --verification-key-id ci --signing-alg ES256`, run in dir, loads the bundle: OPA
// verifies a bundle's signature as it loads it, and fails on a bad one.
func opaAccepts(t *testing.T, dir, bundle, pub string) (string, bool) {
	t.Helper()
	out, ok := opaRun(t, dir, "run", "-b", bundle, "--verification-key", pub, "--verification-key-id", "ci", "--signing-alg", "ES256")
	return out, ok && !strings.Contains(out, "error")
}

// TestOPADirectorySignaturesBothWays, with the real opa binary: a
// directory signed by `opa sign --bundle DIR` (from its parent folder, as
// docs/policies.md tells readers, as ./DIR, from further up, and with its
// absolute path) is accepted by Verdict's Manager (what verdict serve
// prepares bundles with), and refused once a file changes; a directory
// signed as `verdict bundle sign DIR` signs it (SignAs with OPADirName) is
// accepted by `opa run -b DIR --verification-key` given the same spelling
// of DIR in the same folder, and refused by OPA once a file changes or
// under another spelling.
func TestOPADirectorySignaturesBothWays(t *testing.T) {
	k := newKeyPair(t, "ec") // ES256, what `verdict bundle keygen` makes
	root := t.TempDir()
	write := func(p, c string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("private.pem", k.privPEM)
	write("public.pem", k.pubPEM)
	pub := filepath.Join(root, "public.pem")
	claims := filepath.Join(root, writeClaims(t, root))
	mc := DefaultConfig()
	mc.Signing = signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM})
	m := NewManager(mc, nil)
	files := map[string]string{
		"policy/authz.rego": opaPolicy,
		"data.json":         `{"users": {"alice": {"roles": ["admin"]}}}`,
		".manifest":         `{"revision": "r1", "metadata": {"verdict": {"entrypoint": "authz/decision"}}}`,
	}
	verdictAccepts := func(dir string) error {
		t.Helper()
		b, err := Load(filepath.Join(root, dir), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Prepare(context.Background(), []*Bundle{b})
		return err
	}
	// The directory rel of root, spelled spelling on the command line of
	// a command run in root/from.
	type way struct{ name, rel, from, spelling string }
	ways := func(prefix string) []way {
		return []way{
			{"from the parent folder", prefix + "/main", prefix, "main"},
			{"as ./DIR", prefix + "/dot/main", prefix + "/dot", "./main/"},
			{"from further up", prefix + "/up/policies/main", prefix + "/up", "policies/main"},
			{"by its absolute path", prefix + "/abs/main", prefix + "/abs", filepath.Join(root, prefix, "abs", "main")},
		}
	}

	// OPA signs, Verdict verifies.
	for _, w := range ways("opa") {
		t.Run("opa sign "+w.name, func(t *testing.T) {
			for p, c := range files {
				write(w.rel+"/"+p, c)
			}
			if out, ok := opaRun(t, filepath.Join(root, w.from), "sign", "--signing-key", filepath.Join(root, "private.pem"), "--signing-alg", "ES256", "--claims-file", claims,
				"--bundle", w.spelling, "--output-file-path", w.spelling); !ok {
				t.Fatalf("opa sign: %s", out)
			}
			if out, ok := opaAccepts(t, filepath.Join(root, w.from), w.spelling, pub); !ok {
				t.Fatalf("OPA does not verify its own directory signature: %s", out)
			}
			if err := verdictAccepts(w.rel); err != nil {
				t.Fatalf("Verdict refuses a directory `opa sign --bundle %s` signed: %v", w.spelling, err)
			}
			write(w.rel+"/policy/authz.rego", opaPolicy+"\n# changed\n")
			if err := verdictAccepts(w.rel); err == nil || !strings.Contains(err.Error(), "policy/authz.rego: hash mismatch") {
				t.Fatalf("Verdict on a changed file: %v", err)
			}
		})
	}

	// Verdict signs, OPA verifies.
	for _, w := range ways("verdict") {
		t.Run("verdict bundle sign "+w.name, func(t *testing.T) {
			for p, c := range files {
				write(w.rel+"/"+p, c)
			}
			b, err := Load(filepath.Join(root, w.rel), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sig, err := SignAs(b, OPADirName(w.spelling), k.priv, "ci", "ES256", "")
			if err != nil {
				t.Fatal(err)
			}
			write(w.rel+"/"+SignaturesFile, string(sig))
			if out, ok := opaAccepts(t, filepath.Join(root, w.from), w.spelling, pub); !ok {
				t.Fatalf("opa run -b %s refuses a directory Verdict signed: %s", w.spelling, out)
			}
			if err := verdictAccepts(w.rel); err != nil {
				t.Fatalf("Verdict refuses its own directory signature: %v", err)
			}
			// OPA matches the names against the path it is given: another
			// spelling of the same directory is refused.
			other := filepath.Join(root, w.rel)
			if filepath.IsAbs(w.spelling) {
				other = filepath.Base(w.rel)
			}
			if out, ok := opaAccepts(t, filepath.Join(root, w.from), other, pub); ok {
				t.Fatalf("opa run -b %s accepted names written for -b %s: %s", other, w.spelling, out)
			}
			write(w.rel+"/data.json", `{"users": {"mallory": {"roles": ["admin"]}}}`)
			if out, ok := opaAccepts(t, filepath.Join(root, w.from), w.spelling, pub); ok {
				t.Fatalf("opa run accepted a changed file: %s", out)
			}
			if err := verdictAccepts(w.rel); err == nil || !strings.Contains(err.Error(), "data.json: hash mismatch") {
				t.Fatalf("Verdict on a changed file: %v", err)
			}
		})
	}
}

// writeClaims writes the claims file that gives `opa sign` a key id.
func writeClaims(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "claims.json")
	if err := os.WriteFile(p, []byte(`{"keyid": "ci"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return "claims.json"
}
