package bundles

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

type keyPair struct {
	priv    crypto.Signer
	privPEM string
	pubPEM  string
}

func newKeyPair(t *testing.T, kind string) keyPair {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch kind {
	case "ec":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
	case "ed":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		priv:    priv,
		privPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})),
		pubPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk})),
	}
}

const opaPolicy = `package authz

default decision := {"decision": false, "reasons": ["not-admin"]}

decision := {"decision": true, "reasons": ["admin"]} if {
	"admin" in data.users[input.subject.id].roles
}
`

// opaSigned builds and signs a bundle with OPA's own bundle package, the code
// behind `opa build --signing-key`, and returns the archive bytes.
func opaSigned(t *testing.T, k keyPair, alg, kid, claims string) []byte {
	t.Helper()
	b := opabundle.Bundle{
		Manifest: opabundle.Manifest{
			Revision: "opa-signed-1",
			Roots:    &[]string{"authz", "users"},
			Metadata: map[string]any{"verdict": map[string]any{"entrypoint": "authz/decision"}},
		},
		Data:    map[string]any{"users": map[string]any{"alice": map[string]any{"roles": []any{"admin"}}}},
		Modules: []opabundle.ModuleFile{{URL: "/authz/policy.rego", Path: "/authz/policy.rego", Raw: []byte(opaPolicy)}},
	}
	claimsPath := ""
	if claims != "" {
		claimsPath = filepath.Join(t.TempDir(), "claims.json")
		if err := os.WriteFile(claimsPath, []byte(claims), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.GenerateSignature(opabundle.NewSigningConfig(k.privPEM, alg, claimsPath), kid, false); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func signingCfg(kid string, k VerificationKey) SigningConfig {
	return SigningConfig{Required: true, Keys: map[string]VerificationKey{kid: k}}
}

func readOrFatal(t *testing.T, arch []byte) *Bundle {
	t.Helper()
	b, err := ReadArchive(bytes.NewReader(arch), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tampered(t *testing.T, b *Bundle, edit func(map[string][]byte)) *Bundle {
	t.Helper()
	files := maps.Clone(b.Files)
	edit(files)
	out, err := FromFiles(files, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantSigErr(t *testing.T, err error, file, contains string) {
	t.Helper()
	var se *SignatureError
	if !errors.As(err, &se) {
		t.Fatalf("want a *SignatureError containing %q, got %v", contains, err)
	}
	if se.File != file || !strings.Contains(err.Error(), contains) {
		t.Fatalf("want a SignatureError on %q containing %q, got file %q: %v", file, contains, se.File, err)
	}
}

// TestOPASignedBundleVerifies: a bundle built and signed by OPA's bundle
// package is accepted by Verify and by the Manager, and decides; every kind
// of tampering is rejected.
func TestOPASignedBundleVerifies(t *testing.T) {
	k := newKeyPair(t, "ec")
	good := readOrFatal(t, opaSigned(t, k, "ES256", "ci", ""))
	cfg := signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM})
	if err := Verify(good, cfg); err != nil {
		t.Fatalf("OPA-signed bundle rejected: %v", err)
	}
	mc := DefaultConfig()
	mc.Signing = cfg
	m := NewManager(mc, nil)
	path := filepath.Join(t.TempDir(), "opa.tar.gz")
	if err := os.WriteFile(path, opaSigned(t, k, "ES256", "ci", ""), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadPaths(context.Background(), []string{path})
	if err != nil || a.Snapshot.Revision() != "opa-signed-1" {
		t.Fatalf("the manager rejected the OPA-signed bundle: %v", err)
	}
	// data.json and .manifest are hashed as canonical JSON, as in OPA:
	// reformatting them keeps the signature valid.
	reformatted := tampered(t, good, func(f map[string][]byte) {
		var v any
		json.Unmarshal(f["data.json"], &v)
		f["data.json"], _ = json.MarshalIndent(v, "", "\t")
	})
	if err := Verify(reformatted, cfg); err != nil {
		t.Fatalf("a reformatted data.json must still verify: %v", err)
	}

	other := newKeyPair(t, "ec")
	cases := []struct {
		name      string
		b         *Bundle
		file, msg string
	}{
		{"one byte changed", tampered(t, good, func(f map[string][]byte) {
			f["authz/policy.rego"] = bytes.Replace(f["authz/policy.rego"], []byte(`"admin" in`), []byte(`"admon" in`), 1)
		}), "authz/policy.rego", "hash mismatch"},
		{"data value changed", tampered(t, good, func(f map[string][]byte) {
			f["data.json"] = []byte(`{"users":{"bob":{"roles":["admin"]}}}`)
		}), "data.json", "hash mismatch"},
		{"file added", tampered(t, good, func(f map[string][]byte) {
			f["authz/extra.rego"] = []byte("package authz\n\ndecision := {\"decision\": true}\n")
		}), "authz/extra.rego", "not listed"},
		{"file removed", tampered(t, good, func(f map[string][]byte) { delete(f, "authz/policy.rego") }), "authz/policy.rego", "missing from the bundle"},
		{"signed with another key", readOrFatal(t, opaSigned(t, other, "ES256", "ci", "")), SignaturesFile, "does not verify with key ci"},
		{"wrong kid", readOrFatal(t, opaSigned(t, k, "ES256", "someone-else", "")), SignaturesFile, `unknown key id "someone-else"`},
		{"signature swapped in", tampered(t, good, func(f map[string][]byte) {
			f[SignaturesFile] = readOrFatal(t, opaSigned(t, other, "ES256", "ci", "")).Files[SignaturesFile]
		}), SignaturesFile, "does not verify"},
		{"scope not expected", readOrFatal(t, opaSigned(t, k, "ES256", "ci", `{"keyid":"ci","scope":"staging"}`)), SignaturesFile, "scope mismatch"},
		{"unsigned", tampered(t, good, func(f map[string][]byte) { delete(f, SignaturesFile) }), "", "not signed"},
		{"malformed json", tampered(t, good, func(f map[string][]byte) { f[SignaturesFile] = []byte("{") }), SignaturesFile, "malformed"},
		{"no signature", tampered(t, good, func(f map[string][]byte) { f[SignaturesFile] = []byte(`{"signatures":[]}`) }), SignaturesFile, "exactly one"},
		{"two signatures", tampered(t, good, func(f map[string][]byte) { f[SignaturesFile] = []byte(`{"signatures":["a.b.c","a.b.c"]}`) }), SignaturesFile, "exactly one"},
		{"unknown field", tampered(t, good, func(f map[string][]byte) { f[SignaturesFile] = []byte(`{"signature":["x"]}`) }), SignaturesFile, "malformed"},
		{"not a JWS", tampered(t, good, func(f map[string][]byte) { f[SignaturesFile] = []byte(`{"signatures":["not-a-jws"]}`) }), SignaturesFile, "malformed JWS"},
		{"nested signatures file", tampered(t, good, func(f map[string][]byte) { f["authz/.signatures.json"] = []byte(`{}`) }), "authz/.signatures.json", "only allowed at the bundle root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantSigErr(t, Verify(tc.b, cfg), tc.file, tc.msg)
			// Keys configured: a signed bundle is verified even when not required.
			if tc.name != "unsigned" {
				loose := cfg
				loose.Required = false
				wantSigErr(t, Verify(tc.b, loose), tc.file, tc.msg)
			}
		})
	}
	// The same scope on both sides verifies.
	scoped := signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM, Scope: "staging"})
	if err := Verify(readOrFatal(t, opaSigned(t, k, "ES256", "ci", `{"keyid":"ci","scope":"staging"}`)), scoped); err != nil {
		t.Fatalf("matching scope: %v", err)
	}
	wantSigErr(t, Verify(good, scoped), SignaturesFile, "scope mismatch")
}

// TestAlgorithmMustMatchTheKey: a signature made with another algorithm than
// the key's configured one is rejected, even when the key could check it.
func TestAlgorithmMustMatchTheKey(t *testing.T) {
	k := newKeyPair(t, "rsa")
	ps := readOrFatal(t, opaSigned(t, k, "PS256", "ci", ""))
	wantSigErr(t, Verify(ps, signingCfg("ci", VerificationKey{Algorithm: "RS256", Key: k.pubPEM})), SignaturesFile, `signed with alg "PS256", but key ci is configured for RS256`)
	// Empty algorithm means RS256, as in OPA.
	rs := readOrFatal(t, opaSigned(t, k, "RS256", "ci", ""))
	if err := Verify(rs, signingCfg("ci", VerificationKey{Key: k.pubPEM})); err != nil {
		t.Fatalf("RS256 by default: %v", err)
	}
	// An HMAC signature made with the public key's PEM as the secret (the
	// classic algorithm-confusion attack) is rejected.
	hs := readOrFatal(t, opaSigned(t, keyPair{privPEM: k.pubPEM}, "HS256", "ci", ""))
	wantSigErr(t, Verify(hs, signingCfg("ci", VerificationKey{Key: k.pubPEM})), SignaturesFile, `signed with alg "HS256"`)
}

func TestRequiredWithoutKeys(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{"a.verdict.yaml": []byte(okPolicy)}, DefaultLimits())
	err := Verify(b, SigningConfig{Required: true})
	wantSigErr(t, err, "", "not signed")
	for _, want := range []string{"verdict bundle sign", "bundles.keys", "bundles.require_signature: false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not say %q: %v", want, err)
		}
	}
	signed, _ := FromFiles(map[string][]byte{"a.verdict.yaml": []byte(okPolicy), SignaturesFile: []byte(`{"signatures":["x"]}`)}, DefaultLimits())
	wantSigErr(t, Verify(signed, SigningConfig{Required: true}), SignaturesFile, "no key is configured")
	if err := Verify(b, SigningConfig{}); err != nil {
		t.Fatalf("the zero SigningConfig trusts any bundle: %v", err)
	}
	if err := Verify(b, SigningConfig{Keys: map[string]VerificationKey{"ci": {}}}); err != nil {
		t.Fatalf("keys configured but not required: an unsigned bundle passes: %v", err)
	}
}

