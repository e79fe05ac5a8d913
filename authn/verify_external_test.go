package authn

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestVerifyExternalJWKS(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	k1 := jwttest.GenKey(t, "ES256", "k1", true)
	x.Publish(t, k1)
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })
	ctx := context.Background()

	c := mustVerify(t, e.v, x.Token(t, e.clk.Now(), k1, "ES256", nil))
	if c.Subject() != "bob" || e.rev.calls.Load() != 0 {
		t.Fatalf("claims %v, revocation calls %d", c, e.rev.calls.Load())
	}
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k1, "ES256", func(h, c map[string]any) { c["sub"] = "carol" }))
	if n := x.JWKSHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	// A key published after the fetch: its kid is unknown, and no refetch
	// may start within the refresh interval of the last one...
	k2 := jwttest.GenKey(t, "EdDSA", "k2", true)
	x.Publish(t, k2)
	_, err := e.v.Verify(ctx, x.Token(t, e.clk.Now(), k2, "EdDSA", nil))
	wantInvalid(t, err, `unknown key id "k2"`)
	if n := x.JWKSHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	// ...after it, the unknown kid triggers exactly one refetch.
	e.clk.Advance(time.Minute)
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k2, "EdDSA", nil))
	if n := x.JWKSHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	k3 := jwttest.GenKey(t, "ES256", "k3", true)
	for range 5 {
		_, err := e.v.Verify(ctx, x.Token(t, e.clk.Now(), k3, "ES256", nil))
		wantInvalid(t, err, `unknown key id "k3"`)
	}
	x.Publish(t, k3)
	e.clk.Advance(59 * time.Second)
	_, err = e.v.Verify(ctx, x.Token(t, e.clk.Now(), k3, "ES256", nil))
	wantInvalid(t, err, "unknown key id")
	if n := x.JWKSHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times within the refresh interval, want 2", n)
	}
	e.clk.Advance(time.Second)
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k3, "ES256", nil))
	if n := x.JWKSHits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}

	// A set older than JWKSMaxAge is fetched again (a removed key stops
	// working); known kids inside the interval do not fetch.
	x.EditKeys(func(keys []jwk.Key) []jwk.Key { return keys[1:] }) // k1 removed
	e.clk.Advance(15 * time.Minute)
	_, err = e.v.Verify(ctx, x.Token(t, e.clk.Now(), k1, "ES256", nil))
	wantInvalid(t, err, `unknown key id "k1"`)
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k2, "EdDSA", nil))
	if n := x.JWKSHits.Load(); n != 4 {
		t.Fatalf("JWKS fetched %d times, want 4", n)
	}

	// External tokens follow the same claim rules.
	_, err = e.v.Verify(ctx, x.Token(t, e.clk.Now(), k2, "EdDSA", func(h, c map[string]any) { c["aud"] = selfAud }))
	wantInvalid(t, err, "aud does not name an accepted audience")
}

