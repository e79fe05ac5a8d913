package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

// relyingParty is a web app that signs its users in through Verdict with
// golang.org/x/oauth2 and go-oidc: /start sends the browser to Verdict,
// /callback redeems the code and shows who signed in, /logout sends the
// browser to Verdict's end_session_endpoint, /bye is where it comes back.
type relyingParty struct {
	srv  *httptest.Server
	mu   sync.Mutex
	conf oauth2.Config
	prov *oidc.Provider
	// one pending request at a time: the test drives one browser.
	verifier, state, nonce, idToken string
}

func newRelyingParty() *relyingParty {
	rp := &relyingParty{}
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		rp.verifier, rp.state, rp.nonce = oauth2.GenerateVerifier(), newPKCE().state, newPKCE().nonce
		http.Redirect(w, r, rp.conf.AuthCodeURL(rp.state, oauth2.S256ChallengeOption(rp.verifier), oidc.Nonce(rp.nonce)), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		q := r.URL.Query()
		if e := q.Get("error"); e != "" {
			fmt.Fprintf(w, "<p id=result>error %s</p>", e)
			return
		}
		if q.Get("state") != rp.state {
			http.Error(w, "state mismatch", 400)
			return
		}
		tok, err := rp.conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(rp.verifier))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), 500)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := rp.prov.Verifier(&oidc.Config{ClientID: rp.conf.ClientID}).Verify(r.Context(), raw)
		if err != nil || idt.Nonce != rp.nonce || idt.VerifyAccessToken(tok.AccessToken) != nil {
			http.Error(w, fmt.Sprintf("id token: %v", err), 500)
			return
		}
		rp.idToken = raw
		var c struct {
			Email string   `json:"email"`
			AMR   []string `json:"amr"`
		}
		idt.Claims(&c)
		fmt.Fprintf(w, "<p id=result>signed in as %s with %s</p>", c.Email, strings.Join(c.AMR, "+"))
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		end := rp.prov.Endpoint().AuthURL[:strings.Index(rp.prov.Endpoint().AuthURL, "/oauth2/")] + "/oauth2/logout"
		http.Redirect(w, r, end+"?id_token_hint="+rp.idToken+"&post_logout_redirect_uri="+rp.srv.URL+"/bye&state=bye1", http.StatusFound)
	})
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<p id=result>bye %s</p>", r.URL.Query().Get("state"))
	})
	rp.srv = httptest.NewServer(mux)
	return rp
}

// TestSignInInChromium: the sign-in, consent, second-factor enrolment,
// second-factor sign-in, lockout message and both logouts, in a real
// headless Chromium against a real verdict serve and a relying party
// built on golang.org/x/oauth2 and go-oidc. No page may trip its own
// Content-Security-Policy.
func TestSignInInChromium(t *testing.T) {
	b := startBrowser(t, 3*time.Minute)
	ctx := b.ctx
	rp := newRelyingParty()
	defer rp.srv.Close()

	dataDir := t.TempDir()
	if code, _, errOut := cli(t, userPassword+"\n", "user", "add", "--email", "ada@example.com", "--role", "editor", "--password-stdin", "--data-dir", dataDir); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := cli(t, "", "client", "add", "--id", "rp", "--name", "Example RP", "--scope", "openid", "--scope", "email",
		"--grant", "authorization_code", "--redirect-uri", rp.srv.URL+"/callback", "--post-logout-redirect-uri", rp.srv.URL+"/bye", "--data-dir", dataDir)
	if code != 0 {
		t.Fatal(errOut)
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	stop, logs := serveSignIn(t, addr, dataDir, "")
	defer stop()
	base := "http://" + addr
	prov, err := oidc.NewProvider(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	rp.prov = prov
	rp.conf = oauth2.Config{ClientID: "rp", ClientSecret: secret, Endpoint: prov.Endpoint(), RedirectURL: rp.srv.URL + "/callback", Scopes: []string{oidc.ScopeOpenID, "email"}}

	b.logs = logs.String
	text, run, submit := b.text, b.run, b.submit
	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	signIn := func(password string) {
		t.Helper()
		submit("sign in", chromedp.WaitVisible(id("email")), chromedp.Clear(id("email")),
			chromedp.SendKeys(id("email"), "ada@example.com"),
			chromedp.SendKeys(id("password"), password),
			chromedp.Click(id("sign-in")))
	}

	// Sign in, allow, and the app knows who signed in.
	run("start", chromedp.Navigate(rp.srv.URL+"/start"))
	signIn(userPassword)
	submit("consent", chromedp.WaitVisible(id("allow")), chromedp.Click(id("allow")))
	if got := text("#result"); got != "signed in as ada@example.com with pwd" {
		t.Fatalf("app says %q", got)
	}

	// Enrol an authenticator app on the account page.
	run("enrol", chromedp.Navigate(base+"/account/mfa"))
	secretKey := text("#secret")
	qrLoaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("qr").naturalWidth > 0`))
	if err != nil || !qrLoaded {
		t.Fatal("the QR code did not load (CSP img-src?)")
	}
	totpNow := func() string {
		c, _ := totp.GenerateCodeCustom(secretKey, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	submit("confirm", chromedp.SendKeys(id("code"), totpNow()), chromedp.Click(id("confirm")))
	if codes := text("#recovery-codes"); len(strings.Fields(codes)) != 10 {
		t.Fatalf("recovery codes %q", codes)
	}
	run("account", chromedp.Navigate(base+"/account"))
	if !strings.Contains(text("#mfa-on"), "Recovery codes left: 10") {
		t.Fatal("the account page does not show the second factor")
	}
	submit("sign out", chromedp.Click(id("sign-out")))
	if got := text("h1"); got != "Signed out" {
		t.Fatalf("after sign-out: %q", got)
	}

	// Sign in again: now with the second factor. Wait for the next TOTP
	// step so that the enrolment's code is not reused.
	time.Sleep(time.Until(time.Now().Truncate(30 * time.Second).Add(30*time.Second + 500*time.Millisecond)))
	run("start again", chromedp.Navigate(rp.srv.URL+"/start"))
	signIn(userPassword)
	submit("second factor", chromedp.WaitVisible(id("code")),
		chromedp.SendKeys(id("code"), totpNow()), chromedp.Click(id("verify")))
	if got := text("#result"); got != "signed in as ada@example.com with pwd+otp+mfa" {
		t.Fatalf("app says %q", got)
	}

	// RP-initiated logout comes back to the app with its state.
	run("rp logout", chromedp.Navigate(rp.srv.URL+"/logout"))
	if got := text("#result"); got != "bye bye1" {
		t.Fatalf("after logout: %q", got)
	}

	// Wrong passwords: the lockout message.
	run("start locked", chromedp.Navigate(rp.srv.URL+"/start"))
	for i := 0; i < 5; i++ {
		signIn("not the password " + fmt.Sprint(i))
	}
	if msg := text(".error"); !strings.Contains(msg, "Too many failed sign-ins") {
		t.Fatalf("lockout message %q", msg)
	}
	b.noViolations()
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }
