package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"go.uber.org/goleak"
)

const (
	selfIss = "https://verdict.test"
	selfAud = "verdict"
)

// fakeRevocations is a RevocationChecker that counts its calls.
type fakeRevocations struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	calls   atomic.Int64
}

func (f *fakeRevocations) Revoked(_ context.Context, jti string) (bool, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
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

func (f *fakeRevocations) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

var _ RevocationChecker = (*fakeRevocations)(nil)

// testEnv is a Verifier over a loaded Keyring, with a fake clock.
type testEnv struct {
	clk  *jwttest.Clock
	ring *Keyring
	rev  *fakeRevocations
	v    *Verifier
}

// checkLeaks fails tb if goroutines started from now on outlive it. It
// must be called before anything registers a cleanup that stops them.
func checkLeaks(tb testing.TB) {
	opt := goleak.IgnoreCurrent()
	tb.Cleanup(func() { goleak.VerifyNone(tb, opt) })
}

func newEnv(tb testing.TB, alg string, edit func(*VerifierConfig)) *testEnv {
	tb.Helper()
	clk := jwttest.NewClock()
	kc := testConfig()
	kc.Alg = alg
	ring, err := NewKeyring(kc, newMemStore(), clk.Now)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	cfg := VerifierConfig{Self: TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}}}
	if edit != nil {
		edit(&cfg)
	}
	rev := &fakeRevocations{}
	v, err := NewVerifier(cfg, ring, rev, clk.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return &testEnv{clk: clk, ring: ring, rev: rev, v: v}
}

var jtiSeq atomic.Int64

// ownParts returns the header and claims of a valid Verdict token.
func (e *testEnv) ownParts(tb testing.TB) (jwk.Key, map[string]any, map[string]any) {
	tb.Helper()
	priv, meta, err := e.ring.Signer()
	if err != nil {
		tb.Fatal(err)
	}
	now := e.clk.Now().Unix()
	h := map[string]any{"alg": meta.Alg, "kid": meta.KID, "typ": "at+jwt"}
	c := map[string]any{
		"iss": selfIss, "sub": "alice", "aud": selfAud, "exp": now + 300, "iat": now, "nbf": now,
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1)), "scope": "read write", "client_id": "gw",
	}
	return priv, h, c
}

// own returns a Verdict token, valid unless edit changes header or claims.
// It is signed with the ring's signing key under the key's own alg.
func (e *testEnv) own(tb testing.TB, edit func(h, c map[string]any)) string {
	tb.Helper()
	priv, h, c := e.ownParts(tb)
	alg := h["alg"].(string)
	if edit != nil {
		edit(h, c)
	}
	return jwttest.SignCompact(tb, priv, alg, jwttest.MustJSON(tb, h), jwttest.MustJSON(tb, c))
}

// jwksIssuer trusts x through its JWKS URL.
func jwksIssuer(x *jwttest.Issuer) TrustedIssuer {
	return TrustedIssuer{Issuer: x.URL(), Audiences: []string{jwttest.Audience}, JWKSURL: x.JWKSURL()}
}

// counter is an HTTP server that only counts requests: tokens point their
// jku and x5u at it.
func newCounter(tb testing.TB) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

func mustVerify(tb testing.TB, v *Verifier, token string) Claims {
	tb.Helper()
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return c
}

func wantInvalid(tb testing.TB, err error, reason string) {
	tb.Helper()
	if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
		tb.Fatalf("err = %v, want ErrInvalidToken", err)
	}
	if !strings.Contains(err.Error(), reason) {
		tb.Fatalf("err = %q, want reason %q", err, reason)
	}
}

