package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// VerifyJWS checks sig, a compact JWS such as a signed decision, with
// go-jose (a JOSE library Verdict itself does not use) against the JWKS at
// jwksURL, and returns its protected header's typ and its claims. Any
// failure fails t.
func VerifyJWS(t testing.TB, jwksURL, sig string) (typ string, claims map[string]any) {
	t.Helper()
	if sig == "" {
		t.Fatal("no signature")
	}
	// No keep-alive: the caller's server may be closed with the test.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: %d %s %v", resp.StatusCode, raw, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("jwks %s: %v", raw, err)
	}
	jws, err := jose.ParseSigned(sig, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("go-jose parse %q: %v", sig, err)
	}
	hdr := jws.Signatures[0].Protected
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS %s", hdr.KeyID, len(keys), raw)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("go-jose verify: %v", err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	typ, _ = hdr.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims
}
