package authn

import (
	"context"
	"testing"
)

func BenchmarkVerifyCacheHit(b *testing.B) {
	e := newEnv(b, AlgES256, nil)
	tok := e.own(b, nil)
	mustVerify(b, e.v, tok)
	e.v.cache.Wait()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	if n := e.rev.calls.Load(); n != 1 {
		b.Fatalf("revocation store called %d times: not a cache hit", n)
	}
}

func BenchmarkVerifyCacheMiss(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, alg, nil)
			e.v.cache.Close()
			e.v.cache = nil // a nil cache stores nothing: every Verify is a miss
			tok := e.own(b, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestForgetAll: after ForgetAll every cached verification is checked
// against the revocation store again, so that a revocation a replica missed
// the announcement of is seen; fresh verifications are cached again.
