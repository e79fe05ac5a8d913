package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// signedArchive builds a .tar.gz of files (with a manifest naming rev),
// signed with priv under kid unless priv is nil; tamper, if set, edits the
// files after signing.
func signedArchive(t *testing.T, rev string, files map[string]string, priv *ecdsa.PrivateKey, kid string, tamper func(map[string][]byte)) []byte {
	t.Helper()
	raw := map[string][]byte{".manifest": []byte(`{"revision":"` + rev + `"}`)}
	for n, b := range files {
		raw[n] = []byte(b)
	}
	b, err := bundles.FromFiles(raw, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if priv != nil {
		sig, err := bundles.Sign(b, priv, kid, "ES256", "")
		if err != nil {
			t.Fatal(err)
		}
		b.Files[".signatures.json"] = sig
	}
	if tamper != nil {
		tamper(b.Files)
	}
	var buf bytes.Buffer
	if err := bundles.WriteArchive(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPushRequiresASignature: with signatures required, an unsigned, a
// tampered or a foreign-key bundle is refused with 422 and never replaces
// the signed one that serves.
func TestPushRequiresASignature(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	cfg := bundles.DefaultConfig()
	cfg.Signing = bundles.SigningConfig{Required: true, Keys: map[string]bundles.VerificationKey{"ci": {Algorithm: "ES256", Key: string(pub)}}}
	k := startBundlesWith(t, t.TempDir(), cfg)

	if code, m := k.push(t, signedArchive(t, "signed-1", goodFiles(policyV1), priv, "ci", nil), ""); code != 201 {
		t.Fatalf("signed push: %d %v", code, m)
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"unsigned", signedArchive(t, "unsigned", goodFiles(policyV2), nil, "", nil), "not signed"},
		{"changed after signing", signedArchive(t, "tampered", goodFiles(policyV2), priv, "ci", func(f map[string][]byte) {
			f["docs.verdict.yaml"] = []byte(strings.Replace(string(f["docs.verdict.yaml"]), "allow", "deny", 1))
		}), "hash mismatch"},
		{"file added after signing", signedArchive(t, "added", goodFiles(policyV2), priv, "ci", func(f map[string][]byte) {
			f["extra.verdict.yaml"] = []byte(policyV2)
		}), "not listed"},
		{"another key", signedArchive(t, "foreign", goodFiles(policyV2), other, "ci", nil), "does not verify"},
		{"unknown key id", signedArchive(t, "unknown-kid", goodFiles(policyV2), priv, "nope", nil), "unknown key id"},
	} {
		code, m := k.push(t, tc.archive, "")
		e, _ := m["error"].(map[string]any)
		if code != 422 || e["code"] != CodeBundleSignature || !strings.Contains(e["message"].(string), tc.want) {
			t.Errorf("%s: %d %v, want 422 %s mentioning %q", tc.name, code, m, CodeBundleSignature, tc.want)
		}
	}
	if a := k.mgr.Active(); a == nil || a.Snapshot.Revision() != "signed-1" {
		t.Fatalf("a refused push replaced the signed bundle: %v", a)
	}
}
