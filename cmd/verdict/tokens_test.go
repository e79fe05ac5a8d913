package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/internal/testutil"
)

// TestClientCredentialsEndToEnd: a client added with the CLI gets a token
// from a running server through golang.org/x/oauth2, and golang-jwt verifies
// it against the server's JWKS.
func TestClientCredentialsEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "gateway", "--scope", "verdict:decide", "--scope", "read", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("client add: %d %s", code, errOut)
	}
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret printed: %s", out)
	}
	secret := m[1]
	if code, out, _ := cli(t, "", "client", "list", "--data-dir", dataDir); code != 0 || strings.Contains(out, secret) || !strings.Contains(out, "gateway") {
		t.Fatalf("client list: %d %s", code, out)
	}

	addr := freeAddr(t)
	// A production setup: the bundle is signed and its key configured.
	dir, cfg := signedBundle(t, map[string]string{"p.verdict.yaml": policy})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var sout, serr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--addr", addr, "--bundle", dir, "--data-dir", dataDir}, strings.NewReader(""), &sout, &serr)
	}()
	defer func() {
		cancel()
		<-done
		if strings.Contains(serr.String(), secret) {
			t.Error("the client secret was logged")
		}
	}()
	base := "http://" + addr
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	var meta map[string]any
	getJSON(t, base+"/.well-known/oauth-authorization-server", &meta)
	if meta["token_endpoint"] != base+"/oauth2/token" {
		t.Fatalf("metadata: %v", meta)
	}
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: "gateway", ClientSecret: secret, TokenURL: meta["token_endpoint"].(string), Scopes: []string{"verdict:decide"}, AuthStyle: style}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("auth style %v: %v\n%s", style, err, serr.String())
		}
		var jwks struct {
			Keys []map[string]string `json:"keys"`
		}
		getJSON(t, meta["jwks_uri"].(string), &jwks)
		parsed, err := gojwt.Parse(tok.AccessToken, func(tk *gojwt.Token) (any, error) {
			for _, k := range jwks.Keys {
				if k["kid"] == tk.Header["kid"] {
					x, _ := base64.RawURLEncoding.DecodeString(k["x"])
					y, _ := base64.RawURLEncoding.DecodeString(k["y"])
					return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}, nil
				}
			}
			return nil, gojwt.ErrTokenUnverifiable
		}, gojwt.WithValidMethods([]string{"ES256"}), gojwt.WithIssuer(base), gojwt.WithAudience("verdict"), gojwt.WithExpirationRequired())
		if err != nil {
			t.Fatalf("golang-jwt rejects the token: %v", err)
		}
		if c := parsed.Claims.(gojwt.MapClaims); c["client_id"] != "gateway" || c["scope"] != "verdict:decide" || parsed.Header["typ"] != "at+jwt" {
			t.Fatalf("token: %v %v", parsed.Header, c)
		}
	}
	// The token is what /v1/decide wants; without one the answer is 401.
	cc := clientcredentials.Config{ClientID: "gateway", ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{"verdict:decide"}}
	decide := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	resp, err := cc.Client(context.Background()).Post(base+"/v1/decide", "application/json", strings.NewReader(decide))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || d["decision"] != true {
		t.Fatalf("decide with the token: %d %v", resp.StatusCode, d)
	}
	resp, err = http.Post(base+"/v1/decide", "application/json", strings.NewReader(decide))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("decide without a token: %d %v", resp.StatusCode, resp.Header)
	}
	// Introspection sees it active; after revocation it is inactive and
	// /v1/decide refuses it at once.
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	form := func(path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("gateway", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := form("/oauth2/introspect", "token="+tok.AccessToken); code != 200 || !strings.Contains(body, `"active":true`) || !strings.Contains(body, `"client_id":"gateway"`) {
		t.Fatalf("introspect: %d %s", code, body)
	}
	if code, body := form("/oauth2/revoke", "token="+tok.AccessToken); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, body := form("/oauth2/introspect", "token="+tok.AccessToken); code != 200 || body != `{"active":false}` {
		t.Fatalf("introspect after revoke: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/decide", strings.NewReader(decide))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a revoked token was accepted: %d", resp.StatusCode)
	}
	// A token with only another scope is refused with 403.
	other := clientcredentials.Config{ClientID: "gateway", ClientSecret: secret, TokenURL: base + "/oauth2/token", Scopes: []string{"read"}}
	resp, err = other.Client(context.Background()).Post(base+"/v1/decide", "application/json", strings.NewReader(decide))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("decide with the wrong scope: %d", resp.StatusCode)
	}
	bad := clientcredentials.Config{ClientID: "gateway", ClientSecret: "wrong", TokenURL: base + "/oauth2/token"}
	if _, err := bad.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("a wrong secret: %v", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// serveAt runs `verdict serve` on addr over dataDir until the returned stop
// is called; it waits until the server answers.
func serveAt(t *testing.T, addr, dataDir string) (stop func()) {
	t.Helper()
	stop, _ = serveWith(t, addr, dataDir)
	return stop
}

// serveWith is serveAt with more serve arguments; logs is what the server
// writes to stderr.
func serveWith(t *testing.T, addr, dataDir string, args ...string) (stop func(), logs *testutil.SyncBuffer) {
	t.Helper()
	dir := bundleDir(t, map[string]string{"p.verdict.yaml": policy})
	return serveArgs(t, addr, append([]string{"serve", "--config", unsignedOK(t), "--addr", addr, "--bundle", dir, "--data-dir", dataDir}, args...))
}

// serveArgs runs the verdict command args (a serve listening on addr)
// until the returned stop is called; it waits until the server answers
// /readyz with 200.
func serveArgs(t *testing.T, addr string, args []string) (stop func(), logs *testutil.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var sout bytes.Buffer
	serr := &testutil.SyncBuffer{}
	go func() {
		done <- run(ctx, args, strings.NewReader(""), &sout, serr)
	}()
	for i := 0; i < 300; i++ {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				cancel()
				<-done
				t.Fatalf("serve is not ready (%d): %s", resp.StatusCode, serr.String())
			}
			return func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("serve exit %d: %s", code, serr.String())
				}
			}, serr
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	t.Fatalf("serve never answered: %s", serr.String())
	return nil, nil
}