func TestVerifyOwnTokens(t *testing.T) {
	checkLeaks(t)
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg, nil)
			// A token as the token service issues it (oauth tests the
			// issuer's own tokens against this Verifier).
			var jti string
			c := mustVerify(t, e.v, e.own(t, func(h, c map[string]any) { jti = c["jti"].(string) }))
			if c.Subject() != "alice" || c.JTI() != jti || c.Issuer() != selfIss {
				t.Fatalf("claims %v", c)
			}
			if got := c.Scopes(); strings.Join(got, ",") != "read,write" {
				t.Fatalf("scopes %q", got)
			}
			if got := c.Audience(); len(got) != 1 || got[0] != selfAud {
				t.Fatalf("aud %q", got)
			}
			if _, ok := c["exp"].(int64); !ok {
				t.Fatalf("exp is %T, want int64", c["exp"])
			}
			// "application/at+jwt" as typ, in any case.
			mustVerify(t, e.v, e.own(t, func(h, c map[string]any) { h["typ"] = "application/AT+JWT" }))
		})
	}
}

func TestClaimsAccessors(t *testing.T) {
	c := Claims{"scp": []any{"a", "b", 3}, "aud": []any{"x", "y"}, "exp": 1.5}
	if got := strings.Join(c.Scopes(), ","); got != "a,b" {
		t.Fatalf("scp scopes %q", got)
	}
	if got := strings.Join(Claims{"scp": "a b"}.Scopes(), ","); got != "a,b" {
		t.Fatalf("scp string scopes %q", got)
	}
	if got := strings.Join(c.Audience(), ","); got != "x,y" {
		t.Fatalf("aud %q", got)
	}
	if got := c.Expiry(); !got.Equal(time.Unix(1, 5e8)) {
		t.Fatalf("expiry %v", got)
	}
	var none Claims
	if none.Subject() != "" || none.Scopes() != nil || !none.Expiry().IsZero() {
		t.Fatal("nil claims not empty")
	}
}

