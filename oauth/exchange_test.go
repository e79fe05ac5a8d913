package oauth

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/verdictpdp/verdict/authn"
)

// exchangeEnv is an Exchanger whose verifier trusts Verdict's own issuer
// and two external issuers served on 127.0.0.1: ext (mapped) and unmapped.
type exchangeEnv struct {
	clk      *jwttest.Clock
	ring     *authn.Keyring
	issuer   *TokenIssuer
	clients  *Clients
	v        *authn.Verifier
	x        *Exchanger
	ext      *jwttest.Issuer
	extKey   jwk.Key
	unmapped *jwttest.Issuer
	unKey    jwk.Key
	gw       Client // may exchange, scopes read write
	cc       Client // client_credentials only
}

func newExchangeEnv(t *testing.T, mappings func(ext string) []ClaimMapping) *exchangeEnv {
	t.Helper()
	checkLeaks(t)
	e := &exchangeEnv{clk: jwttest.NewClock()}
	var err error
	if e.ring, err = authn.NewKeyring(testConfig(), newMemStore(), e.clk.Now); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, e.ring)
	if e.issuer, err = NewTokenIssuer(IssuerConfig{Issuer: selfIss, Audience: selfAud, AccessTokenTTL: 5 * time.Minute}, e.ring, e.clk.Now); err != nil {
		t.Fatal(err)
	}
	e.ext, e.unmapped = jwttest.NewIssuer(t), jwttest.NewIssuer(t)
	e.extKey, e.unKey = jwttest.GenKey(t, "ES256", "ext-1", true), jwttest.GenKey(t, "EdDSA", "un-1", true)
	e.ext.Publish(t, e.extKey)
	e.unmapped.Publish(t, e.unKey)
	cfg := authn.VerifierConfig{
		Self:     authn.TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}},
		External: []authn.TrustedIssuer{jwksIssuer(e.ext), jwksIssuer(e.unmapped)},
	}
	if e.v, err = authn.NewVerifier(cfg, e.ring, &fakeRevocations{}, e.clk.Now); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.v.Close)
	e.clients = newTestClients(t, newMemClientStore(), testPepper(t), e.clk)
	e.gw, _ = mustAddClient(t, e.clients, ClientSpec{ID: "gw", Scopes: []string{"read", "write"}, Grants: []string{"token-exchange"}})
	e.cc, _ = mustAddClient(t, e.clients, ClientSpec{ID: "cc", Scopes: []string{"read"}})
	m := []ClaimMapping{{Issuer: e.ext.URL(), Copy: []string{"email", "groups", "missing"}, Prefix: "ext:"}}
	if mappings != nil {
		m = mappings(e.ext.URL())
	}
	if e.x, err = NewExchanger(ExchangeConfig{Mappings: m}, e.clients, e.v, e.issuer); err != nil {
		t.Fatal(err)
	}
	return e
}

// extToken is a token of the mapped issuer for bob, after edit.
func (e *exchangeEnv) extToken(t *testing.T, edit func(c map[string]any)) string {
	t.Helper()
	return e.ext.Token(t, e.clk.Now(), e.extKey, "ES256", func(_, c map[string]any) {
		c["email"] = "bob@example.com"
		c["groups"] = []string{"dev", "ops"}
		if edit != nil {
			edit(c)
		}
	})
}

func (e *exchangeEnv) req(token string) ExchangeRequest {
	return ExchangeRequest{SubjectToken: token, SubjectTokenType: TokenTypeJWT}
}

func wantOAuth(t *testing.T, err error, code, desc string) {
	t.Helper()
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Code != code {
		t.Fatalf("err = %v, want OAuth error %s", err, code)
	}
	if !strings.Contains(oe.Description, desc) {
		t.Fatalf("description %q, want %q", oe.Description, desc)
	}
	if errors.Is(err, authn.ErrInvalidToken) || errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("err = %v wraps a verifier sentinel", err)
	}
}