func TestVerifyExternalKeyPinning(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	noAlg := jwttest.GenKey(t, "ES256", "no-alg", false)
	rsaNoAlg := jwttest.GenKey(t, "RS256", "rsa-no-alg", false)
	dupA := jwttest.GenKey(t, "ES256", "dup", true)
	dupB := jwttest.GenKey(t, "ES256", "dup", true)
	wrongCurve := jwttest.GenKey(t, "ES384", "wrong-curve", false)
	if err := wrongCurve.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		t.Fatal(err)
	}
	encKey := jwttest.GenKey(t, "ES256", "enc", true)
	if err := encKey.Set(jwk.KeyUsageKey, jwk.ForEncryption); err != nil {
		t.Fatal(err)
	}
	for _, k := range []jwk.Key{noAlg, rsaNoAlg, dupA, dupB, wrongCurve, encKey} {
		x.Publish(t, k)
	}
	// An HMAC key in the set is never usable.
	oct, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	_ = oct.Set(jwk.KeyIDKey, "hmac")
	_ = oct.Set(jwk.AlgorithmKey, jwa.HS256())
	x.EditKeys(func(keys []jwk.Key) []jwk.Key { return append(keys, oct) })

	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })
	ctx := context.Background()
	for _, tt := range []struct {
		key    jwk.Key
		alg    string
		reason string
	}{
		{noAlg, "ES256", `unknown key id "no-alg"`}, // no alg, no KeyAlg: unusable
		{dupA, "ES256", `unknown key id "dup"`},     // ambiguous kid
		{wrongCurve, "ES256", `unknown key id "wrong-curve"`},
		{encKey, "ES256", `unknown key id "enc"`},
	} {
		_, err := e.v.Verify(ctx, x.Token(t, e.clk.Now(), tt.key, tt.alg, nil))
		wantInvalid(t, err, tt.reason)
	}
	_, err = e.v.Verify(ctx, jwttest.SignCompact(t, []byte("0123456789abcdef0123456789abcdef"), "HS256",
		jwttest.MustJSON(t, map[string]any{"alg": "HS256", "kid": "hmac"}),
		jwttest.MustJSON(t, map[string]any{"iss": x.URL(), "aud": jwttest.Audience, "exp": e.clk.Now().Unix() + 60})))
	wantInvalid(t, err, `alg "HS256" is not allowed`)

	// With KeyAlg, keys without alg are pinned to it.
	e2 := newEnv(t, AlgES256, func(c *VerifierConfig) {
		is := jwksIssuer(x)
		is.KeyAlg = "RS256"
		c.External = []TrustedIssuer{is}
	})
	mustVerify(t, e2.v, x.Token(t, e2.clk.Now(), rsaNoAlg, "RS256", nil))
	_, err = e2.v.Verify(ctx, x.Token(t, e2.clk.Now(), rsaNoAlg, "PS256", nil))
	wantInvalid(t, err, `alg "PS256" does not match alg RS256 pinned to key`)
	_, err = e2.v.Verify(ctx, x.Token(t, e2.clk.Now(), noAlg, "ES256", nil)) // an EC key cannot be RS256
	wantInvalid(t, err, `unknown key id "no-alg"`)
}

func TestVerifyExternalConcurrentMissesShareOneFetch(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	k := jwttest.GenKey(t, "ES256", "k", true)
	x.Publish(t, k)
	gate := make(chan struct{})
	x.HoldJWKS(gate)
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })

	const n = 32
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = x.Token(t, e.clk.Now(), k, "ES256", func(h, c map[string]any) { c["n"] = i })
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	for x.JWKSHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if got := x.JWKSHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}
}

func TestVerifyExternalUnavailable(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	k := jwttest.GenKey(t, "ES256", "k", true)
	x.Publish(t, k)
	is := jwksIssuer(x)
	is.JWKSURL = x.URL() + "/missing"
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{is} })

	_, err := e.v.Verify(context.Background(), x.Token(t, e.clk.Now(), k, "ES256", nil))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("err = %v, want the fetch error", err)
	}

	// A caller whose context ends while waiting for a fetch gets
	// ErrUnavailable; the fetch itself carries on for the others.
	x2 := jwttest.NewIssuer(t)
	x2.Publish(t, k)
	gate := make(chan struct{})
	x2.HoldJWKS(gate)
	e2 := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x2)} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := e2.v.Verify(ctx, x2.Token(t, e2.clk.Now(), k, "ES256", nil))
		done <- err
	}()
	for x2.JWKSHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	close(gate)
	mustVerify(t, e2.v, x2.Token(t, e2.clk.Now(), k, "ES256", nil))
	if got := x2.JWKSHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}
}