// TestStateSurvivesRestart: a revoked token stays revoked, and the signing
// key and clients stay the same, across a restart on the same data dir.
func TestStateSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	_, out, _ := cli(t, "", "client", "add", "--id", "gw", "--scope", "verdict:decide", "--data-dir", dataDir)
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	base := "http://" + addr
	cc := clientcredentials.Config{ClientID: "gw", ClientSecret: secret, TokenURL: base + "/oauth2/token"}
	decide := func(tok string) int { return decideStatus(t, base, tok, "alice") }
	stop := serveAt(t, addr, dataDir)
	revoked, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kept, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	revokeToken(t, base, "gw", secret, revoked.AccessToken)
	stop()

	stop = serveAt(t, addr, dataDir)
	defer stop()
	if code := decide(revoked.AccessToken); code != 401 {
		t.Fatalf("the revoked token works again after a restart: %d", code)
	}
	if code := decide(kept.AccessToken); code != 200 {
		t.Fatalf("a token from before the restart (same key) is refused: %d", code)
	}
	if _, err := cc.Token(context.Background()); err != nil {
		t.Fatalf("the client's secret stopped working after a restart: %v", err)
	}
}

// TestPrivateKeyJWTEndToEnd: a client registered with only a public JWKS
// gets a token with a signed assertion; replaying the assertion fails.
func TestPrivateKeyJWTEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := dataDir + "/svc.jwks"
	writeFile(t, jwksFile, ecJWKS(&priv.PublicKey, "svc-1"))
	if code, out, errOut := cli(t, "", "client", "add", "--id", "svc", "--scope", "verdict:decide", "--jwks", jwksFile, "--no-secret", "--data-dir", dataDir); code != 0 || strings.Contains(out, "client_secret") {
		t.Fatalf("client add --no-secret: %d %s %s", code, out, errOut)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	stop := serveAt(t, addr, dataDir)
	defer stop()

	now := time.Now()
	tok := gojwt.NewWithClaims(gojwt.SigningMethodES256, gojwt.MapClaims{
		"iss": "svc", "sub": "svc", "aud": base + "/oauth2/token",
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "assert-1",
	})
	tok.Header["kid"] = "svc-1"
	assertion, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	form := "grant_type=client_credentials&client_id=svc&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + assertion
	post := func() (int, map[string]any) {
		resp, err := http.Post(base+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := post()
	if code != 200 || m["access_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", code, m)
	}
	if code, m := post(); code != 401 || m["error"] != "invalid_client" {
		t.Fatalf("a replayed assertion: %d %v", code, m)
	}
	var meta map[string]any
	getJSON(t, base+"/.well-known/oauth-authorization-server", &meta)
	if !strings.Contains(fmt.Sprint(meta["token_endpoint_auth_methods_supported"]), "private_key_jwt") {
		t.Fatalf("metadata: %v", meta)
	}
	// RFC 8414 §2: with private_key_jwt the signing algorithms are listed.
	if algs := fmt.Sprint(meta["token_endpoint_auth_signing_alg_values_supported"]); !strings.Contains(algs, "ES256") || strings.Contains(algs, "HS256") {
		t.Fatalf("token_endpoint_auth_signing_alg_values_supported: %v", algs)
	}
}

// ecJWKS is the JWK set of one P-256 public key.
func ecJWKS(pub *ecdsa.PublicKey, kid string) string {
	b64 := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	return fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","x":%q,"y":%q,"kid":%q,"alg":"ES256","use":"sig"}]}`, b64(pub.X), b64(pub.Y), kid)
}

// decideStatus is the status of a decision, with bearer token tok, on
// whether user may read a document user owns.
func decideStatus(t testing.TB, base, tok, user string) int {
	t.Helper()
	d, err := decideAs(http.DefaultClient, base, tok, user, user)
	if err != nil {
		t.Fatal(err)
	}
	return d.status
}

// revokeToken revokes token at base as client id with secret, and fails
// unless the answer is 200.
func revokeToken(t testing.TB, base, id, secret, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}
