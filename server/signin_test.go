package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// noForget is a JTIForgetter with no cache to drop tokens from.
type noForget struct{}

func (noForget) ForgetJTI(string) {}

// signInStack builds the real sign-in pieces over an embedded store (the
// users service, the client registry, the authorizer) for issuer, with
// one user (ada@example.com, password pw) and one client ("app",
// redirect https://app.example/cb), and returns the server options that
// serve them.
func signInStack(t *testing.T, issuer string) []Option {
	t.Helper()
	const ns = store.DefaultNamespace
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), storeadapt.Keys(b, ns), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(ctx); err != nil {
		t.Fatal(err)
	}
	ic := oauth.IssuerConfig{Issuer: issuer, Audience: "verdict", AccessTokenTTL: 5 * time.Minute}
	iss, err := oauth.NewTokenIssuer(ic, ring, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := oauth.DefaultRefreshConfig()
	rc.Issuer = issuer
	refresher, err := oauth.NewRefresher(rc, iss, storeadapt.Refresh(b, ns), storeadapt.Revocations(b, ns), noForget{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stores := storeadapt.Users(b, ns)
	stores.Revoker = refresher
	cfg := users.Default()
	cfg.Argon2 = users.Argon2{MemoryKiB: 8 * 1024, Time: 1, Parallelism: 1}
	people, err := users.New(cfg, stores, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := people.Add(ctx, users.NewUser{Email: "ada@example.com", Password: pw}, users.Meta{}); err != nil {
		t.Fatal(err)
	}
	clients, err := oauth.NewClients(storeadapt.Clients(b, ns), make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := clients.Add(ctx, oauth.ClientSpec{ID: "app", Scopes: []string{"openid"}, Grants: []string{oauth.GrantAuthorizationCode},
		RedirectURIs: []string{"https://app.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	az, err := oauth.NewAuthorizer(issuer, clients, storeadapt.Codes(b, ns), people, refresher, oauth.NewIDTokenIssuer(issuer, ring, time.Minute, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return []Option{WithSignIn(people, az), WithUserAdmin(people, make([]byte, 32))}
}

const pw = "correct horse battery staple 42"

// TestSignInPagesHeaders: every HTML page of the sign-in flow carries a
// CSP with no script and no inline style but its own hash, is never framed
// or cached, and a form post without the CSRF cookie or from another site
// changes nothing.
func TestSignInPagesHeaders(t *testing.T) {
	h := newHarness(t, append(signInStack(t, "http://verdict.test"), WithJWKS(fixedJWKS{}), WithTokens(&fakeTokens{}, "http://verdict.test"))...)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := "/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}}.Encode()
	for _, path := range []string{"/login", "/login?return=" + url.QueryEscape(authorize), "/oauth2/authorize?client_id=nope", "/oauth2/logout"} {
		resp, err := noRedirect.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(csp, "default-src 'none'") ||
			!strings.Contains(csp, "style-src 'sha256-") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") ||
			resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || strings.Contains(string(body), "<script") {
			t.Errorf("%s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	// The authorize request sends the browser to the login page.
	resp, err := noRedirect.Get(h.url + authorize)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/login?return=") {
		t.Fatalf("authorize without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A post without the CSRF cookie, and one a browser marks cross-site,
	// are refused and sign nobody in.
	form := url.Values{"email": {"ada@example.com"}, "password": {pw}, "csrf": {strings.Repeat("x", 43)}}
	for name, hdr := range map[string][2]string{
		"no cookie":  {"", ""},
		"cross-site": {"Cookie", "verdict_csrf=" + strings.Repeat("x", 43)},
	} {
		req, _ := http.NewRequest("POST", h.url+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if hdr[0] != "" {
			req.Header.Set(hdr[0], hdr[1])
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || strings.Contains(resp.Header.Get("Set-Cookie"), "verdict_session=") {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
	}
	// The same post from the page itself signs in.
	req, _ := http.NewRequest("POST", h.url+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "verdict_csrf="+strings.Repeat("x", 43))
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := strings.Join(resp.Header.Values("Set-Cookie"), "; ")
	if resp.StatusCode != 303 || !strings.Contains(set, "verdict_session=") || !strings.Contains(set, "HttpOnly") || !strings.Contains(strings.ToLower(set), "samesite=lax") {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, set)
	}
}