// TestVerifyRejects has one case per rejection the issue lists (and a few
// more). Each asserts the specific reason, so it fails if that check is
// removed even when a later check would also have caught the token.
func TestVerifyRejects(t *testing.T) {
	checkLeaks(t)
	counter, counted := newCounter(t)
	x := jwttest.NewIssuer(t)
	rsaKey := jwttest.GenKey(t, "RS256", "rsa-1", true)
	x.Publish(t, rsaKey)
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })
	now := e.clk.Now().Unix()
	skew := int64(30)
	attacker := jwttest.GenKey(t, "ES256", "attacker", true)
	attackerPub, _ := attacker.PublicKey()

	// Sanity: the unedited tokens verify.
	mustVerify(t, e.v, e.own(t, nil))
	mustVerify(t, e.v, x.Token(t, e.clk.Now(), rsaKey, "RS256", nil))

	own := func(edit func(h, c map[string]any)) func(t *testing.T) string {
		return func(t *testing.T) string { return e.own(t, edit) }
	}
	// raw builds a token from exact header and payload text, signed by
	// the ring's key under its own alg.
	raw := func(hdr, payload func(kid string) string) func(t *testing.T) string {
		return func(t *testing.T) string {
			priv, meta, _ := e.ring.Signer()
			return jwttest.SignCompact(t, priv, meta.Alg, []byte(hdr(meta.KID)), []byte(payload(meta.KID)))
		}
	}
	validPayload := func(string) string {
		return fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"jti":"j1"}`, selfIss, selfAud, now+300)
	}
	revokedJTI := "revoked-jti"
	e.rev.revoke(revokedJTI)

	tests := []struct {
		name   string
		token  func(t *testing.T) string
		reason string
	}{
		{"alg none", own(func(h, c map[string]any) { h["alg"] = "none" }), `alg "none" is not allowed`},
		{"alg None", own(func(h, c map[string]any) { h["alg"] = "None" }), `alg "none" is not allowed`},
		{"alg none without signature", func(t *testing.T) string {
			tok := e.own(t, func(h, c map[string]any) { h["alg"] = "none" })
			return tok[:strings.LastIndexByte(tok, '.')+1]
		}, "missing signature"},
		{"alg missing", own(func(h, c map[string]any) { delete(h, "alg") }), "alg header missing"},
		{"alg not a string", own(func(h, c map[string]any) { h["alg"] = 1 }), "alg header is not a string"},
		{"HS256 signed with the public key", func(t *testing.T) string {
			_, h, c := e.ownParts(t)
			pub, _ := e.ring.PublicKey(h["kid"].(string))
			secret := jwttest.MustJSON(t, pub) // the public JWK as the HMAC secret
			h["alg"] = "HS256"
			return jwttest.SignCompact(t, secret, "HS256", jwttest.MustJSON(t, h), jwttest.MustJSON(t, c))
		}, `alg "HS256" is not allowed`},
		{"alg not allowed", own(func(h, c map[string]any) { h["alg"] = "ES512" }), `alg "ES512" is not allowed`},
		{"alg not pinned to own key", own(func(h, c map[string]any) { h["alg"] = "RS256" }), `alg "RS256" does not match alg ES256 pinned to key`},
		{"PS256 with a key pinned to RS256 (valid signature)", func(t *testing.T) string {
			// The RSA key would verify this PS256 signature; only the pin stops it.
			return x.Token(t, e.clk.Now(), rsaKey, "PS256", nil)
		}, `alg "PS256" does not match alg RS256 pinned to key`},
		{"unknown kid", own(func(h, c map[string]any) { h["kid"] = "no-such-key" }), "unknown key id"},
		{"kid path traversal", own(func(h, c map[string]any) { h["kid"] = "../../etc/passwd" }), "kid looks like a path"},
		{"kid with slash", own(func(h, c map[string]any) { h["kid"] = "keys/1" }), "kid looks like a path"},
		{"kid with backslash", own(func(h, c map[string]any) { h["kid"] = `keys\1` }), "kid looks like a path"},
		{"kid with dotdot", own(func(h, c map[string]any) { h["kid"] = "a..b" }), "kid looks like a path"},
		{"kid with NUL", own(func(h, c map[string]any) { h["kid"] = "a\x00b" }), "kid has a non-printable character"},
		{"kid with newline", own(func(h, c map[string]any) { h["kid"] = "a\nb" }), "kid has a non-printable character"},
		{"kid non-ASCII", own(func(h, c map[string]any) { h["kid"] = "kéy" }), "kid has a non-printable character"},
		{"kid too long", own(func(h, c map[string]any) { h["kid"] = strings.Repeat("k", 257) }), "kid is longer than 256 bytes"},
		{"kid empty", own(func(h, c map[string]any) { h["kid"] = "" }), "kid is empty"},
		{"kid missing", own(func(h, c map[string]any) { delete(h, "kid") }), "kid header missing"},
		{"jku header", func(t *testing.T) string {
			return jwttest.SignCompact(t, attacker, "ES256", jwttest.MustJSON(t, map[string]any{
				"alg": "ES256", "kid": "attacker", "typ": "at+jwt", "jku": counter.URL + "/jwks",
			}), []byte(validPayload("")))
		}, "jku header is not accepted"},
		{"x5u header", func(t *testing.T) string {
			return jwttest.SignCompact(t, attacker, "ES256", jwttest.MustJSON(t, map[string]any{
				"alg": "ES256", "kid": "attacker", "typ": "at+jwt", "x5u": counter.URL + "/cert.pem",
			}), []byte(validPayload("")))
		}, "x5u header is not accepted"},
		{"x5c header", own(func(h, c map[string]any) { h["x5c"] = []string{"MIIB"} }), "x5c header is not accepted"},
		{"embedded jwk header", func(t *testing.T) string {
			return jwttest.SignCompact(t, attacker, "ES256", jwttest.MustJSON(t, map[string]any{
				"alg": "ES256", "kid": "attacker", "typ": "at+jwt", "jwk": attackerPub,
			}), []byte(validPayload("")))
		}, "jwk header is not accepted"},
		{"expired", own(func(h, c map[string]any) { c["exp"] = now - skew - 1 }), "token expired"},
		{"nbf in the future", own(func(h, c map[string]any) { c["nbf"] = now + skew + 1 }), "nbf claim is in the future"},
		{"iat in the future", own(func(h, c map[string]any) { c["iat"] = now + skew + 1 }), "iat claim is in the future"},
		{"exp missing", own(func(h, c map[string]any) { delete(c, "exp") }), "exp claim missing"},
		{"exp zero", own(func(h, c map[string]any) { c["exp"] = 0 }), "exp claim is zero"},
		{"exp not a number", own(func(h, c map[string]any) { c["exp"] = fmt.Sprint(now + 300) }), "exp claim is not a valid NumericDate"},
		{"exp negative", own(func(h, c map[string]any) { c["exp"] = -1 }), "exp claim is not a valid NumericDate"},
		{"nbf not a number", own(func(h, c map[string]any) { c["nbf"] = true }), "nbf claim is not a valid NumericDate"},
		{"wrong iss", own(func(h, c map[string]any) { c["iss"] = "https://evil.test" }), `untrusted issuer "https://evil.test"`},
		{"iss with trailing slash", own(func(h, c map[string]any) { c["iss"] = selfIss + "/" }), "untrusted issuer"},
		{"iss missing", own(func(h, c map[string]any) { delete(c, "iss") }), "iss claim missing"},
		{"own token with external iss", own(func(h, c map[string]any) { c["iss"] = x.URL() }), "unknown key id"},
		{"wrong aud", own(func(h, c map[string]any) { c["aud"] = "someone-else" }), "aud does not name an accepted audience"},
		{"wrong aud list", own(func(h, c map[string]any) { c["aud"] = []string{"a", "b"} }), "aud does not name an accepted audience"},
		{"external audience on own token", own(func(h, c map[string]any) { c["aud"] = jwttest.Audience }), "aud does not name an accepted audience"},
		{"aud missing", own(func(h, c map[string]any) { delete(c, "aud") }), "aud claim missing"},
		{"typ JWT on own token", own(func(h, c map[string]any) { h["typ"] = "JWT" }), `typ "JWT" is not at+jwt`},
		{"typ missing on own token", own(func(h, c map[string]any) { delete(h, "typ") }), "typ header missing"},
		{"typ not a string", own(func(h, c map[string]any) { h["typ"] = 7 }), "typ header is not a string"},
		{"unknown crit", own(func(h, c map[string]any) { h["crit"] = []string{"urn:x"}; h["urn:x"] = 1 }), "crit header is not accepted"},
		{"b64 header", own(func(h, c map[string]any) { h["b64"] = false }), "b64 header is not accepted"},
		{"nested JWT", own(func(h, c map[string]any) { h["cty"] = "JWT" }), "nested JWT is not accepted"},
		{"other cty", own(func(h, c map[string]any) { h["cty"] = "json" }), "cty header is not accepted"},
		{"JWE (5 parts)", func(t *testing.T) string {
			return jwttest.B64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a2V5.aXY.Y2lwaGVy.dGFn"
		}, "JWE is not accepted"},
		{"enc header in 3 parts", own(func(h, c map[string]any) { h["enc"] = "A256GCM" }), "JWE is not accepted"},
		{"JSON serialization", func(t *testing.T) string {
			priv, h, c := e.ownParts(t)
			sa, _ := jwa.LookupSignatureAlgorithm(h["alg"].(string))
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.TypeKey, "at+jwt")
			b, err := jws.Sign(jwttest.MustJSON(t, c), jws.WithJSON(), jws.WithKey(sa, priv, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}, "JSON serialization is not accepted"},
		{"over 8 KiB", func(t *testing.T) string { return strings.Repeat("a", 8193) }, "token is 8193 bytes, over the 8192-byte limit"},
		{"over 8 KiB and well signed", own(func(h, c map[string]any) { c["pad"] = strings.Repeat("p", 8<<10) }), "over the 8192-byte limit"},
		{"revoked jti", own(func(h, c map[string]any) { c["jti"] = revokedJTI }), "token revoked"},
		{"jti missing on own token", own(func(h, c map[string]any) { delete(c, "jti") }), "jti claim missing"},
		{"jti not a string", own(func(h, c map[string]any) { c["jti"] = 5 }), "jti claim is not a string"},
		{"sub not a string", own(func(h, c map[string]any) { c["sub"] = []string{"a"} }), "sub claim is not a string"},
		{"bad signature", func(t *testing.T) string {
			tok := e.own(t, nil)
			other := e.own(t, nil)
			return tok[:strings.LastIndexByte(tok, '.')] + other[strings.LastIndexByte(other, '.'):]
		}, "signature verification failed"},
		{"signed by another key with the same kid", func(t *testing.T) string {
			_, h, c := e.ownParts(t)
			return jwttest.SignCompact(t, attacker, "ES256", jwttest.MustJSON(t, h), jwttest.MustJSON(t, c))
		}, "signature verification failed"},
		{"duplicate header member", raw(func(kid string) string {
			return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt","alg":"ES256"}`, kid)
		}, validPayload), `duplicate member "alg"`},
		{"duplicate claim", raw(func(kid string) string {
			return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, kid)
		}, func(string) string {
			return fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"jti":"j1","sub":"a","sub":"admin"}`, selfIss, selfAud, now+300)
		}), `duplicate member "sub"`},
		{"header not an object", raw(func(string) string { return `["ES256"]` }, validPayload), "must be a JSON object"},
		{"payload not an object", raw(func(kid string) string {
			return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, kid)
		}, func(string) string { return `"eyJhbGciOi.nested.jwt"` }), "must be a JSON object"},
		{"trailing data after payload", raw(func(kid string) string {
			return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, kid)
		}, func(k string) string { return validPayload(k) + `{}` }), "data after the top-level value"},
		{"invalid UTF-8 in payload", raw(func(kid string) string {
			return fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, kid)
		}, func(string) string {
			return fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"jti":"j1","sub":"a`+"\xff"+`b"}`, selfIss, selfAud, now+300)
		}), "invalid UTF-8"},
		{"newline inside token", func(t *testing.T) string {
			tok := e.own(t, nil)
			return tok[:10] + "\n" + tok[10:]
		}, "not base64url"},
		{"padding", func(t *testing.T) string { return e.own(t, nil) + "==" }, "not base64url"},
		{"two parts", func(t *testing.T) string {
			tok := e.own(t, nil)
			return tok[:strings.LastIndexByte(tok, '.')]
		}, "not three dot-separated parts"},
		{"empty", func(t *testing.T) string { return "" }, "empty token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token(t)
			c, err := e.v.Verify(context.Background(), tok)
			if c != nil {
				t.Fatalf("claims returned with a rejection: %v", c)
			}
			wantInvalid(t, err, tt.reason)
			if len(tok) > 16 && strings.Contains(err.Error(), tok[:16]) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
	if n := counted.Load(); n != 0 {
		t.Fatalf("a URL from a token was fetched %d times", n)
	}
}