func TestExchangeIssuesMappedToken(t *testing.T) {
	e := newExchangeEnv(t, nil)
	ctx := context.Background()

	at, err := e.x.Exchange(ctx, e.gw, ExchangeRequest{
		SubjectToken: e.extToken(t, nil), SubjectTokenType: TokenTypeAccessToken,
		RequestedTokenType: TokenTypeAccessToken, Audience: selfAud, Resource: selfAud,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := mustVerify(t, e.v, at.Token) // Verdict's own verifier: own key, at+jwt, aud
	if c.Issuer() != selfIss || c.Subject() != "ext:bob" || c["client_id"] != "gw" || c["scope"] != "read write" {
		t.Fatalf("claims %v", c)
	}
	if c["email"] != "bob@example.com" || !reflect.DeepEqual(c["groups"], []any{"dev", "ops"}) {
		t.Fatalf("copied claims %v", c)
	}
	if _, ok := c["missing"]; ok {
		t.Fatal("a claim the subject token lacks was invented")
	}
	if !reflect.DeepEqual(c["act"], map[string]any{"sub": "gw"}) {
		t.Fatalf("act %v", c["act"])
	}
	if !reflect.DeepEqual(at.Scopes, []string{"read", "write"}) {
		t.Fatalf("scopes %v", at.Scopes)
	}

	// A narrower scope, and an existing act nested under the new actor.
	at, err = e.x.Exchange(ctx, e.gw, ExchangeRequest{
		SubjectToken:     e.extToken(t, func(c map[string]any) { c["act"] = map[string]any{"sub": "upstream"} }),
		SubjectTokenType: TokenTypeJWT, Scope: "read",
	})
	if err != nil {
		t.Fatal(err)
	}
	c = mustVerify(t, e.v, at.Token)
	if c["scope"] != "read" || !reflect.DeepEqual(c["act"], map[string]any{"sub": "gw", "act": map[string]any{"sub": "upstream"}}) {
		t.Fatalf("claims %v", c)
	}
}

func TestExchangeSubjectClaim(t *testing.T) {
	e := newExchangeEnv(t, func(ext string) []ClaimMapping {
		return []ClaimMapping{{Issuer: ext, Subject: "uid", Prefix: "corp:"}}
	})
	ctx := context.Background()
	at, err := e.x.Exchange(ctx, e.gw, e.req(e.extToken(t, func(c map[string]any) { c["uid"] = 42 })))
	if err != nil {
		t.Fatal(err)
	}
	c := mustVerify(t, e.v, at.Token)
	if c.Subject() != "corp:42" {
		t.Fatalf("sub %q", c.Subject())
	}
	if _, ok := c["email"]; ok {
		t.Fatal("a claim not listed in Copy was copied")
	}
	_, err = e.x.Exchange(ctx, e.gw, e.req(e.extToken(t, nil)))
	wantOAuth(t, err, OAuthInvalidGrant, "no usable uid claim")
	_, err = e.x.Exchange(ctx, e.gw, e.req(e.extToken(t, func(c map[string]any) { c["uid"] = 1.5 })))
	wantOAuth(t, err, OAuthInvalidGrant, "no usable uid claim")
}

func TestExchangeRejects(t *testing.T) {
	e := newExchangeEnv(t, nil)
	ctx := context.Background()
	own, err := e.issuer.Issue("gw", "gw", []string{"read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := e.extToken(t, nil)
	unmapped := e.unmapped.Token(t, e.clk.Now(), e.unKey, "EdDSA", nil)
	expired := e.extToken(t, func(c map[string]any) { c["exp"] = e.clk.Now().Add(-time.Hour).Unix() })
	forged := e.ext.Token(t, e.clk.Now(), jwttest.GenKey(t, "ES256", "ext-1", true), "ES256", nil)

	cases := []struct {
		name   string
		client Client
		req    ExchangeRequest
		code   string
		desc   string
	}{
		{"own token", e.gw, e.req(own.Token), OAuthInvalidGrant, "exchange is for tokens of other issuers"},
		{"unmapped issuer", e.gw, e.req(unmapped), OAuthInvalidGrant, "cannot be exchanged"},
		{"garbage", e.gw, e.req("garbage.garbage.garbage"), OAuthInvalidGrant, "subject_token is invalid"},
		{"expired", e.gw, e.req(expired), OAuthInvalidGrant, "subject_token is invalid"},
		{"forged signature", e.gw, e.req(forged), OAuthInvalidGrant, "subject_token is invalid"},
		{"no subject token type", e.gw, ExchangeRequest{SubjectToken: good}, OAuthInvalidRequest, "subject_token_type is required"},
		{"id_token subject type", e.gw, ExchangeRequest{SubjectToken: good, SubjectTokenType: "urn:ietf:params:oauth:token-type:id_token"}, OAuthInvalidRequest, "subject_token_type must be"},
		{"refresh token requested", e.gw, ExchangeRequest{SubjectToken: good, SubjectTokenType: TokenTypeJWT, RequestedTokenType: "urn:ietf:params:oauth:token-type:refresh_token"}, OAuthInvalidRequest, "requested_token_type must be"},
		{"no subject token", e.gw, ExchangeRequest{SubjectTokenType: TokenTypeJWT}, OAuthInvalidRequest, "subject_token is required"},
		{"scope widening", e.gw, ExchangeRequest{SubjectToken: good, SubjectTokenType: TokenTypeJWT, Scope: "read admin"}, OAuthInvalidScope, "admin"},
		{"client may not exchange", e.cc, e.req(good), OAuthUnauthorizedClient, "token exchange"},
		{"foreign audience", e.gw, ExchangeRequest{SubjectToken: good, SubjectTokenType: TokenTypeJWT, Audience: "https://other.test"}, OAuthInvalidTarget, "audience"},
		{"foreign resource", e.gw, ExchangeRequest{SubjectToken: good, SubjectTokenType: TokenTypeJWT, Resource: "https://other.test/api"}, OAuthInvalidTarget, "audience"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.x.Exchange(ctx, tc.client, tc.req)
			wantOAuth(t, err, tc.code, tc.desc)
			if tc.req.SubjectToken != "" && strings.Contains(err.Error(), tc.req.SubjectToken) {
				t.Fatal("the error quotes the subject token")
			}
		})
	}
	// The good token was never spent by the rejections above.
	if _, err := e.x.Exchange(ctx, e.gw, e.req(good)); err != nil {
		t.Fatal(err)
	}
}

// verifierFunc adapts a function to ExternalVerifier.
type verifierFunc func(ctx context.Context, token string) (authn.Claims, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (authn.Claims, error) {
	return f(ctx, token)
}

func TestExchangeVerifierUnavailableIsNotAGrantError(t *testing.T) {
	e := newExchangeEnv(t, nil)
	down := verifierFunc(func(context.Context, string) (authn.Claims, error) {
		return nil, unavailable("keys of issuer not fetched", errors.New("connection refused"))
	})
	x, err := NewExchanger(ExchangeConfig{Mappings: []ClaimMapping{{Issuer: e.ext.URL(), Prefix: "ext:"}}}, e.clients, down, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.Exchange(context.Background(), e.gw, e.req(e.extToken(t, nil)))
	var oe *OAuthError
	if err == nil || errors.As(err, &oe) || !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable and no OAuth error", err)
	}
}

func TestExchangeConfigValidate(t *testing.T) {
	ok := ExchangeConfig{Mappings: []ClaimMapping{
		{Issuer: "https://a.test", Prefix: "a:", Copy: []string{"email"}},
		{Issuer: "https://b.test", Prefix: "b:", Subject: "oid"},
	}}
	if err := ok.Validate(selfIss); err != nil {
		t.Fatal(err)
	}
	if err := (ExchangeConfig{}).Validate(selfIss); err != nil {
		t.Fatalf("no mappings: %v", err)
	}
	bad := ExchangeConfig{Mappings: []ClaimMapping{
		{Issuer: selfIss, Prefix: "self:"},
		{Issuer: "", Prefix: "x:"},
		{Issuer: "https://a.test", Prefix: "a:", Copy: []string{"act", "email", "email", ""}},
		{Issuer: "https://a.test", Prefix: "a:"},
		{Issuer: "https://c.test"},
		{Issuer: "https://d.test", Prefix: "d :"},
	}}
	err := bad.Validate(selfIss)
	for _, want := range []string{
		"own tokens cannot be exchanged", "issuer must not be empty", `claim "act" cannot be copied`,
		`claim "email" is copied twice`, "copied claim name is empty", "issuer is mapped twice",
		"is used by another mapping", "prefix must not be empty", "space or non-printable",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	e := newExchangeEnv(t, nil)
	if _, err := NewExchanger(bad, e.clients, e.v, e.issuer); err == nil {
		t.Fatal("NewExchanger accepted an invalid config")
	}
	if _, err := NewExchanger(ok, e.clients, nil, e.issuer); err == nil {
		t.Fatal("NewExchanger accepted a nil verifier")
	}
}
