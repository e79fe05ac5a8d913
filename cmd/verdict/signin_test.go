package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/internal/testutil"
)

// peoplePolicy lets a signed-in user read, and delete only after a second
// factor (the token's amr).
const peoplePolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: people
variables:
  amr: >
    token != null && has(token.amr) && type(token.amr) == list ? token.amr : []
rules:
  - id: signed-in-read
    effect: allow
    actions: ["read"]
    condition: token != null && has(token.sub) && subject.id == token.sub
  - id: delete-needs-mfa
    effect: allow
    actions: ["delete"]
    condition: '"otp" in variables.amr'
`

const userPassword = "correct horse battery staple 42"

// rp is the relying party's side: where the code comes back, and where
// logout returns. Nothing listens there: the browser stops at it.
const (
	rpCallback = "http://127.0.0.1:9/callback"
	rpBye      = "http://127.0.0.1:9/bye"
)

// browser is a cookie-keeping HTTP client that follows Verdict's
// redirects and stops at the relying party's.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), base) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// page is a fetched page: where it ended, its status and body.
type page struct {
	url      *url.URL
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{url: resp.Request.URL, status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// submit posts the page's form (the first, or the one whose button has
// id button) with its hidden fields and fields.
func (b *browser) submit(p page, fields url.Values) page {
	b.t.Helper()
	action := regexp.MustCompile(`<form method="post" action="([^"]*)"`).FindStringSubmatch(p.body)
	if action == nil {
		b.t.Fatalf("no form on %s (%d):\n%s", p.url, p.status, p.body)
	}
	target, _ := p.url.Parse(html.UnescapeString(action[1]))
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(p.body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// serveSignIn runs verdict serve with the people policy and tokens.issuer
// set to its own URL.
func serveSignIn(t *testing.T, addr, dataDir string, extra string) (stop func(), logs *testutil.SyncBuffer) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "verdict.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\ntokens: {issuer: http://"+addr+"}\n"+extra)
	dir := bundleDir(t, map[string]string{"people.verdict.yaml": peoplePolicy})
	return serveArgs(t, addr, []string{"serve", "--config", cfg, "--addr", addr, "--bundle", dir, "--data-dir", dataDir})
}

// signInSetup adds a user and two clients (the web app, the gateway) to a
// new data dir and starts a server on it.
func signInSetup(t *testing.T) (base, appSecret, gwSecret string, stop func(), logs *testutil.SyncBuffer) {
	t.Helper()
	dataDir := t.TempDir()
	if code, out, errOut := cli(t, userPassword+"\n", "user", "add", "--email", "Ada@Example.com", "--name", "Ada", "--role", "editor", "--password-stdin", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "ada@example.com") {
		t.Fatalf("user add: %d %s %s", code, out, errOut)
	}
	code, out, errOut := cli(t, "", "client", "add", "--id", "webapp", "--name", "Web App", "--scope", "openid", "--scope", "profile", "--scope", "email",
		"--scope", "verdict:decide", "--scope", "verdict:admin", "--grant", "authorization_code", "--grant", "refresh_token",
		"--redirect-uri", rpCallback, "--post-logout-redirect-uri", rpBye, "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("client add webapp: %s %s", out, errOut)
	}
	appSecret = regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	code, out, errOut = cli(t, "", "client", "add", "--id", "gateway", "--scope", "verdict:decide", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("client add gateway: %s %s", out, errOut)
	}
	gwSecret = regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	stop, logs = serveSignIn(t, addr, dataDir, "")
	return "http://" + addr, appSecret, gwSecret, stop, logs
}

// pkce is one authorization request's secrets.
type pkce struct{ verifier, state, nonce string }

func newPKCE() pkce {
	return pkce{verifier: oauth2.GenerateVerifier(), state: rand.Text(), nonce: rand.Text()}
}

// login signs in on the login page p with password.
func (b *browser) login(p page, email, password string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `name="password"`) {
		b.t.Fatalf("not the sign-in page: %s %d\n%s", p.url, p.status, p.body)
	}
	return b.submit(p, url.Values{"email": {email}, "password": {password}})
}