func TestVerifyClockSkewBoundaries(t *testing.T) {
	checkLeaks(t)
	for _, skew := range []time.Duration{0, 5 * time.Second} { // 0 means the 30s default
		want := skew
		if want == 0 {
			want = 30 * time.Second
		}
		t.Run(want.String(), func(t *testing.T) {
			e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.ClockSkew = skew })
			now := e.clk.Now().Unix()
			s := int64(want / time.Second)
			tests := []struct {
				claim string
				value int64
				ok    bool
			}{
				{"exp", now - s, false},
				{"exp", now - s + 1, true},
				{"exp", now, s > 0},
				{"nbf", now + s, true},
				{"nbf", now + s + 1, false},
				{"iat", now + s, true},
				{"iat", now + s + 1, false},
			}
			for _, tt := range tests {
				tok := e.own(t, func(h, c map[string]any) { c[tt.claim] = tt.value })
				_, err := e.v.Verify(context.Background(), tok)
				if (err == nil) != tt.ok {
					t.Errorf("%s = now%+ds: err = %v, want ok=%v", tt.claim, tt.value-now, err, tt.ok)
				}
			}
			// A cached token is no longer served once the clock passes its exp.
			tok := e.own(t, func(h, c map[string]any) { c["exp"] = now + 10 })
			mustVerify(t, e.v, tok)
			e.v.cache.Wait()
			e.clk.Advance(10*time.Second + want)
			_, err := e.v.Verify(context.Background(), tok)
			wantInvalid(t, err, "token expired")
		})
	}
}

