// Package jwttest builds JWTs and serves the documents of an external
// issuer for the tests of the token verifier (authn) and the authorization
// server (oauth). It imports neither, so both can use it from their own
// package's tests. It is imported by tests only.
package jwttest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// Audience is an aud value the tokens of an Issuer carry (beside "other").
const Audience = "verdict-api"

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at 2026-03-01T12:00:00Z.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// B64 is unpadded base64url.
func B64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// MustJSON marshals v or fails tb.
func MustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SignCompact builds a compact JWS from the exact header and payload
// bytes, signed with priv (a private jwk.Key or an HMAC secret) under alg.
func SignCompact(tb testing.TB, priv any, alg string, hdr, payload []byte) string {
	tb.Helper()
	in := B64(hdr) + "." + B64(payload)
	raw := priv
	if k, ok := priv.(jwk.Key); ok {
		if err := jwk.Export(k, &raw); err != nil {
			tb.Fatal(err)
		}
	}
	sig, err := jwsbb.Sign(raw, alg, []byte(in), nil)
	if err != nil {
		tb.Fatalf("sign %s: %v", alg, err)
	}
	return in + "." + B64(sig)
}

// GenKey makes a private signing key for alg with kid and use "sig"; the
// alg is set on the key only if withAlg.
func GenKey(tb testing.TB, alg, kid string, withAlg bool) jwk.Key {
	tb.Helper()
	var raw any
	var err error
	switch alg {
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case "RS256", "PS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("GenKey: no key type for alg %q", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		tb.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(k.Set(jwk.KeyIDKey, kid))
	must(k.Set(jwk.KeyUsageKey, jwk.ForSignature))
	if withAlg {
		sa, _ := jwa.LookupSignatureAlgorithm(alg)
		must(k.Set(jwk.AlgorithmKey, sa))
	}
	return k
}

// Issuer is an external issuer served by a real HTTP server on 127.0.0.1:
// a JWKS at /jwks and an OpenID discovery document, each counting its
// requests.
type Issuer struct {
	// JWKSHits and DiscoveryHits count the requests for each document.
	JWKSHits, DiscoveryHits atomic.Int64

	srv       *httptest.Server
	mu        sync.Mutex
	keys      []jwk.Key
	discoIss  string        // issuer named by discovery ("" = the real one)
	discoJWKS string        // jwks_uri named by discovery ("" = the real one)
	gate      chan struct{} // if set, /jwks waits for it
}

// NewIssuer starts an Issuer; tb's cleanup stops it.
func NewIssuer(tb testing.TB) *Issuer {
	x := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		x.JWKSHits.Add(1)
		x.mu.Lock()
		gate := x.gate
		x.mu.Unlock()
		if gate != nil {
			<-gate
		}
		x.mu.Lock()
		body := MustJSON(tb, map[string]any{"keys": x.keys})
		x.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		x.DiscoveryHits.Add(1)
		x.mu.Lock()
		iss, uri := x.discoIss, x.discoJWKS
		x.mu.Unlock()
		if iss == "" {
			iss = x.srv.URL
		}
		if uri == "" {
			uri = x.JWKSURL()
		}
		_, _ = w.Write(MustJSON(tb, map[string]any{"issuer": iss, "jwks_uri": uri}))
	})
	x.srv = httptest.NewServer(mux)
	tb.Cleanup(x.srv.Close)
	return x
}

// URL is the issuer (its iss claim) and the server's base URL.
func (x *Issuer) URL() string { return x.srv.URL }

// JWKSURL is where its JWKS is served.
func (x *Issuer) JWKSURL() string { return x.srv.URL + "/jwks" }

// DiscoveryURL is where its OpenID discovery document is served.
func (x *Issuer) DiscoveryURL() string { return x.srv.URL + "/.well-known/openid-configuration" }

// Publish adds priv's public key to the JWKS.
func (x *Issuer) Publish(tb testing.TB, priv jwk.Key) {
	tb.Helper()
	pub, err := priv.PublicKey()
	if err != nil {
		tb.Fatal(err)
	}
	x.EditKeys(func(keys []jwk.Key) []jwk.Key { return append(keys, pub) })
}

// EditKeys replaces the published keys with edit's result.
func (x *Issuer) EditKeys(edit func([]jwk.Key) []jwk.Key) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.keys = edit(x.keys)
}

// HoldJWKS makes /jwks wait until gate is closed (nil: answer at once).
func (x *Issuer) HoldJWKS(gate chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gate = gate
}

// Misdirect makes the discovery document name iss as the issuer and
// jwksURI as the jwks_uri ("" keeps the real one).
func (x *Issuer) Misdirect(iss, jwksURI string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.discoIss, x.discoJWKS = iss, jwksURI
}

// Token returns a token of this issuer signed by priv under alg, issued at
// now: typ JWT, sub "bob", aud ["other", Audience], a five-minute lifetime;
// edit may change header and claims before signing.
func (x *Issuer) Token(tb testing.TB, now time.Time, priv jwk.Key, alg string, edit func(h, c map[string]any)) string {
	tb.Helper()
	kid, _ := priv.KeyID()
	h := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
	c := map[string]any{"iss": x.URL(), "sub": "bob", "aud": []string{"other", Audience}, "exp": now.Unix() + 300, "iat": now.Unix()}
	if edit != nil {
		edit(h, c)
	}
	return SignCompact(tb, priv, alg, MustJSON(tb, h), MustJSON(tb, c))
}
