package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestDecisionVerify: a decision a running server signed verifies with
// `verdict decision verify` against its JWKS (URL or file), as a bare JWS
// or inside the answer, with its input and issuer; a tampered one, another
// input, another issuer or an access token exits 1.
func TestDecisionVerify(t *testing.T) {
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests})
	base, client := serveReady(t, "--bundle", dir)
	const req = `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}},"options":{"signed":true}}`
	resp, err := client.Post(base+"/v1/decide", "application/json", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var a struct {
		Decision bool
		Context  struct {
			DecisionID string `json:"decision_id"`
			Signature  string
		}
	}
	if err := json.Unmarshal(answer, &a); err != nil || !a.Decision || a.Context.Signature == "" {
		t.Fatalf("signed answer %s (%v)", answer, err)
	}
	sig, jwksURL := a.Context.Signature, base+"/.well-known/jwks.json"

	code, out, errOut := cli(t, "", "decision", "verify", sig, "--jwks", jwksURL)
	var claims map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &claims) != nil || claims["decision"] != true ||
		claims["decision_id"] != a.Context.DecisionID || claims["iss"] != base || claims["caller"] != "" {
		t.Fatalf("verify: %d\n%s\n%s", code, out, errOut)
	}

	dirOut := t.TempDir()
	jwksFile, input, other := filepath.Join(dirOut, "jwks.json"), filepath.Join(dirOut, "in.json"), filepath.Join(dirOut, "other.json")
	resp, err = client.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	writeFile(t, jwksFile, string(keys))
	writeFile(t, input, req)
	writeFile(t, other, strings.Replace(req, `"id":"1"`, `"id":"2"`, 1))
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{sig, "--jwks", jwksFile, "--input", input, "--issuer", base}},
		{sig + "\n", []string{"--jwks", jwksURL}},
		{string(answer), []string{"-", "--jwks", jwksFile, "--input", input}},
	} {
		if code, out, errOut := cli(t, c.stdin, append([]string{"decision", "verify"}, c.args...)...); code != 0 || !strings.Contains(out, a.Context.DecisionID) {
			t.Errorf("%v: %d\n%s\n%s", c.args, code, out, errOut)
		}
	}

	// Tampered: the payload says deny, or the signature lost a byte.
	parts := strings.Split(sig, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	flipped := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"decision":true`, `"decision":false`, 1))) + "." + parts[2]
	cut := sig[:len(sig)-4] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, sig[len(sig)-4:])
	// Signed by another key: a decision of typ verdict-decision+jwt
	// verifies only with that key, and a JWS of another typ (an access
	// token) with no key at all.
	claims["iss"] = "https://elsewhere.example"
	foreign, foreignKeys := foreignJWS(t, "verdict-decision+jwt", claims)
	token, tokenKeys := foreignJWS(t, "at+jwt", claims)
	if code, _, errOut := cli(t, "", "decision", "verify", foreign, "--jwks", foreignKeys); code != 0 {
		t.Fatalf("a decision by another key, with its JWKS: %d %s", code, errOut)
	}
	for name, c := range map[string][]string{
		"payload flipped":  {flipped, "--jwks", jwksURL},
		"signature broken": {cut, "--jwks", jwksFile},
		"another input":    {sig, "--jwks", jwksFile, "--input", other},
		"another issuer":   {sig, "--jwks", jwksFile, "--issuer", "https://elsewhere.example"},
		"an access token":  {token, "--jwks", tokenKeys},
		"another key":      {foreign, "--jwks", jwksFile},
		"not a JWS":        {"nonsense", "--jwks", jwksFile},
	} {
		code, out, errOut := cli(t, "", append([]string{"decision", "verify"}, c...)...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "verdict decision verify: ") {
			t.Errorf("%s: %d %q %q", name, code, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "", "decision", "verify", sig); code != 2 || !strings.Contains(errOut, "missing --jwks") {
		t.Errorf("without --jwks: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "decision", "verify", sig, "--jwks", filepath.Join(dirOut, "none.json")); code != 2 || !strings.Contains(errOut, "--jwks") {
		t.Errorf("a JWKS that does not read: %d %s", code, errOut)
	}
}

// foreignJWS is a JWS of typ over claims by a key of its own, kid k1, and
// a file holding that key's JWKS.
func foreignJWS(t *testing.T, typ string, claims map[string]any) (jws, jwksFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if jws, err = obj.CompactSerialize(); err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwksFile = filepath.Join(t.TempDir(), "foreign.json")
	writeFile(t, jwksFile, string(set))
	return jws, jwksFile
}