func TestVerifyCacheAndRevocation(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	ctx := context.Background()
	var jti string
	tok := e.own(t, func(h, c map[string]any) { jti = c["jti"].(string) })

	mustVerify(t, e.v, tok)
	e.v.cache.Wait()
	for range 3 {
		mustVerify(t, e.v, tok)
	}
	if n := e.rev.calls.Load(); n != 1 {
		t.Fatalf("revocation store called %d times, want 1 (then cache hits)", n)
	}

	// Revoked in the store only: the cache still answers (by design)...
	e.rev.revoke(jti)
	mustVerify(t, e.v, tok)
	// ...until ForgetJTI, which takes effect at once without the store.
	e.v.ForgetJTI(jti)
	_, err := e.v.Verify(ctx, tok)
	wantInvalid(t, err, "token revoked")
	if n := e.rev.calls.Load(); n != 1 {
		t.Fatalf("revocation store called %d times, want 1", n)
	}

	// ForgetJTI alone (store not yet updated, e.g. a lagging replica) also
	// rejects a token that was never cached.
	var jti2 string
	tok2 := e.own(t, func(h, c map[string]any) { jti2 = c["jti"].(string) })
	e.v.ForgetJTI(jti2)
	_, err = e.v.Verify(ctx, tok2)
	wantInvalid(t, err, "token revoked")

	// Forget(token) drops one cached verification: the next Verify asks
	// the store again, and the fresh result is cached again.
	tok3 := e.own(t, nil)
	mustVerify(t, e.v, tok3)
	e.v.cache.Wait()
	before := e.rev.calls.Load()
	e.v.Forget(tok3)
	mustVerify(t, e.v, tok3)
	e.v.cache.Wait()
	mustVerify(t, e.v, tok3)
	if n := e.rev.calls.Load() - before; n != 1 {
		t.Fatalf("after Forget the store was called %d times, want 1", n)
	}

	// An entry lives at most CacheTTL.
	before = e.rev.calls.Load()
	e.clk.Advance(60 * time.Second)
	mustVerify(t, e.v, tok3)
	if n := e.rev.calls.Load() - before; n != 1 {
		t.Fatalf("after CacheTTL the store was called %d times, want 1", n)
	}
}

