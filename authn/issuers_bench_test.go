package authn

import (
	"context"
	"testing"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"
)

// BenchmarkExternalKeyLookup compares, on the path of every external token
// the verification cache misses, how the key for a kid is found: Verdict's
// remoteKeys (a pinned key from an immutable map behind an atomic pointer)
// against jwx's jwk.Cache (Lookup of the set, LookupKeyID, then pinning,
// since the cache keeps jwk.Keys, not keys checked against the alg
// allow-list). Both are served by the same JWKS on 127.0.0.1.
//
//	go test ./authn -run '^$' -bench ExternalKeyLookup -benchmem
func BenchmarkExternalKeyLookup(b *testing.B) {
	x := jwttest.NewIssuer(b)
	k := jwttest.GenKey(b, "ES256", "ext-1", true)
	x.Publish(b, k)
	ctx := context.Background()

	b.Run("remoteKeys", func(b *testing.B) {
		e := newEnv(b, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })
		r := e.v.issuers[x.URL()].remote
		if _, err := r.key(ctx, "ext-1"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := r.key(ctx, "ext-1"); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("jwk.Cache", func(b *testing.B) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		c, err := jwk.NewCache(cctx, httprc.NewClient())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Register(cctx, x.JWKSURL()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			set, err := c.Lookup(ctx, x.JWKSURL())
			if err != nil {
				b.Fatal(err)
			}
			key, ok := set.LookupKeyID("ext-1")
			if !ok {
				b.Fatal("kid not found")
			}
			if _, err := pinKey(key, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