// TestVerdictSignatureVerifiesInOPA: Sign's output is accepted by OPA's
// bundle reader with signature verification, and by Verify; a change after
// signing is rejected by both.
func TestVerdictSignatureVerifiesInOPA(t *testing.T) {
	for _, tc := range []struct{ kind, alg string }{{"ec", "ES256"}, {"rsa", "PS384"}, {"ed", "EdDSA"}} {
		t.Run(tc.alg, func(t *testing.T) {
			k := newKeyPair(t, tc.kind)
			b, err := FromFiles(map[string][]byte{
				"docs.verdict.yaml": []byte(okPolicy),
				"docs_test.yaml":    []byte(okTests),
				"data.json":         []byte(`{"admins": ["root"]}`),
				"teams/data.yaml":   []byte("eng: [alice]\n"),
				"authz/policy.rego": []byte(opaPolicy),
				".manifest":         []byte(`{"revision": "v-signed", "roots": [""]}`),
			}, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(b, k.priv, "ci", tc.alg, "prod")
			if err != nil {
				t.Fatal(err)
			}
			files := maps.Clone(b.Files)
			files[SignaturesFile] = sig
			signed, _ := FromFiles(files, DefaultLimits())
			cfg := signingCfg("ci", VerificationKey{Algorithm: tc.alg, Key: k.pubPEM, Scope: "prod"})
			if err := Verify(signed, cfg); err != nil {
				t.Fatalf("Verify rejects Sign's output: %v", err)
			}
			opaKeys := map[string]*opabundle.KeyConfig{"ci": {Key: k.pubPEM, Algorithm: tc.alg, Scope: "prod"}}
			opaRead := func(b *Bundle) error {
				var buf bytes.Buffer
				if err := WriteArchive(&buf, b); err != nil {
					t.Fatal(err)
				}
				_, err := opabundle.NewReader(&buf).
					WithBundleVerificationConfig(opabundle.NewVerificationConfig(opaKeys, "", "", nil)).Read()
				return err
			}
			if err := opaRead(signed); err != nil {
				t.Fatalf("OPA rejects Verdict's signature: %v", err)
			}
			bad := tampered(t, signed, func(f map[string][]byte) { f["docs.verdict.yaml"] = append(f["docs.verdict.yaml"], '\n') })
			if err := opaRead(bad); err == nil {
				t.Fatal("OPA accepted a file changed after signing")
			}
			wantSigErr(t, Verify(bad, cfg), "docs.verdict.yaml", "hash mismatch")
			// Re-signing a signed bundle ignores the old .signatures.json.
			again, err := Sign(signed, k.priv, "ci", tc.alg, "prod")
			if err != nil {
				t.Fatal(err)
			}
			files[SignaturesFile] = again
			resigned, _ := FromFiles(files, DefaultLimits())
			if err := Verify(resigned, cfg); err != nil {
				t.Fatalf("re-signed: %v", err)
			}
		})
	}
}

func TestSignRejectsAMismatchedAlgorithm(t *testing.T) {
	k := newKeyPair(t, "ec")
	b, _ := FromFiles(map[string][]byte{"a.rego": []byte("package a\n")}, DefaultLimits())
	for _, alg := range []string{"RS256", "ES384", "HS256", "none", "EdDSA"} {
		if _, err := Sign(b, k.priv, "ci", alg, ""); err == nil {
			t.Errorf("%s with a P-256 key: no error", alg)
		}
	}
	sig, err := Sign(b, k.priv, "ci", "", "")
	if err != nil || !bytes.Contains(sig, []byte(`"signatures"`)) {
		t.Fatalf("default algorithm: %v", err)
	}
}

// TestManagerRequiresSignatures: with Required, an unsigned or tampered
// bundle is rejected and the active signed one keeps serving.
func TestManagerRequiresSignatures(t *testing.T) {
	k := newKeyPair(t, "ed")
	good, _ := FromFiles(stringFiles(goodFiles), DefaultLimits())
	sig, err := Sign(good, k.priv, "ci", "EdDSA", "")
	if err != nil {
		t.Fatal(err)
	}
	signedFiles := maps.Clone(goodFiles)
	signedFiles[SignaturesFile] = string(sig)
	mc := DefaultConfig()
	mc.Signing = signingCfg("ci", VerificationKey{Algorithm: "EdDSA", Key: k.pubPEM})
	m := NewManager(mc, nil)
	if _, err := m.LoadPaths(context.Background(), []string{writeDir(t, signedFiles)}); err != nil {
		t.Fatalf("signed bundle: %v", err)
	}
	unsigned := writeDir(t, goodFiles)
	_, err = m.LoadPaths(context.Background(), []string{unsigned})
	var se *SignatureError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), unsigned) || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("want the unsigned bundle rejected, naming its path: %v", err)
	}
	changed := maps.Clone(signedFiles)
	changed["data.json"] = `{"admins": ["root", "mallory"]}`
	if _, err := m.LoadPaths(context.Background(), []string{writeDir(t, changed)}); !errors.As(err, &se) || se.File != "data.json" {
		t.Fatalf("want the changed data.json rejected: %v", err)
	}
	if a := m.Active(); a.Generation != 1 || a.Snapshot.Revision() != "r7" {
		t.Fatalf("the active bundle changed: %+v", a)
	}
}

