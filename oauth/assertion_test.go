package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/verdictpdp/verdict/authn"
)

const asTokenURL = "https://verdict.test/oauth/token"

// memOneTime is an in-memory OneTimeIDs that records what it was given and
// can be made to fail.
type memOneTime struct {
	mu   sync.Mutex
	seen map[string]time.Time
	err  error
}

var _ OneTimeIDs = (*memOneTime)(nil)

func (m *memOneTime) UseOnce(_ context.Context, jti string, exp time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	if _, ok := m.seen[jti]; ok {
		return false, nil
	}
	m.seen[jti] = exp
	return true, nil
}

func (m *memOneTime) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

func (m *memOneTime) get(key string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.seen[key]
	return exp, ok
}

// assertEnv is an AssertionVerifier over a registry holding client "svc"
// (private_key_jwt only, an ES256 key with its alg and an Ed25519 key
// without one) and "plain" (a secret, no JWKS).
type assertEnv struct {
	clk    *jwttest.Clock
	st     *memClientStore
	ids    *memOneTime
	av     *AssertionVerifier
	es, ed jwk.Key // private keys of svc
}

func newAssertEnv(t testing.TB) *assertEnv {
	t.Helper()
	e := &assertEnv{clk: jwttest.NewClock(), st: newMemClientStore(), ids: &memOneTime{}}
	pepper, err := NewPepper()
	if err != nil {
		t.Fatal(err)
	}
	clients, err := NewClients(e.st, pepper, e.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.es = jwttest.GenKey(t, "ES256", "es-1", true)
	e.ed = jwttest.GenKey(t, "EdDSA", "ed-1", false)
	set := jwk.NewSet()
	for _, k := range []jwk.Key{e.es, e.ed} {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	for _, spec := range []ClientSpec{
		{ID: "svc", Scopes: []string{"read"}, JWKS: jwttest.MustJSON(t, set), NoSecret: true},
		{ID: "plain", Scopes: []string{"read"}},
	} {
		if _, _, err := clients.Add(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	e.av, err = NewAssertionVerifier(AssertionConfig{TokenEndpoint: asTokenURL, Issuer: selfIss}, clients, e.ids, e.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// claims returns the claims of a valid assertion of client svc.
func (e *assertEnv) claims() map[string]any {
	now := e.clk.Now().Unix()
	return map[string]any{
		"iss": "svc", "sub": "svc", "aud": asTokenURL, "exp": now + 60, "iat": now,
		"jti": fmt.Sprintf("a-%d", jtiSeq.Add(1)),
	}
}

// signAssertion signs claims with priv under alg with jwx; the header has
// kid and the extra members of hdr.
func signAssertion(t testing.TB, priv any, kid string, alg jwa.SignatureAlgorithm, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	// A jwk.Key would put its own kid in the header: sign with the raw key
	// so that the header says exactly what the test wants.
	if k, ok := priv.(jwk.Key); ok {
		if err := jwk.Export(k, &priv); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return string(out)
}

// valid returns an assertion of svc signed with its ES256 key, after edit.
func (e *assertEnv) valid(t testing.TB, edit func(c map[string]any)) string {
	t.Helper()
	c := e.claims()
	if edit != nil {
		edit(c)
	}
	return signAssertion(t, e.es, "es-1", jwa.ES256(), nil, c)
}

func wantInvalidClient(t testing.TB, err error, reason string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("err = %v, want ErrInvalidClient", err)
	}
	if errors.Is(err, authn.ErrInvalidToken) || errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("err = %v also wraps ErrInvalidToken or ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Fatalf("err = %q, want reason %q", err, reason)
	}
}

func TestAssertionAccepted(t *testing.T) {
	e := newAssertEnv(t)
	ctx := context.Background()
	cases := []struct {
		name     string
		clientID string
		token    func() string
	}{
		{"ES256 key with alg", "svc", func() string { return e.valid(t, nil) }},
		{"EdDSA key without alg", "svc", func() string {
			return signAssertion(t, e.ed, "ed-1", jwa.EdDSA(), nil, e.claims())
		}},
		{"aud is the issuer", "svc", func() string { return e.valid(t, func(c map[string]any) { c["aud"] = selfIss }) }},
		{"aud list with the endpoint", "svc", func() string {
			return e.valid(t, func(c map[string]any) { c["aud"] = []string{"https://elsewhere", asTokenURL} })
		}},
		{"client_id taken from sub", "", func() string { return e.valid(t, nil) }},
		{"typ JWT and no iat", "svc", func() string {
			c := e.claims()
			delete(c, "iat")
			return signAssertion(t, e.es, "es-1", jwa.ES256(), map[string]any{"typ": "JWT"}, c)
		}},
		{"exp at the lifetime limit", "svc", func() string {
			return e.valid(t, func(c map[string]any) { c["exp"] = e.clk.Now().Add(5 * time.Minute).Unix() })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := e.av.Authenticate(ctx, tc.clientID, ClientAssertionTypeJWTBearer, tc.token())
			if err != nil {
				t.Fatal(err)
			}
			if cl.ID != "svc" || len(cl.JWKS) == 0 {
				t.Fatalf("client %+v", cl)
			}
		})
	}
}

func TestAssertionReplayKeyAndExpiry(t *testing.T) {
	e := newAssertEnv(t)
	ctx := context.Background()
	c := e.claims()
	c["jti"] = "once"
	tok := signAssertion(t, e.es, "es-1", jwa.ES256(), nil, c)
	if _, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, tok); err != nil {
		t.Fatal(err)
	}
	exp, ok := e.ids.get("svc once")
	if !ok {
		t.Fatalf("jti not recorded under the client: %v", e.ids.seen)
	}
	if want := time.Unix(c["exp"].(int64), 0).Add(30 * time.Second); !exp.Equal(want) {
		t.Fatalf("jti kept until %v, want exp + skew %v", exp, want)
	}
	_, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, tok)
	wantInvalidClient(t, err, "replay")
}

func TestAssertionRejected(t *testing.T) {
	e := newAssertEnv(t)
	ctx := context.Background()
	attacker := jwttest.GenKey(t, "ES256", "es-1", true) // same kid, not registered
	attackerPub, err := attacker.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	esPub, err := e.es.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	esPubJSON, err := json.Marshal(esPub)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clk.Now()

	replayed := e.valid(t, nil)
	if _, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, replayed); err != nil {
		t.Fatal(err)
	}

	noneToken := func() string {
		out, err := jws.Sign(jwttest.MustJSON(t, e.claims()), jws.WithInsecureNoSignature())
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	noneWithSig := jwttest.B64(jwttest.MustJSON(t, map[string]any{"alg": "none", "kid": "es-1"})) + "." + jwttest.B64(jwttest.MustJSON(t, e.claims())) + ".c2ln"

	cases := []struct {
		name     string
		clientID string
		typ      string
		token    string
		reason   string
	}{
		{"no assertion type", "svc", "", e.valid(t, nil), "client_assertion_type missing"},
		{"wrong assertion type", "svc", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", e.valid(t, nil), "is not"},
		{"no assertion", "svc", ClientAssertionTypeJWTBearer, "", "client_assertion missing"},
		{"wrong iss", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["iss"] = "other" }), "iss claim is not the client_id"},
		{"iss missing", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { delete(c, "iss") }), "iss claim missing"},
		{"wrong sub", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["sub"] = "other" }), "sub claim is not the client_id"},
		{"client_id is another client", "plain", ClientAssertionTypeJWTBearer, e.valid(t, nil), "iss claim is not the client_id"},
		{"wrong aud", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["aud"] = "https://other.test/token" }), "aud does not name"},
		{"aud missing", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { delete(c, "aud") }), "aud claim missing"},
		{"expired", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), "expired"},
		{"exp missing", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { delete(c, "exp") }), "exp claim missing"},
		{"exp not a number", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["exp"] = "soon" }), "exp claim is not a valid"},
		{"too long-lived", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() }), "more than 5m0s away"},
		{"issued long before exp", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["iat"] = now.Add(-10 * time.Minute).Unix() }), "lifetime"},
		{"iat in the future", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }), "iat claim is in the future"},
		{"nbf in the future", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }), "nbf claim is in the future"},
		{"no jti", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { delete(c, "jti") }), "jti claim missing"},
		{"empty jti", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["jti"] = "" }), "jti claim missing"},
		{"jti not a string", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["jti"] = 7 }), "jti claim missing"},
		{"replayed jti", "svc", ClientAssertionTypeJWTBearer, replayed, "replay"},
		{"unknown kid", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-9", jwa.ES256(), nil, e.claims()), "unknown key id"},
		{"alg differs from the key's alg", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.ed, "es-1", jwa.EdDSA(), nil, e.claims()), "does not match alg ES256"},
		{"alg does not fit a key without alg", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "ed-1", jwa.ES256(), nil, e.claims()), "does not fit key"},
		{"HS256 with the public key", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, esPubJSON, "es-1", jwa.HS256(), nil, e.claims()), "alg \"HS256\" is not allowed"},
		{"none", "svc", ClientAssertionTypeJWTBearer, noneToken(), "missing signature"},
		{"none with a signature", "svc", ClientAssertionTypeJWTBearer, noneWithSig, "alg \"none\" is not allowed"},
		{"JWE-looking 5 parts", "svc", ClientAssertionTypeJWTBearer, "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "JWE is not accepted"},
		{"JSON serialization", "svc", ClientAssertionTypeJWTBearer, `{"payload":"e30","signatures":[]}`, "JSON serialization"},
		{"signed by another key with the same kid", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, attacker, "es-1", jwa.ES256(), nil, e.claims()), "signature verification failed"},
		{"embedded jwk header", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, attacker, "es-1", jwa.ES256(), map[string]any{"jwk": attackerPub}, e.claims()), "jwk header"},
		{"jku header", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-1", jwa.ES256(), map[string]any{"jku": "https://attacker.test/jwks"}, e.claims()), "jku header"},
		{"typ at+jwt", "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-1", jwa.ES256(), map[string]any{"typ": "at+jwt"}, e.claims()), "access token"},
		{"client without JWKS", "plain", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-1", jwa.ES256(), nil, map[string]any{
			"iss": "plain", "sub": "plain", "aud": asTokenURL, "exp": now.Unix() + 60, "jti": "p-1"}), "no registered keys"},
		{"unknown client", "ghost", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-1", jwa.ES256(), nil, map[string]any{
			"iss": "ghost", "sub": "ghost", "aud": asTokenURL, "exp": now.Unix() + 60, "jti": "g-1"}), "unknown client"},
		{"malformed client_id", "a b", ClientAssertionTypeJWTBearer, e.valid(t, nil), "client_id is missing or malformed"},
		{"no client_id and no sub", "", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { delete(c, "sub") }), "client_id is missing"},
		{"too large", "svc", ClientAssertionTypeJWTBearer, e.valid(t, func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) }), "byte limit"},
		{"garbage", "svc", ClientAssertionTypeJWTBearer, "not-a-jwt", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.av.Authenticate(ctx, tc.clientID, tc.typ, tc.token)
			wantInvalidClient(t, err, tc.reason)
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token) {
				t.Fatal("the error quotes the assertion")
			}
		})
	}
}

