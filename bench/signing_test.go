package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/server"
)

// BenchmarkHandlerSigned is BenchmarkHandlerMetrics's in-memory /v1/decide
// (decisions from the cache) side by side: "unsigned", and asking for a
// signed decision ("options": {"signed": true}) from a key ring of each
// algorithm. The difference is the signature (and the input's canonical
// hash); docs/performance.md has the ratios.
func BenchmarkHandlerSigned(b *testing.B) {
	b.Run("unsigned", func(b *testing.B) { benchSigned(b, "", false) })
	for _, alg := range []string{authn.AlgES256, authn.AlgEdDSA, authn.AlgRS256} {
		b.Run(alg, func(b *testing.B) { benchSigned(b, alg, true) })
	}
}

// benchSigned serves the CEL bundle with a key ring of alg (ES256 when
// empty) signing decisions, and calls its handler on /v1/decide requests
// that ask for signatures when signed.
func benchSigned(b *testing.B, alg string, signed bool) {
	kc := authn.DefaultKeyConfig()
	if alg != "" {
		kc.Alg = alg
	}
	ring, err := authn.NewKeyring(kc, &testutil.MemKeys{}, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := newServerWith(b, celBundle, server.DefaultConfig(), server.WithJWKS(ring), server.WithDecisionSigner(ring, "http://verdict.bench"))
	h := srv.App().Handler()
	ins := inputs(64)
	reqs := make([]*fasthttp.RequestCtx, len(ins))
	for i, in := range ins {
		body := body(in)
		if signed {
			body = append(bytes.TrimSuffix(body, []byte("}")), `,"options":{"signed":true}}`...)
		}
		rc := &fasthttp.RequestCtx{}
		rc.Request.Header.SetMethod(fasthttp.MethodPost)
		rc.Request.SetRequestURI("/v1/decide")
		rc.Request.Header.SetContentType("application/json")
		rc.Request.SetBody(body)
		reqs[i] = rc
		h(rc) // warm the cache
		if got := bytes.Contains(rc.Response.Body(), []byte(`"signature":"`)); got != signed || rc.Response.StatusCode() != 200 {
			b.Fatalf("status %d, signed %v: %s", rc.Response.StatusCode(), got, rc.Response.Body())
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rc := reqs[i%len(reqs)]
		rc.Response.Reset()
		rc.ResetUserValues() // as fasthttp does between requests (bench_test.go, benchHandler)
		h(rc)
		if rc.Response.StatusCode() != 200 {
			b.Fatalf("status %d", rc.Response.StatusCode())
		}
	}
}
