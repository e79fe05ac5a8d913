package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"

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
	for _, alg := range []string{authn.AlgES256, authn.AlgEdDSA, authn.AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := authn.DefaultKeyConfig()
			cfg.Alg = alg
			cfg.RSABits = 2048
			ring, err := authn.NewKeyring(cfg, newMemStore(), time.Now)
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
	for _, alg := range []string{authn.AlgES256, authn.AlgEdDSA, authn.AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			cfg := authn.DefaultKeyConfig()
			cfg.Alg = alg
			cfg.RSABits = 2048
			ring, _ := authn.NewKeyring(cfg, newMemStore(), time.Now)
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

// TestIssuedTokensPassTheVerifier is the round trip the server relies on:
// what the token issuer signs, Verdict's own Verifier accepts, claims and
// all.
func TestIssuedTokensPassTheVerifier(t *testing.T) {
	checkLeaks(t)
	for _, alg := range []string{authn.AlgES256, authn.AlgEdDSA, authn.AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			ti, err := NewTokenIssuer(IssuerConfig{Issuer: selfIss, Audience: selfAud, AccessTokenTTL: 5 * time.Minute}, e.ring, e.clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			at, err := ti.Issue("gw", "alice", []string{"verdict:decide", "read"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := mustVerify(t, e.v, at.Token)
			if c.Subject() != "alice" || c.JTI() != at.JTI || c.Issuer() != selfIss {
				t.Fatalf("claims %v", c)
			}
			if got := c.Scopes(); strings.Join(got, ",") != "verdict:decide,read" {
				t.Fatalf("scopes %q", got)
			}
			if got := c.Audience(); len(got) != 1 || got[0] != selfAud {
				t.Fatalf("aud %q", got)
			}
			if !c.Expiry().Equal(at.ExpiresAt) {
				t.Fatalf("expiry %v, want %v", c.Expiry(), at.ExpiresAt)
			}
			// Revoked, it is refused at once.
			e.rev.revoke(at.JTI)
			e.v.ForgetJTI(at.JTI)
			if _, err := e.v.Verify(context.Background(), at.Token); !errors.Is(err, authn.ErrInvalidToken) {
				t.Fatalf("revoked token: err = %v, want ErrInvalidToken", err)
			}
		})
	}
}