func TestVerifyDiscovery(t *testing.T) {
	checkLeaks(t)
	disco := func(x *jwttest.Issuer) TrustedIssuer {
		return TrustedIssuer{Issuer: x.URL(), Audiences: []string{jwttest.Audience}, DiscoveryURL: x.DiscoveryURL()}
	}
	k := jwttest.GenKey(t, "RS256", "rk", true)

	x := jwttest.NewIssuer(t)
	x.Publish(t, k)
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{disco(x)} })
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k, "RS256", nil))
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), k, "RS256", func(h, c map[string]any) { c["sub"] = "dave" }))
	if d, j := x.DiscoveryHits.Load(), x.JWKSHits.Load(); d != 1 || j != 1 {
		t.Fatalf("discovery fetched %d, JWKS %d times; want 1, 1", d, j)
	}

	for _, tt := range []struct {
		name   string
		edit   func(x *jwttest.Issuer)
		reason string
	}{
		{"issuer mismatch", func(x *jwttest.Issuer) { x.Misdirect("https://someone-else.test", "") }, "discovery document names issuer"},
		{"jwks_uri not https", func(x *jwttest.Issuer) { x.Misdirect("", "http://example.com/jwks") }, "http is allowed only to a loopback host"},
		{"jwks_uri with userinfo", func(x *jwttest.Issuer) { x.Misdirect("", "https://u:p@example.com/jwks") }, "must not carry credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := jwttest.NewIssuer(t)
			x.Publish(t, k)
			tt.edit(x)
			e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{disco(x)} })
			_, err := e.v.Verify(context.Background(), x.Token(t, e.clk.Now(), k, "RS256", nil))
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want ErrUnavailable: %s", err, tt.reason)
			}
			if x.DiscoveryHits.Load() != 1 || x.JWKSHits.Load() != 0 {
				t.Fatalf("discovery %d, JWKS %d fetches", x.DiscoveryHits.Load(), x.JWKSHits.Load())
			}
		})
	}
}

// TestVerifyExternalScopes: with scopes set, an external issuer's tokens
// grant only those (scope or scp, whichever the token uses; the result is
// a scope claim and no scp), a cached verification included; without it,
// everything the token carries.
func TestVerifyExternalScopes(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	k1 := jwttest.GenKey(t, "ES256", "k1", true)
	x.Publish(t, k1)
	limited := jwksIssuer(x)
	limited.Scopes = []string{ScopeDecide, "reports:read"}
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{limited} })
	for _, tc := range []struct {
		name  string
		claim string
		value any
		want  string
	}{
		{"scope", "scope", ScopeAdmin + " " + ScopeDecide + " reports:read " + ScopeBundlesWrite, ScopeDecide + " reports:read"},
		{"scp array", "scp", []any{ScopeAdmin, "reports:read"}, "reports:read"},
		{"scp string", "scp", ScopeAdmin + " " + ScopeDecide, ScopeDecide},
		{"nothing allowed", "scope", ScopeAdmin, ""},
	} {
		tok := x.Token(t, e.clk.Now(), k1, "ES256", func(h, c map[string]any) { c[tc.claim] = tc.value })
		for range 2 { // the second from the cache
			c := mustVerify(t, e.v, tok)
			if got := strings.Join(c.Scopes(), " "); got != tc.want || c["scp"] != nil || HasScope(c.Scopes(), ScopeAdmin) {
				t.Fatalf("%s: scopes %q (claims %v), want %q", tc.name, got, c, tc.want)
			}
		}
	}
	open := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })
	c := mustVerify(t, open.v, x.Token(t, open.clk.Now(), k1, "ES256", func(h, c map[string]any) { c["scope"] = ScopeAdmin + " x" }))
	if got := strings.Join(c.Scopes(), " "); got != ScopeAdmin+" x" {
		t.Fatalf("without scopes: %q", got)
	}
	bad := jwksIssuer(x)
	bad.Scopes = []string{"two words"}
	if err := (VerifierConfig{Self: TrustedIssuer{Issuer: "https://self", Audiences: []string{"a"}, RequireTyp: TypAccessToken}, External: []TrustedIssuer{bad}}).Validate(); err == nil || !strings.Contains(err.Error(), "is no scope") {
		t.Fatalf("a bad scope: %v", err)
	}
}