// A rejected assertion must not spend its jti: otherwise anyone could
// block a client by sending forged assertions with its next ids.
func TestAssertionRejectedDoesNotSpendJTI(t *testing.T) {
	e := newAssertEnv(t)
	ctx := context.Background()
	attacker := jwttest.GenKey(t, "ES256", "es-1", true)
	c := e.claims()
	c["jti"] = "next"
	forged := signAssertion(t, attacker, "es-1", jwa.ES256(), nil, c)
	_, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, forged)
	wantInvalidClient(t, err, "signature")
	if _, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, signAssertion(t, e.es, "es-1", jwa.ES256(), nil, c)); err != nil {
		t.Fatalf("the genuine assertion with the forged jti: %v", err)
	}
}

func TestAssertionStoreErrorsAreNotClientErrors(t *testing.T) {
	e := newAssertEnv(t)
	ctx := context.Background()

	e.ids.fail(errors.New("disk on fire"))
	_, err := e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, e.valid(t, nil))
	if err == nil || errors.Is(err, ErrInvalidClient) || !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("one-time store down: err = %v, want ErrUnavailable and not ErrInvalidClient", err)
	}
	e.ids.fail(nil)

	e.st.fail(errors.New("client store down"))
	_, err = e.av.Authenticate(ctx, "svc", ClientAssertionTypeJWTBearer, e.valid(t, nil))
	if err == nil || errors.Is(err, ErrInvalidClient) {
		t.Fatalf("client store down: err = %v, want a non-client error", err)
	}
	e.st.fail(nil)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = e.av.Authenticate(cctx, "svc", ClientAssertionTypeJWTBearer, e.valid(t, nil))
	if err == nil || errors.Is(err, ErrInvalidClient) {
		t.Fatalf("context ended: err = %v, want a non-client error", err)
	}
}

