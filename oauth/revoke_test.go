package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// fixedVerifier is a TokenVerifier with a canned answer.
type fixedVerifier struct {
	claims authn.Claims
	err    error
}

func (f fixedVerifier) Verify(context.Context, string) (authn.Claims, error) { return f.claims, f.err }

func introspectJSON(t *testing.T, r IntrospectResponse) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const inactiveJSON = `{"active":false}`

func TestRevokeAccessToken(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at, rt := e.start(t)
	if got := e.in.Introspect(ctx, at.Token); !got.Active {
		t.Fatal("fresh token inactive")
	}

	if err := e.rv.Revoke(ctx, rfApp, at.Token, "refresh_token"); err != nil { // a wrong hint does not matter
		t.Fatal(err)
	}
	until, ok := e.revs.get(at.JTI)
	if !ok || !until.Equal(at.ExpiresAt.Add(revocationMargin)) {
		t.Fatalf("revoked until %v (%v), token expires %v", until, ok, at.ExpiresAt)
	}
	if _, err := e.v.Verify(ctx, at.Token); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("revoked token verifies: %v", err)
	}
	if got := introspectJSON(t, e.in.Introspect(ctx, at.Token)); got != inactiveJSON {
		t.Fatalf("introspect revoked: %s", got)
	}
	// Revoking again is a no-op; the family it came from stays.
	if err := e.rv.Revoke(ctx, rfApp, at.Token, ""); err != nil {
		t.Fatal(err)
	}
	e.mustRefresh(t, rt, "")

	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"token revoked"`) || !strings.Contains(logs, `"jti":"`+at.JTI+`"`) || !strings.Contains(logs, `"client_id":"app"`) {
		t.Fatalf("audit log: %s", logs)
	}
	if strings.Contains(logs, at.Token) {
		t.Fatal("the token was logged")
	}
}

// TestRevokeHeld: the holder of an access token revokes it without
// client credentials; a refresh token or garbage changes nothing.
func TestRevokeHeld(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at, rt := e.start(t)
	for _, tok := range []string{rt, "not-a-token", ""} {
		if err := e.rv.RevokeHeld(ctx, tok); err != nil {
			t.Fatalf("RevokeHeld(%.10q): %v", tok, err)
		}
	}
	if _, ok := e.revs.get(at.JTI); ok {
		t.Fatal("revoked before RevokeHeld was given the access token")
	}
	e.mustRefresh(t, rt, "") // the refresh token was not revoked
	if err := e.rv.RevokeHeld(ctx, at.Token); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.revs.get(at.JTI); !ok {
		t.Fatal("not revoked")
	}
	if _, err := e.v.Verify(ctx, at.Token); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("revoked token verifies: %v", err)
	}
	if logs := e.logs.String(); !strings.Contains(logs, `"client_id":"app"`) || !strings.Contains(logs, at.JTI) {
		t.Fatalf("audit log: %s", logs)
	}
}

func TestRevokeRefreshToken(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at0, rt0 := e.start(t)
	at1, rt1 := e.mustRefresh(t, rt0, "")
	if err := e.rv.Revoke(ctx, rfApp, rt1, "access_token"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.st.get(familyOf(t, rt1)); !rec.Revoked {
		t.Fatal("family not revoked")
	}
	for _, at := range []AccessToken{at0, at1} {
		if _, ok := e.revs.get(at.JTI); !ok {
			t.Fatalf("access token %s not revoked", at.JTI)
		}
		if _, err := e.v.Verify(ctx, at.Token); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("access token of a revoked family verifies: %v", err)
		}
	}
	_, _, err := e.rf.Refresh(ctx, rfApp, rt1, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "")
	if got := introspectJSON(t, e.in.Introspect(ctx, rt1)); got != inactiveJSON {
		t.Fatalf("introspect revoked refresh token: %s", got)
	}
	if !strings.Contains(e.logs.String(), `"family":"`+familyOf(t, rt1)+`"`) {
		t.Fatalf("audit log: %s", e.logs.String())
	}

	// A replaced token of the caller's own family revokes it too.
	_, rt2 := e.start(t)
	_, rt3 := e.mustRefresh(t, rt2, "")
	if err := e.rv.Revoke(ctx, rfApp, rt2, ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.rf.Refresh(ctx, rfApp, rt3, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is revoked")
}

func TestRevokeOtherClientsTokens(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at, rt := e.start(t)
	for _, tok := range []string{at.Token, rt} {
		if err := e.rv.Revoke(ctx, rfOther, tok, ""); err != nil {
			t.Fatalf("another client's token: %v", err)
		}
	}
	if e.revs.len() != 0 {
		t.Fatal("another client revoked an access token")
	}
	if rec, _ := e.st.get(familyOf(t, rt)); rec.Revoked {
		t.Fatal("another client revoked a family")
	}
	if _, err := e.v.Verify(ctx, at.Token); err != nil {
		t.Fatalf("access token: %v", err)
	}
	e.mustRefresh(t, rt, "")
}

func TestRevokeUnknownAndFailures(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	unknown, _, _ := newRefreshToken()
	for _, tok := range []string{"garbage", "a.b.c", unknown, strings.Repeat("x", 10_000)} {
		if err := e.rv.Revoke(ctx, rfApp, tok, ""); err != nil {
			t.Errorf("unknown token: %v", err)
		}
	}
	wantOAuthErr(t, e.rv.Revoke(ctx, rfApp, "", ""), OAuthInvalidRequest, "")

	// An expired access token is nothing to revoke.
	at, rt := e.start(t)
	e.clk.Advance(10 * time.Minute)
	if err := e.rv.Revoke(ctx, rfApp, at.Token, ""); err != nil || e.revs.len() != 0 {
		t.Fatalf("expired token: %v, %d revoked", err, e.revs.len())
	}

	// Failures to check or record are errors (503), not silent success.
	e.st.fail(errors.New("disk on fire"))
	if err := e.rv.Revoke(ctx, rfApp, rt, ""); err == nil {
		t.Fatal("store failure hidden")
	}
	e.st.fail(nil)
	e.revs.mu.Lock()
	e.revs.failErr = errors.New("disk on fire")
	e.revs.mu.Unlock()
	if err := e.rv.Revoke(ctx, rfApp, rt, ""); err == nil {
		t.Fatal("revocation store failure hidden")
	}
	if rec, _ := e.st.get(familyOf(t, rt)); !rec.Revoked {
		t.Fatal("family not revoked despite the jti failure")
	}
	down, err := NewRevoker(RefreshConfig{Issuer: selfIss}, fixedVerifier{err: authn.ErrUnavailable}, e.st, e.revs, e.v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Revoke(ctx, rfApp, "a.b.c", ""); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("verifier down: %v", err)
	}
	// A token of an external issuer with the caller's client_id is not
	// Verdict's to revoke.
	ext, err := NewRevoker(RefreshConfig{Issuer: selfIss}, fixedVerifier{claims: authn.Claims{
		"iss": "https://idp.test", "jti": "j1", "client_id": "app", "exp": int64(4102444800),
	}}, e.st, e.revs, e.v, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.revs.mu.Lock()
	e.revs.failErr = nil
	e.revs.mu.Unlock()
	if err := ext.Revoke(ctx, rfApp, "a.b.c", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.revs.get("j1"); ok {
		t.Fatal("an external token's jti was revoked")
	}
}

func TestIntrospect(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at0, rt0 := e.start(t, "read", "write")

	got := e.in.Introspect(ctx, at0.Token)
	want := IntrospectResponse{
		Active: true, Scope: "read write", ClientID: "app", Subject: "alice",
		ExpiresAt: at0.ExpiresAt.Unix(), IssuedAt: at0.IssuedAt.Unix(),
		Issuer: selfIss, Audience: []string{selfAud}, JTI: at0.JTI, TokenType: "Bearer",
	}
	if introspectJSON(t, got) != introspectJSON(t, want) {
		t.Fatalf("access token:\n got %s\nwant %s", introspectJSON(t, got), introspectJSON(t, want))
	}
	fam, _ := e.st.get(familyOf(t, rt0))
	rwant := `{"active":true,"scope":"read write","client_id":"app","exp":` +
		jsonInt(fam.ExpiresAt.Unix()) + `,"token_type":"refresh_token"}`
	if got := introspectJSON(t, e.in.Introspect(ctx, rt0)); got != rwant {
		t.Fatalf("refresh token:\n got %s\nwant %s", got, rwant)
	}

	_, rt1 := e.mustRefresh(t, rt0, "")
	unknown, _, _ := newRefreshToken()
	inactive := map[string]string{
		"empty":           "",
		"garbage":         "garbage",
		"jwt-shaped":      "a.b.c",
		"unknown refresh": unknown,
		"rotated refresh": rt0,
	}
	for name, tok := range inactive {
		if got := introspectJSON(t, e.in.Introspect(ctx, tok)); got != inactiveJSON {
			t.Errorf("%s: %s", name, got)
		}
	}
	if !e.in.Introspect(ctx, rt1).Active {
		t.Fatal("current refresh token inactive")
	}

	// External issuers' tokens and failures to check are inactive.
	for name, v := range map[string]TokenVerifier{
		"external": fixedVerifier{claims: authn.Claims{"iss": "https://idp.test", "jti": "j", "client_id": "app", "exp": int64(4102444800)}},
		"down":     fixedVerifier{err: authn.ErrUnavailable},
	} {
		in, err := NewIntrospector(RefreshConfig{Issuer: selfIss}, v, e.st, e.clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		if got := introspectJSON(t, in.Introspect(ctx, "a.b.c")); got != inactiveJSON {
			t.Errorf("%s: %s", name, got)
		}
	}
	e.st.fail(errors.New("disk on fire"))
	if got := introspectJSON(t, e.in.Introspect(ctx, rt1)); got != inactiveJSON {
		t.Errorf("store down: %s", got)
	}
	e.st.fail(nil)

	// Expired: the access token after its exp and clock skew, the refresh
	// token after its family's end.
	at2, rt2 := e.mustRefresh(t, rt1, "")
	e.clk.Advance(6 * time.Minute)
	if got := introspectJSON(t, e.in.Introspect(ctx, at2.Token)); got != inactiveJSON {
		t.Errorf("expired access token: %s", got)
	}
	if !e.in.Introspect(ctx, rt2).Active {
		t.Fatal("refresh token inactive before its family ends")
	}
	e.clk.Advance(24 * time.Hour)
	if got := introspectJSON(t, e.in.Introspect(ctx, rt2)); got != inactiveJSON {
		t.Errorf("expired refresh token: %s", got)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