// TestRevokedKeyStopsCachedTokens: an emergency key revoke rejects the
// key's tokens at once, even those whose verification is cached.
func TestRevokedKeyStopsCachedTokens(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	ctx := context.Background()
	tok := e.own(t, nil)
	mustVerify(t, e.v, tok)
	e.v.cache.Wait()
	mustVerify(t, e.v, tok) // a cache hit
	_, meta, err := e.ring.Signer()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ring.Revoke(ctx, meta.KID); err != nil {
		t.Fatal(err)
	}
	_, err = e.v.Verify(ctx, tok)
	wantInvalid(t, err, "unknown key id")
}

// TestForgetJTIDuringRevocationCheck: the store answers "not revoked"
// just before the revocation lands; ForgetJTI still wins, for this call
// and the next (nothing was cached).
func TestForgetJTIDuringRevocationCheck(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	var jti string
	tok := e.own(t, func(h, c map[string]any) { jti = c["jti"].(string) })
	e.v.revoked = revokeDuring{e.rev, func() { e.v.ForgetJTI(jti) }}
	_, err := e.v.Verify(context.Background(), tok)
	wantInvalid(t, err, "token revoked")
	e.v.cache.Wait()
	e.v.revoked = e.rev
	_, err = e.v.Verify(context.Background(), tok)
	wantInvalid(t, err, "token revoked")
}

// revokeDuring runs f after answering from inner.
type revokeDuring struct {
	inner RevocationChecker
	f     func()
}

func (r revokeDuring) Revoked(ctx context.Context, jti string) (bool, error) {
	ok, err := r.inner.Revoked(ctx, jti)
	r.f()
	return ok, err
}