func TestAssertionConfig(t *testing.T) {
	cl, err := NewClients(newMemClientStore(), testPepper(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := AssertionConfig{TokenEndpoint: asTokenURL}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAssertionVerifier(ok, cl, nil, nil); err == nil {
		t.Fatal("nil one-time store accepted")
	}
	if _, err := NewAssertionVerifier(ok, nil, &memOneTime{}, nil); err == nil {
		t.Fatal("nil registry accepted")
	}
	bad := AssertionConfig{Issuer: "verdict", MaxLifetime: 2 * time.Hour, ClockSkew: -time.Second, MaxAssertionBytes: 1 << 20}
	err = bad.Validate()
	for _, want := range []string{"issuer must be an http(s) URL", "max lifetime", "clock skew", "max assertion bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err := (AssertionConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "token_endpoint or issuer") {
		t.Errorf("no audience: %v", err)
	}
}

func FuzzAssertion(f *testing.F) {
	e := newAssertEnv(f)
	f.Add("svc", e.valid(f, nil))
	f.Add("", "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVzLTEifQ.e30.c2ln")
	f.Add("svc", "a.b.c.d.e")
	f.Fuzz(func(t *testing.T, clientID, assertion string) {
		_, err := e.av.Authenticate(context.Background(), clientID, ClientAssertionTypeJWTBearer, assertion)
		if err != nil && !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("err = %v, want nil or ErrInvalidClient", err)
		}
	})
}