// codeFrom reads the code from the redirect to the relying party.
func codeFrom(t *testing.T, p page, want pkce) string {
	t.Helper()
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, rpCallback+"?") {
		t.Fatalf("no redirect to the client: %d %s\n%s", p.status, p.location, p.body)
	}
	u, _ := url.Parse(p.location)
	q := u.Query()
	if q.Get("state") != want.state || q.Get("iss") == "" || q.Get("code") == "" {
		t.Fatalf("callback %s", p.location)
	}
	return q.Get("code")
}

func decideWithSubject(t *testing.T, base, gwSecret, subjectToken, action string) (int, map[string]any) {
	t.Helper()
	cc := clientcredentials.Config{ClientID: "gateway", ClientSecret: gwSecret, TokenURL: base + "/oauth2/token", Scopes: []string{"verdict:decide"}}
	body, _ := json.Marshal(map[string]any{"subject_token": subjectToken, "action": map[string]any{"name": action}, "resource": map[string]any{"type": "doc", "id": "1"}})
	resp, err := cc.Client(context.Background()).Post(base+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	return resp.StatusCode, d
}

// TestSignInCodeFlowEndToEnd drives the whole authorization-code flow
// with golang.org/x/oauth2 and coreos/go-oidc as the relying party,
// through the real HTML pages with a cookie jar, against a real verdict
// serve: sign-in, consent, code, tokens, ID token, userinfo, a decision
// with the user's token, a second factor, refresh, logout, and the
// negative cases of OAuth 2.1 and OpenID Connect.
func TestSignInCodeFlowEndToEnd(t *testing.T) {
	base, appSecret, gwSecret, stop, logs := signInSetup(t)
	defer stop()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := oauth2.Config{ClientID: "webapp", ClientSecret: appSecret, Endpoint: provider.Endpoint(), RedirectURL: rpCallback,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", "verdict:decide", "verdict:admin"}}
	idv := provider.Verifier(&oidc.Config{ClientID: "webapp"})
	authURL := func(p pkce, extra ...oauth2.AuthCodeOption) string {
		return conf.AuthCodeURL(p.state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.verifier), oidc.Nonce(p.nonce)}, extra...)...)
	}

	b := newBrowser(t, base)
	req1 := newPKCE()
	loginPage := b.get(authURL(req1))
	if loginPage.url.Path != "/login" || loginPage.status != 200 {
		t.Fatalf("no sign-in page: %s %d", loginPage.url, loginPage.status)
	}
	if csp := loginPage.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "form-action 'self' http://127.0.0.1:9") {
		t.Fatalf("page CSP %q", csp)
	}
	consent := b.login(loginPage, "ada@example.com", userPassword)
	if !strings.Contains(consent.body, "Web App") || !strings.Contains(consent.body, "see your email address") {
		t.Fatalf("no consent page: %d %s\n%s", consent.status, consent.url, consent.body)
	}
	if strings.Contains(consent.body, "verdict:admin") {
		t.Fatal("a user without the verdict:admin role is offered verdict:admin")
	}
	code := codeFrom(t, b.submit(consent, url.Values{"decision": {"allow"}}), req1)

	// The negative cases of the token endpoint first burn nothing but
	// the code they use.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("wrong verifier: %v", err)
	}
	// That attempt used the code: the right verifier now finds it spent.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(req1.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("a used code was redeemed: %v", err)
	}

	// A fresh request: the session and the consent are remembered, so the
	// browser goes straight back with a code.
	req2 := newPKCE()
	code = codeFrom(t, b.get(authURL(req2)), req2)
	other := conf
	other.RedirectURL = "http://127.0.0.1:9/other"
	if _, err := other.Exchange(ctx, code, oauth2.VerifierOption(req2.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("redirect_uri mismatch: %v", err)
	}
	req3 := newPKCE()
	code = codeFrom(t, b.get(authURL(req3)), req3)
	if _, err := conf.Exchange(ctx, code); err == nil || !strings.Contains(err.Error(), "code_verifier") {
		t.Fatalf("no verifier: %v", err)
	}

	req4 := newPKCE()
	code = codeFrom(t, b.get(authURL(req4)), req4)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(req4.verifier))
	if err != nil {
		t.Fatalf("exchange: %v\n%s", err, logs.String())
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := idv.Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc rejects the ID token: %v", err)
	}
	if idt.Nonce != req4.nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, req4.nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var idc struct {
		Email    string   `json:"email"`
		Name     string   `json:"name"`
		AMR      []string `json:"amr"`
		ACR      string   `json:"acr"`
		AuthTime int64    `json:"auth_time"`
		SID      string   `json:"sid"`
	}
	idt.Claims(&idc)
	if idc.Email != "ada@example.com" || idc.Name != "Ada" || strings.Join(idc.AMR, ",") != "pwd" || idc.AuthTime == 0 || idc.SID == "" || idc.ACR == "" {
		t.Fatalf("ID token claims %+v", idc)
	}
	if strings.Contains(tok.Extra("scope").(string), "verdict:admin") {
		t.Fatal("the user got verdict:admin without the role")
	}
	// A replay of a redeemed code revokes what it produced.
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(req4.verifier)); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay: %v", err)
	}
	if st, d := decideWithSubject(t, base, gwSecret, tok.AccessToken, "read"); st == 200 && d["decision"] == true {
		t.Fatalf("the replayed code's token still decides: %d %v", st, d)
	}

	// A clean flow: the user's token is the subject of a decision.
	req5 := newPKCE()
	code = codeFrom(t, b.get(authURL(req5)), req5)
	tok, err = conf.Exchange(ctx, code, oauth2.VerifierOption(req5.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if st, d := decideWithSubject(t, base, gwSecret, tok.AccessToken, "read"); st != 200 || d["decision"] != true {
		t.Fatalf("the user may not read: %d %v", st, d)
	}
	if st, d := decideWithSubject(t, base, gwSecret, tok.AccessToken, "delete"); st != 200 || d["decision"] != false {
		t.Fatalf("delete without a second factor: %d %v", st, d)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != "ada@example.com" || ui.Subject != idt.Subject {
		t.Fatalf("userinfo: %+v %v", ui, err)
	}

	// max_age=0 and prompt=login ask for a fresh sign-in: the user signs
	// in again once and the browser goes back with a code (no loop).
	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "0"), oauth2.SetAuthURLParam("prompt", "login")} {
		rq := newPKCE()
		again := b.get(authURL(rq, opt))
		if again.url.Path != "/login" {
			t.Fatalf("no fresh sign-in asked: %s", again.url)
		}
		code = codeFrom(t, b.login(again, "ada@example.com", userPassword), rq)
		if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(rq.verifier)); err != nil {
			t.Fatal(err)
		}
	}

	// Second factor: enrol on the account page, sign in again with it.
	enrol := b.get(base + "/account/mfa")
	m := regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(enrol.body)
	if m == nil || !strings.Contains(enrol.header.Get("Content-Security-Policy"), "img-src data:") {
		t.Fatalf("enrolment page: %d\n%s", enrol.status, enrol.body)
	}
	totpCode := func() string {
		c, _ := totp.GenerateCodeCustom(m[1], time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	rec := b.submit(enrol, url.Values{"code": {totpCode()}})
	if !strings.Contains(rec.body, `id="recovery-codes"`) {
		t.Fatalf("no recovery codes: %d\n%s", rec.status, rec.body)
	}
	recovery := regexp.MustCompile(`<li>([a-z2-9]{5}-[a-z2-9]{5})</li>`).FindStringSubmatch(rec.body)[1]

	b2 := newBrowser(t, base)
	req6 := newPKCE()
	mfaPage := b2.login(b2.get(authURL(req6)), "ada@example.com", userPassword)
	if mfaPage.url.Path != "/login/mfa" {
		t.Fatalf("no second-factor page: %s %d\n%s", mfaPage.url, mfaPage.status, mfaPage.body)
	}
	if wrong := b2.submit(mfaPage, url.Values{"code": {"000000"}}); wrong.status != 401 {
		t.Fatalf("wrong code: %d", wrong.status)
	}
	code = codeFrom(t, b2.submit(mfaPage, url.Values{"code": {recovery}}), req6)
	tok2, err := conf.Exchange(ctx, code, oauth2.VerifierOption(req6.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt2, err := idv.Verify(ctx, tok2.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	idt2.Claims(&idc)
	if !strings.Contains(strings.Join(idc.AMR, ","), "otp") || !strings.HasSuffix(idc.ACR, "mfa") {
		t.Fatalf("amr after MFA: %+v", idc)
	}
	if st, d := decideWithSubject(t, base, gwSecret, tok2.AccessToken, "delete"); st != 200 || d["decision"] != true {
		t.Fatalf("delete after MFA: %d %v", st, d)
	}
	// Refresh keeps who and how.
	fresh, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token()
	if err != nil || fresh.AccessToken == tok2.AccessToken {
		t.Fatalf("refresh: %v", err)
	}
	if st, d := decideWithSubject(t, base, gwSecret, fresh.AccessToken, "delete"); st != 200 || d["decision"] != true {
		t.Fatalf("delete with a refreshed token: %d %v", st, d)
	}

	// RP-initiated logout with the ID token: back to the registered
	// address with the state; the session's tokens are revoked.
	out := b2.get(base + "/oauth2/logout?" + url.Values{"id_token_hint": {tok2.Extra("id_token").(string)},
		"post_logout_redirect_uri": {rpBye}, "state": {"s1"}}.Encode())
	if out.status != 303 || out.location != rpBye+"?state=s1" {
		t.Fatalf("logout: %d %q\n%s", out.status, out.location, out.body)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
		t.Fatal("the session's refresh token works after logout")
	}
	if st, d := decideWithSubject(t, base, gwSecret, fresh.AccessToken, "read"); st == 200 && d["decision"] == true {
		t.Fatal("the session's access token decides after logout")
	}
	req7 := newPKCE()
	if p := b2.get(authURL(req7)); p.url.Path != "/login" {
		t.Fatalf("still signed in after logout: %s", p.url)
	}
	if out := b2.get(base + "/oauth2/logout?" + url.Values{"client_id": {"webapp"}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode()); out.status != 400 || out.location != "" {
		t.Fatalf("unregistered post-logout redirect: %d %q", out.status, out.location)
	}
}

// TestAuthorizeRefusals: what the authorization endpoint refuses, and
// where it says so: a page (never a redirect) when the client or
// redirect_uri cannot be trusted, the client's redirect_uri otherwise.
func TestAuthorizeRefusals(t *testing.T) {
	base, _, _, stop, _ := signInSetup(t)
	defer stop()
	b := newBrowser(t, base)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	q := func(mod func(url.Values)) string {
		v := url.Values{"response_type": {"code"}, "client_id": {"webapp"}, "redirect_uri": {rpCallback}, "scope": {"openid"},
			"state": {"st"}, "nonce": {"n"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		mod(v)
		return base + "/oauth2/authorize?" + v.Encode()
	}
	for name, mod := range map[string]func(url.Values){
		"unknown client":           func(v url.Values) { v.Set("client_id", "nope") },
		"unregistered redirect":    func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") },
		"redirect with extra path": func(v url.Values) { v.Set("redirect_uri", rpCallback+"/x") },
		"no redirect":              func(v url.Values) { v.Del("redirect_uri") },
	} {
		p := b.get(q(mod))
		if p.status != 400 || p.location != "" || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	for name, c := range map[string]struct {
		mod  func(url.Values)
		want string
	}{
		"no PKCE":       {func(v url.Values) { v.Del("code_challenge") }, "invalid_request"},
		"plain PKCE":    {func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		"implicit":      {func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		"no nonce":      {func(v url.Values) { v.Del("nonce") }, "invalid_request"},
		"foreign scope": {func(v url.Values) { v.Set("scope", "openid billing") }, "invalid_scope"},
		"prompt=none":   {func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
	} {
		p := b.get(q(c.mod))
		u, _ := url.Parse(p.location)
		if p.status != 303 || !strings.HasPrefix(p.location, rpCallback+"?") || u.Query().Get("error") != c.want || u.Query().Get("state") != "st" || u.Query().Get("iss") != base {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	// No password grant (OAuth 2.1).
	resp, err := http.PostForm(base+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"ada@example.com"}, "password": {userPassword}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "unsupported_grant_type") {
		t.Fatalf("password grant: %d %s", resp.StatusCode, body)
	}
}

// TestSignInLockoutPage: repeated wrong passwords lock the account with
// 429 and Retry-After, and an unknown email gets the very same answers.
func TestSignInLockoutPage(t *testing.T) {
	base, _, _, stop, _ := signInSetup(t)
	defer stop()
	answers := map[string][]string{}
	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		b := newBrowser(t, base)
		login := b.get(base + "/login")
		for i := 0; i < 5; i++ {
			p := b.login(login, email, "wrong password "+email)
			msg := regexp.MustCompile(`<p class="error" role="alert">([^<]*)</p>`).FindStringSubmatch(p.body)
			if msg == nil {
				t.Fatalf("%s: no message: %d\n%s", email, p.status, p.body)
			}
			answers[email] = append(answers[email], p.header.Get("Retry-After")+"|"+strings.Split(msg[1], " Try again")[0])
			if i == 4 && (p.status != 429 || p.header.Get("Retry-After") == "") {
				t.Fatalf("%s: no lockout: %d", email, p.status)
			}
			login = p
		}
		// Locked: the right password is refused too.
		if p := b.login(login, email, userPassword); p.status != 429 {
			t.Fatalf("%s: locked account signed in: %d", email, p.status)
		}
	}
	if strings.Join(answers["ada@example.com"], ";") != strings.Join(answers["nobody@example.com"], ";") {
		t.Fatalf("known and unknown accounts answer differently:\n%v\n%v", answers["ada@example.com"], answers["nobody@example.com"])
	}
}

// TestAdminUsersRoutes: /v1/admin/users… against a real server: add (a
// weak password and a taken email refused, nothing stored), list, get by
// id and by email, change, disable (sessions end), unlock, export (no
// secrets) and erase (tokens revoked, email free again); every answer to a
// bad request is the JSON error shape.
func TestAdminUsersRoutes(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "ops", "--scope", "verdict:admin", "--data-dir", dataDir)
	if code != 0 {
		t.Fatal(errOut)
	}
	opsSecret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	stop, _ := serveSignIn(t, addr, dataDir, "")
	defer stop()
	base := "http://" + addr
	admin := clientcredentials.Config{ClientID: "ops", ClientSecret: opsSecret, TokenURL: base + "/oauth2/token", Scopes: []string{"verdict:admin"}}
	hc := admin.Client(context.Background())
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	errCode := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(string)
		return c
	}
	if st, m := call("POST", "/v1/admin/users", `{"email":"ada@example.com","password":"short"}`); st != 400 || errCode(m) != "invalid_input" {
		t.Fatalf("weak password: %d %v", st, m)
	}
	if st, m := call("POST", "/v1/admin/users", `{"email":"ada@example.com","password":"`+userPassword+`","bogus":1}`); st != 400 {
		t.Fatalf("unknown member: %d %v", st, m)
	}
	st, u := call("POST", "/v1/admin/users", `{"email":"Ada@Example.com","name":"Ada","password":"`+userPassword+`","roles":["editor"]}`)
	if st != 201 || u["email"] != "ada@example.com" || u["password_hash"] != nil {
		t.Fatalf("add: %d %v", st, u)
	}
	id := u["id"].(string)
	if st, m := call("POST", "/v1/admin/users", `{"email":"ada@example.com","password":"`+userPassword+`"}`); st != 409 || errCode(m) != "conflict" {
		t.Fatalf("taken email: %d %v", st, m)
	}
	if st, m := call("GET", "/v1/admin/users", ""); st != 200 || len(m["users"].([]any)) != 1 {
		t.Fatalf("list: %d %v", st, m)
	}
	if st, m := call("GET", "/v1/admin/users/ada@example.com", ""); st != 200 || m["id"] != id {
		t.Fatalf("get by email: %d %v", st, m)
	}
	if st, m := call("GET", "/v1/admin/users/u_nobody", ""); st != 404 || errCode(m) != "not_found" {
		t.Fatalf("unknown: %d %v", st, m)
	}
	// A signed-in browser loses its session when the user is disabled.
	b := newBrowser(t, base)
	if p := b.login(b.get(base+"/login"), "ada@example.com", userPassword); p.url.Path != "/account" {
		t.Fatalf("sign-in: %s %d", p.url, p.status)
	}
	if st, m := call("PATCH", "/v1/admin/users/"+id, `{"status":"disabled","roles":["editor","writer"]}`); st != 200 || m["status"] != "disabled" {
		t.Fatalf("disable: %d %v", st, m)
	}
	if p := b.get(base + "/account"); p.url.Path != "/login" {
		t.Fatalf("the disabled user's session lives: %s", p.url)
	}
	if p := b.login(b.get(base+"/login"), "ada@example.com", userPassword); p.status != 401 {
		t.Fatalf("a disabled user signed in: %d", p.status)
	}
	if st, _ := call("PATCH", "/v1/admin/users/"+id, `{"status":"gone"}`); st != 400 {
		t.Fatalf("bad status: %d", st)
	}
	call("PATCH", "/v1/admin/users/"+id, `{"status":"active"}`)
	if st, _ := call("POST", "/v1/admin/users/"+id+"/unlock", ""); st != 204 {
		t.Fatalf("unlock: %d", st)
	}
	if st, _ := call("POST", "/v1/admin/users/"+id+"/password", `{"password":"`+userPassword+` again"}`); st != 204 {
		t.Fatalf("password: %d", st)
	}
	st, ex := call("GET", "/v1/admin/users/"+id+"/export", "")
	raw, _ := json.Marshal(ex)
	if st != 200 || ex["user"].(map[string]any)["email"] != "ada@example.com" || len(ex["audit_events"].([]any)) < 3 || strings.Contains(string(raw), "argon2") {
		t.Fatalf("export: %d %s", st, raw)
	}
	st, er := call("DELETE", "/v1/admin/users/"+id, "")
	if st != 200 || !strings.HasPrefix(er["pseudonym"].(string), "erased:") {
		t.Fatalf("erase: %d %v", st, er)
	}
	if st, _ := call("GET", "/v1/admin/users/"+id, ""); st != 404 {
		t.Fatalf("erased user still there: %d", st)
	}
	if st, _ := call("POST", "/v1/admin/users", `{"email":"ada@example.com","password":"`+userPassword+`"}`); st != 201 {
		t.Fatalf("the email is not free after erasure: %d", st)
	}
	// Without verdict:admin: 401.
	resp, err := http.Get(base + "/v1/admin/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}

// TestReplicasShareSessionsAndLockouts: two replicas on one Redis. A
// session started on one is live on the other, a logout on either ends
// it on both, and failed sign-ins on one lock the account on the other.
func TestReplicasShareSessionsAndLockouts(t *testing.T) {
	c := startCluster(t, 2, nil)
	if code, _, errOut := cli(t, userPassword+"\n", "user", "add", "--email", "ada@example.com", "--password-stdin", "--store", c.redis.URL()); code != 0 {
		t.Fatal(errOut)
	}
	r0, r1 := c.replicas[0].base, c.replicas[1].base
	// One browser: its cookies for 127.0.0.1 go to both replicas, as
	// behind one load balancer.
	b := newBrowser(t, "http://127.0.0.1")
	if p := b.login(b.get(r0+"/login"), "ada@example.com", userPassword); p.url.Path != "/account" || p.status != 200 {
		t.Fatalf("sign-in on replica 0: %s %d", p.url, p.status)
	}
	if p := b.get(r1 + "/account"); p.url.Path != "/account" || !strings.Contains(p.body, "ada@example.com") {
		t.Fatalf("the session is not live on replica 1: %s %d", p.url, p.status)
	}
	acct := b.get(r1 + "/account")
	if p := b.submit(acct, url.Values{}); !strings.Contains(p.body, "You are signed out") {
		t.Fatalf("sign-out on replica 1: %d\n%s", p.status, p.body)
	}
	if p := b.get(r0 + "/account"); p.url.Path != "/login" {
		t.Fatalf("the session ended on replica 1 lives on replica 0: %s", p.url)
	}
	// Five failures on replica 0 lock the account on replica 1.
	b2 := newBrowser(t, "http://127.0.0.1")
	login := b2.get(r0 + "/login")
	for i := 0; i < 5; i++ {
		login = b2.login(login, "ada@example.com", "wrong password number "+string(rune('a'+i)))
	}
	if login.status != 429 {
		t.Fatalf("no lockout on replica 0: %d", login.status)
	}
	if p := b2.login(b2.get(r1+"/login"), "ada@example.com", userPassword); p.status != 429 || p.header.Get("Retry-After") == "" {
		t.Fatalf("replica 1 does not know the lockout: %d", p.status)
	}
}
