package oauth

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/internal/testutil/jwttest"
)

// The issuer and audience of the tokens the tests issue and verify.
const (
	selfIss = "https://verdict.test"
	selfAud = "verdict"
)

// jtiSeq numbers the jti of hand-built assertions.
var jtiSeq atomic.Int64

// checkLeaks fails tb if goroutines started from now on outlive it. It
// must be called before anything registers a cleanup that stops them.
func checkLeaks(tb testing.TB) {
	opt := goleak.IgnoreCurrent()
	tb.Cleanup(func() { goleak.VerifyNone(tb, opt) })
}

// testConfig is the default key configuration with quick RSA keys.
func testConfig() authn.KeyConfig {
	cfg := authn.DefaultKeyConfig()
	cfg.RSABits = 2048
	return cfg
}

func newMemStore() *testutil.MemKeys { return &testutil.MemKeys{} }

func mustLoad(tb testing.TB, r *authn.Keyring) {
	tb.Helper()
	if err := r.Load(context.Background()); err != nil {
		tb.Fatalf("Load: %v", err)
	}
}

// fakeRevocations is an authn.RevocationChecker over a set of jtis.
type fakeRevocations struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (f *fakeRevocations) Revoked(_ context.Context, jti string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revoked[jti], nil
}

func (f *fakeRevocations) revoke(jti string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked == nil {
		f.revoked = map[string]bool{}
	}
	f.revoked[jti] = true
}

// testEnv is a Verifier of selfIss's tokens over a loaded Keyring, with a
// fake clock.
type testEnv struct {
	clk  *jwttest.Clock
	ring *authn.Keyring
	rev  *fakeRevocations
	v    *authn.Verifier
}

func newEnv(tb testing.TB, alg string) *testEnv {
	tb.Helper()
	clk := jwttest.NewClock()
	kc := testConfig()
	kc.Alg = alg
	ring, err := authn.NewKeyring(kc, newMemStore(), clk.Now)
	if err != nil {
		tb.Fatal(err)
	}
	mustLoad(tb, ring)
	rev := &fakeRevocations{}
	v, err := authn.NewVerifier(authn.VerifierConfig{Self: authn.TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}}}, ring, rev, clk.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return &testEnv{clk: clk, ring: ring, rev: rev, v: v}
}

func mustVerify(tb testing.TB, v *authn.Verifier, token string) authn.Claims {
	tb.Helper()
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return c
}

// unavailable is an error as the Verifier returns when it cannot check.
func unavailable(what string, cause error) error {
	return fmt.Errorf("%w: %s: %w", authn.ErrUnavailable, what, cause)
}

// jwksIssuer trusts x through its JWKS URL.
func jwksIssuer(x *jwttest.Issuer) authn.TrustedIssuer {
	return authn.TrustedIssuer{Issuer: x.URL(), Audiences: []string{jwttest.Audience}, JWKSURL: x.JWKSURL()}
}
