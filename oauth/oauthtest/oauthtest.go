// Package oauthtest gives tests a working token issuer and a verifier of
// its tokens without a store. It is imported by tests only.
package oauthtest

import (
	"context"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/oauth"
)

// Tokens is a token issuer and a verifier of its tokens over one in-memory
// key ring (issuer http://verdict.test, audience verdict, 5-minute
// tokens), checking revocations with revoked. The verifier is closed when
// tb ends.
func Tokens(tb testing.TB, revoked authn.RevocationChecker) (*oauth.TokenIssuer, *authn.Verifier) {
	tb.Helper()
	iss, v, _ := TokensAndKeys(tb, revoked)
	return iss, v
}

// Issuer is the iss of the tokens Tokens issues.
const Issuer = "http://verdict.test"

// TokensAndKeys is Tokens, and the key ring both use (which also signs
// decisions and serves the JWKS).
func TokensAndKeys(tb testing.TB, revoked authn.RevocationChecker) (*oauth.TokenIssuer, *authn.Verifier, *authn.Keyring) {
	tb.Helper()
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), &testutil.MemKeys{}, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	iss, err := oauth.NewTokenIssuer(oauth.IssuerConfig{Issuer: Issuer, Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	vc := authn.DefaultVerifierConfig()
	vc.Self = authn.TrustedIssuer{Issuer: Issuer, Audiences: []string{"verdict"}}
	v, err := authn.NewVerifier(vc, ring, revoked, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return iss, v, ring
}