func TestVerifyRevocationStoreError(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	tok := e.own(t, nil)
	e.rev.fail(errors.New("redis: connection refused"))
	c, err := e.v.Verify(context.Background(), tok)
	if c != nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify = %v, %v; want ErrUnavailable", c, err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the cause", err)
	}
	// Nothing was cached: once the store answers, it is asked.
	e.v.cache.Wait()
	e.rev.fail(nil)
	mustVerify(t, e.v, tok)
	if n := e.rev.calls.Load(); n != 2 {
		t.Fatalf("store called %d times, want 2", n)
	}
}

func TestVerifyAfterClose(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	tok := e.own(t, nil)
	e.v.Close()
	e.v.Close()
	if _, err := e.v.Verify(context.Background(), tok); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	checkLeaks(t)
	x := jwttest.NewIssuer(t)
	k := jwttest.GenKey(t, "ES256", "k", true)
	x.Publish(t, k)
	e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{jwksIssuer(x)} })

	type item struct {
		tok string
		jti string
		ok  bool
	}
	var items []item
	for range 8 {
		var jti string
		items = append(items, item{tok: e.own(t, func(h, c map[string]any) { jti = c["jti"].(string) }), jti: jti, ok: true})
	}
	for i := range 4 {
		items = append(items, item{tok: x.Token(t, e.clk.Now(), k, "ES256", func(h, c map[string]any) { c["i"] = i }), ok: true})
	}
	items = append(items,
		item{tok: e.own(t, func(h, c map[string]any) { h["alg"] = "none" })},
		item{tok: e.own(t, func(h, c map[string]any) { c["aud"] = "x" })},
		item{tok: x.Token(t, e.clk.Now(), k, "ES256", func(h, c map[string]any) { h["jku"] = x.URL() })},
	)
	revoked := items[0]

	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				it := items[(g+i)%len(items)]
				if g == 0 && i == 100 {
					e.v.ForgetJTI(revoked.jti)
				}
				_, err := e.v.Verify(context.Background(), it.tok)
				if it.jti == revoked.jti && err != nil {
					continue // revoked part-way through
				}
				if (err == nil) != it.ok {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d wrong answers", n)
	}
	if _, err := e.v.Verify(context.Background(), revoked.tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestVerifierConfigValidate(t *testing.T) {
	ok := func() VerifierConfig {
		return VerifierConfig{
			Self: TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}},
			External: []TrustedIssuer{
				{Issuer: "https://idp.test", Audiences: []string{"a"}, JWKSURL: "https://idp.test/jwks"},
				{Issuer: "https://dev.test", Audiences: []string{"a"}, DiscoveryURL: "http://127.0.0.1:8080/.well-known/openid-configuration", KeyAlg: "RS256"},
			},
		}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name string
		edit func(c *VerifierConfig)
		want string
	}{
		{"self issuer missing", func(c *VerifierConfig) { c.Self.Issuer = "" }, "self issuer must be an http(s) URL"},
		{"self audiences missing", func(c *VerifierConfig) { c.Self.Audiences = nil }, "audiences must not be empty"},
		{"self empty audience", func(c *VerifierConfig) { c.Self.Audiences = []string{""} }, "an audience is empty"},
		{"self with URL", func(c *VerifierConfig) { c.Self.JWKSURL = "https://x/jwks" }, "not a URL"},
		{"self typ", func(c *VerifierConfig) { c.Self.RequireTyp = "JWT" }, "self issuer typ must be at+jwt"},
		{"self key alg", func(c *VerifierConfig) { c.Self.KeyAlg = "RS256" }, "self issuer key_alg must be empty"},
		{"external duplicate", func(c *VerifierConfig) { c.External[1].Issuer = c.External[0].Issuer }, "configured twice"},
		{"external same as self", func(c *VerifierConfig) { c.External[0].Issuer = selfIss }, "configured twice"},
		{"external no URL", func(c *VerifierConfig) { c.External[0].JWKSURL = "" }, "exactly one of jwks_url and discovery_url"},
		{"external both URLs", func(c *VerifierConfig) { c.External[0].DiscoveryURL = "https://idp.test/d" }, "exactly one"},
		{"external http", func(c *VerifierConfig) { c.External[0].JWKSURL = "http://idp.test/jwks" }, "http is allowed only to a loopback host"},
		{"external ftp", func(c *VerifierConfig) { c.External[0].JWKSURL = "ftp://idp.test/jwks" }, "scheme must be https"},
		{"external relative", func(c *VerifierConfig) { c.External[0].JWKSURL = "/jwks" }, "not an absolute URL"},
		{"external key alg", func(c *VerifierConfig) { c.External[0].KeyAlg = "HS256" }, `key_alg "HS256" is not one of`},
		{"external no audience", func(c *VerifierConfig) { c.External[0].Audiences = nil }, "audiences must not be empty"},
		{"skew", func(c *VerifierConfig) { c.ClockSkew = time.Hour }, "clock skew"},
		{"token size", func(c *VerifierConfig) { c.MaxTokenBytes = -1 }, "max token bytes"},
		{"cache ttl", func(c *VerifierConfig) { c.CacheTTL = -time.Second }, "cache ttl"},
		{"fetch timeout", func(c *VerifierConfig) { c.FetchTimeout = -time.Second }, "fetch timeout"},
		{"cache size", func(c *VerifierConfig) { c.CacheSize = -1 }, "cache size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if _, err := NewVerifier(c, &Keyring{}, &fakeRevocations{}, nil); err == nil {
				t.Fatal("NewVerifier accepted an invalid config")
			}
		})
	}
	if _, err := NewVerifier(ok(), nil, &fakeRevocations{}, nil); err == nil {
		t.Fatal("NewVerifier accepted a nil key source")
	}
	if _, err := NewVerifier(ok(), &Keyring{}, nil, nil); err == nil {
		t.Fatal("NewVerifier accepted a nil revocation checker")
	}
}

