package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// extIdP is a small external identity provider on 127.0.0.1: it publishes
// one ES256 key and signs the user tokens a client exchanges.
type extIdP struct {
	srv  *httptest.Server
	priv *ecdsa.PrivateKey
}

func newExtIdP(t *testing.T) *extIdP {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := ecJWKS(&priv.PublicKey, "idp-1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}))
	t.Cleanup(srv.Close)
	return &extIdP{srv: srv, priv: priv}
}

// userToken is a token of the IdP for sub.
func (p *extIdP) userToken(t *testing.T, sub string) string {
	t.Helper()
	now := time.Now()
	tok := gojwt.NewWithClaims(gojwt.SigningMethodES256, gojwt.MapClaims{
		"iss": p.srv.URL, "sub": sub, "aud": "verdict", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "idp-1"
	s, err := tok.SignedString(p.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// config is a configuration file that trusts the IdP and maps its tokens
// for exchange.
func (p *extIdP) config(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "verdict.yaml")
	writeFile(t, path, `bundles: {require_signature: false, acknowledge_unsigned: true}
tokens:
  trusted_issuers:
    - issuer: `+p.srv.URL+`
      audiences: [verdict]
      jwks_url: `+p.srv.URL+`/jwks
  exchange:
    mappings:
      - issuer: `+p.srv.URL+`
        prefix: "idp:"
`)
	return path
}

// tokenAnswer is what POST /oauth2/token answered.
type tokenAnswer struct {
	status int
	body   map[string]any
}

func (a tokenAnswer) str(k string) string { s, _ := a.body[k].(string); return s }

// postToken posts form to base's token endpoint as client id with secret,
// with X-Request-ID reqID if set.
func postToken(t *testing.T, base, id, secret, reqID string, form url.Values) tokenAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	if reqID != "" {
		req.Header.Set("X-Request-ID", reqID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return tokenAnswer{}
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return tokenAnswer{resp.StatusCode, m}
}

// TestRefreshFamiliesEndToEnd: refresh tokens from a token exchange against
// a running server. Parallel refreshes of one token: exactly one wins and
// its token keeps working; families survive a restart, a family revoked
// before it stays revoked, and a replayed old token is detected as reuse
// with the request's id in the audit event.
func TestRefreshFamiliesEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	_, out, errOut := cli(t, "", "client", "add", "--id", "portal", "--scope", "verdict:decide",
		"--grant", "token-exchange", "--grant", "refresh_token", "--data-dir", dataDir)
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("client add: %s %s", out, errOut)
	}
	secret := m[1]
	idp := newExtIdP(t)
	cfgFile := idp.config(t)
	addr := freeAddr(t)
	base := "http://" + addr
	exchange := func(sub string) tokenAnswer {
		return postToken(t, base, "portal", secret, "", url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {idp.userToken(t, sub)},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"scope":              {"verdict:decide"},
		})
	}
	refresh := func(rt, reqID string) tokenAnswer {
		return postToken(t, base, "portal", secret, reqID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	decide := func(tok string) int { return decideStatus(t, base, tok, "idp:alice") }

	stop, before := serveWith(t, addr, dataDir, "--config", cfgFile)
	a := exchange("alice")
	rt0 := a.str("refresh_token")
	if a.status != 200 || rt0 == "" {
		t.Fatalf("exchange: %d %v", a.status, a.body)
	}
	rt1 := refresh(rt0, "").str("refresh_token")
	if rt1 == "" {
		t.Fatal("first refresh failed")
	}

	// Eight clients of one family refresh the same token at once.
	const n = 8
	answers := make([]tokenAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = refresh(rt1, "") })
	}
	wg.Wait()
	var rt2 string
	for _, ans := range answers {
		switch {
		case ans.status == 200 && rt2 == "":
			rt2 = ans.str("refresh_token")
		case ans.status == 200:
			t.Fatal("two parallel refreshes of one token won")
		case ans.status != 400 || ans.str("error") != "invalid_grant":
			t.Fatalf("a loser of the race: %d %v", ans.status, ans.body)
		}
	}
	if rt2 == "" {
		t.Fatalf("no parallel refresh won: %v", answers)
	}
	w := refresh(rt2, "")
	if w.status != 200 {
		t.Fatalf("the winner's refresh token after the race: %d %v", w.status, w.body)
	}
	current := w.str("refresh_token")

	// A second family, revoked before the restart.
	b := exchange("bob")
	revokeToken(t, base, "portal", secret, b.str("refresh_token"))
	stop()

	stop, logs := serveWith(t, addr, dataDir, "--config", cfgFile)
	defer stop()
	after := refresh(current, "")
	if after.status != 200 || after.str("refresh_token") == "" {
		t.Fatalf("a refresh token from before the restart: %d %v", after.status, after.body)
	}
	if code := decide(after.str("access_token")); code != 200 {
		t.Fatalf("the access token of a refresh after the restart: %d", code)
	}
	if r := refresh(b.str("refresh_token"), ""); r.status != 400 || r.str("error_description") != "refresh token is revoked" {
		t.Fatalf("a family revoked before the restart: %d %v", r.status, r.body)
	}
	if code := decide(b.str("access_token")); code != 401 {
		t.Fatalf("an access token of a family revoked before the restart: %d", code)
	}

	// The oldest token of the first family is reuse, after the restart too.
	if r := refresh(rt0, "e2e-reuse-1"); r.str("error_description") != "refresh token reuse detected" {
		t.Fatalf("replay of a rotated token: %d %v", r.status, r.body)
	}
	if r := refresh(after.str("refresh_token"), ""); r.str("error_description") != "refresh token is revoked" {
		t.Fatalf("the family's current token after reuse: %d %v", r.status, r.body)
	}
	if code := decide(after.str("access_token")); code != 401 {
		t.Fatalf("an access token of a family revoked for reuse: %d", code)
	}
	var event string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="refresh token reuse detected"`) {
			event = line
		}
	}
	for _, want := range []string{"audit=true", "request_id=e2e-reuse-1", "client_id=portal", "access_tokens=5", `outcome="family revoked"`} {
		if !strings.Contains(event, want) {
			t.Errorf("reuse audit event %q lacks %s", event, want)
		}
	}
	// A refresh token's secret is its part after the dot.
	for _, sec := range []string{secret, rt0[23:], rt1[23:], rt2[23:], current[23:]} {
		if strings.Contains(before.String()+logs.String(), sec) {
			t.Fatal("a refresh token or the client secret was logged")
		}
	}
}