func stringFiles(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func TestVerificationKeyValidate(t *testing.T) {
	ec, rsa1024, rsaOK, ed := newKeyPair(t, "ec"), newKeyPair(t, "rsa1024"), newKeyPair(t, "rsa"), newKeyPair(t, "ed")
	file := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(file, []byte(ec.pubPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []VerificationKey{
		{Algorithm: "ES256", Key: ec.pubPEM},
		{Algorithm: "ES256", KeyFile: file},
		{Key: rsaOK.pubPEM},
		{Algorithm: "PS512", Key: rsaOK.pubPEM},
		{Algorithm: "EdDSA", Key: ed.pubPEM},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for want, bad := range map[string]VerificationKey{
		"not allowed":               {Algorithm: "HS256", Key: ec.pubPEM},
		`"none" is not allowed`:     {Algorithm: "none", Key: ec.pubPEM},
		`"XY999" is not allowed`:    {Algorithm: "XY999", Key: ec.pubPEM},
		"not a PEM":                 {Algorithm: "ES256", Key: "garbage"},
		"private key":               {Algorithm: "ES256", Key: ec.privPEM},
		"cannot be used with RS256": {Key: ec.pubPEM},
		"cannot be used with ES384": {Algorithm: "ES384", Key: ec.pubPEM},
		"Ed25519 key cannot":        {Algorithm: "ES256", Key: ed.pubPEM},
		"at least 2048":             {Key: rsa1024.pubPEM},
		"not both":                  {Algorithm: "ES256", Key: ec.pubPEM, KeyFile: file},
		"key_file":                  {Algorithm: "ES256", KeyFile: file + ".missing"},
		"key or key_file":           {Algorithm: "ES256"},
	} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	cfg := SigningConfig{Keys: map[string]VerificationKey{"a": {Algorithm: "HS256"}, "b": {Key: "x"}}, Exclude: []string{"["}}
	err := cfg.Validate()
	for _, want := range []string{"key a:", "key b:", "exclude pattern"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q among %v", want, err)
		}
	}
}

// TestExcludedFilesNeedNotBeListed follows OPA's exclude_files.
func TestExcludedFilesNeedNotBeListed(t *testing.T) {
	k := newKeyPair(t, "ec")
	b, _ := FromFiles(map[string][]byte{"a.rego": []byte("package a\n")}, DefaultLimits())
	sig, _ := Sign(b, k.priv, "ci", "ES256", "")
	extra, _ := FromFiles(map[string][]byte{"a.rego": []byte("package a\n"), SignaturesFile: sig, "notes/README.md": []byte("hi")}, DefaultLimits())
	cfg := signingCfg("ci", VerificationKey{Algorithm: "ES256", Key: k.pubPEM})
	wantSigErr(t, Verify(extra, cfg), "notes/README.md", "not listed")
	cfg.Exclude = []string{"notes/*"}
	if err := Verify(extra, cfg); err != nil {
		t.Fatalf("excluded file: %v", err)
	}
}

func TestWithRevisionKeepsTheManifest(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{".manifest": []byte(`{"revision":"old","roots":["a"],"metadata":{"x":1}}`)}, DefaultLimits())
	nb, err := b.WithRevision("new")
	if err != nil || nb.Revision() != "new" || (*nb.Manifest.Roots)[0] != "a" || b.Revision() != "old" || nb.Digest == b.Digest {
		t.Fatalf("%v %+v", err, nb)
	}
}