func FuzzVerify(f *testing.F) {
	e := newEnv(f, AlgES256, nil)
	valid := e.own(f, nil)
	f.Add(valid)
	f.Add(e.own(f, func(h, c map[string]any) { h["alg"] = "none" }))
	f.Add(e.own(f, func(h, c map[string]any) { h["jku"] = "https://x" }))
	f.Add("e30.e30.e30")
	f.Add("a.b.c.d.e")
	f.Add(`{"payload":"e30"}`)
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := e.v.Verify(context.Background(), tok)
		if err == nil {
			if tok != valid {
				t.Fatalf("accepted a token that was never issued: %q", tok)
			}
			return
		}
		if c != nil || !(errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable)) {
			t.Fatalf("Verify = %v, %v", c, err)
		}
	})
}

func TestForgetAll(t *testing.T) {
	checkLeaks(t)
	e := newEnv(t, AlgES256, nil)
	ctx := context.Background()
	var jti string
	revoked := e.own(t, func(h, c map[string]any) { jti = c["jti"].(string) })
	kept := e.own(t, nil)
	mustVerify(t, e.v, revoked)
	mustVerify(t, e.v, kept)
	e.v.cache.Wait()

	// The revocation reaches the store, not this verifier: cached, it
	// still verifies...
	e.rev.revoke(jti)
	mustVerify(t, e.v, revoked)
	before := e.rev.calls.Load()
	// ...until ForgetAll.
	e.v.ForgetAll()
	_, err := e.v.Verify(ctx, revoked)
	wantInvalid(t, err, "token revoked")
	mustVerify(t, e.v, kept)
	e.v.cache.Wait()
	if n := e.rev.calls.Load() - before; n != 2 {
		t.Fatalf("after ForgetAll the store was called %d times, want 2 (both tokens)", n)
	}
	// The fresh verification of kept is cached again.
	mustVerify(t, e.v, kept)
	if n := e.rev.calls.Load() - before; n != 2 {
		t.Fatalf("the fresh verification was not cached: %d store calls, want 2", n)
	}
}
