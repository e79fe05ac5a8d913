package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// publicFromJWKS decodes the JWKS by hand (no jwx) into crypto public keys,
// so that the token check below owes nothing to the library that signed.
func publicFromJWKS(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	b := func(s string) []byte {
		v, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	out := map[string]any{}
	for _, k := range set.Keys {
		switch k["kty"] {
		case "EC":
			out[k["kid"]] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(b(k["x"])), Y: new(big.Int).SetBytes(b(k["y"]))}
		case "OKP":
			out[k["kid"]] = ed25519.PublicKey(b(k["x"]))
		case "RSA":
			out[k["kid"]] = &rsa.PublicKey{N: new(big.Int).SetBytes(b(k["n"])), E: int(new(big.Int).SetBytes(b(k["e"])).Int64())}
		}
	}
	return out
}

func TestIssuedTokensVerifyWithAnIndependentLibrary(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := DefaultKeyConfig()
			cfg.Alg = alg
			cfg.RSABits = 2048
			ring, err := NewKeyring(cfg, newMemStore(), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if err := ring.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			iss, err := NewTokenIssuer(IssuerConfig{Issuer: "https://verdict.test", Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			at, err := iss.Issue("gw", "gw", []string{"verdict:decide", "read"}, map[string]any{"sub": "forged", "tenant": "t1"})
			if err != nil {
				t.Fatal(err)
			}
			jwks, err := ring.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			keys := publicFromJWKS(t, jwks)
			var kid string
			tok, err := gojwt.Parse(at.Token, func(tk *gojwt.Token) (any, error) {
				kid, _ = tk.Header["kid"].(string)
				return keys[kid], nil
			}, gojwt.WithValidMethods([]string{"ES256", "EdDSA", "RS256"}), gojwt.WithIssuer("https://verdict.test"),
				gojwt.WithAudience("verdict"), gojwt.WithExpirationRequired(), gojwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("golang-jwt rejects the token: %v", err)
			}
			if tok.Header["typ"] != "at+jwt" || tok.Header["alg"] != alg || kid == "" {
				t.Fatalf("header: %v", tok.Header)
			}
			c := tok.Claims.(gojwt.MapClaims)
			if c["sub"] != "gw" || c["client_id"] != "gw" || c["scope"] != "verdict:decide read" || c["jti"] != at.JTI || c["tenant"] != "t1" {
				t.Fatalf("claims: %v", c)
			}
			exp, _ := c.GetExpirationTime()
			iat, _ := c.GetIssuedAt()
			if exp.Sub(iat.Time) != 5*time.Minute {
				t.Fatalf("lifetime %v", exp.Sub(iat.Time))
			}
		})
	}
}

func TestIssuerConfigValidate(t *testing.T) {
	if err := (IssuerConfig{Issuer: "verdict", AccessTokenTTL: 0}).Validate(); err == nil {
		t.Fatal("want errors for a non-URL issuer, no audience and no lifetime")
	}
}

func BenchmarkIssue(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			cfg := DefaultKeyConfig()
			cfg.Alg = alg
			cfg.RSABits = 2048
			ring, _ := NewKeyring(cfg, newMemStore(), time.Now)
			if err := ring.Load(context.Background()); err != nil {
				b.Fatal(err)
			}
			iss, _ := NewTokenIssuer(IssuerConfig{Issuer: "https://verdict.test", Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := iss.Issue("gw", "gw", []string{"verdict:decide"}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
