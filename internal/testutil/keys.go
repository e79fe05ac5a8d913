package testutil

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// MemKeys is an in-memory authn.KeyStore for a real Keyring in tests. The
// zero value is ready to use.
type MemKeys struct {
	mu sync.Mutex
	m  map[string]authn.Key
}

var _ authn.KeyStore = (*MemKeys)(nil)

// PutKey stores k under its kid.
func (s *MemKeys) PutKey(_ context.Context, k authn.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]authn.Key{}
	}
	s.m[k.KID] = k
	return nil
}

// Keys lists the stored keys in no order.
func (s *MemKeys) Keys(context.Context) ([]authn.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]authn.Key, 0, len(s.m))
	for _, k := range s.m {
		out = append(out, k)
	}
	return out, nil
}

// DeleteKey removes kid; a missing one is no error.
func (s *MemKeys) DeleteKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, kid)
	return nil
}

// Tokens is a token issuer and a verifier of its tokens over one in-memory
// key ring (issuer http://verdict.test, audience verdict, 5-minute
// tokens), checking revocations with revoked. The verifier is closed when
// tb ends.
func Tokens(tb testing.TB, revoked authn.RevocationChecker) (*authn.TokenIssuer, *authn.Verifier) {
	tb.Helper()
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), &MemKeys{}, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	iss, err := authn.NewTokenIssuer(authn.IssuerConfig{Issuer: "http://verdict.test", Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	vc := authn.DefaultVerifierConfig()
	vc.Self = authn.TrustedIssuer{Issuer: "http://verdict.test", Audiences: []string{"verdict"}}
	v, err := authn.NewVerifier(vc, ring, revoked, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return iss, v
}
