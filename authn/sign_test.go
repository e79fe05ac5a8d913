package authn

import (
	"context"
	"errors"
	"testing"
)

// TestKeyringSign: Sign makes a compact JWS by the key that signs now,
// with its kid, its alg and the typ asked for, that verifies against the
// ring's own JWKS; before Load nothing is signed.
func TestKeyringSign(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		cfg := DefaultKeyConfig()
		cfg.Alg, cfg.RSABits = alg, 2048
		r, err := NewKeyring(cfg, newMemStore(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Sign("x+jwt", []byte(`{}`)); !errors.Is(err, ErrNotLoaded) {
			t.Fatalf("%s before Load: %v", alg, err)
		}
		if err := r.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		tok, err := r.Sign("verdict-decision+jwt", []byte(`{"iss":"http://x","decision":true}`))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCompact(tok)
		if err != nil {
			t.Fatal(err)
		}
		_, meta, _ := r.Signer()
		if c.Alg != alg || c.KID != meta.KID || !c.HasTyp || c.Typ != "verdict-decision+jwt" || c.Claims["decision"] != true {
			t.Fatalf("%s: header %s %s %q, claims %v", alg, c.Alg, c.KID, c.Typ, c.Claims)
		}
		jwks, _ := r.JWKS()
		if err := c.VerifyJWKS(context.Background(), jwks); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
}
