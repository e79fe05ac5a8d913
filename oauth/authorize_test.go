package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// boltCodes is the embedded store's codes as the Authorizer needs them.
type boltCodes struct{ b *store.Bolt }

func (s boltCodes) CreateCode(ctx context.Context, c AuthCode) error {
	return s.b.CreateCode(ctx, store.DefaultNamespace, store.AuthCode(c))
}

func (s boltCodes) RedeemCode(ctx context.Context, hash, family, jti string) (AuthCode, bool, error) {
	c, first, err := s.b.RedeemCode(ctx, store.DefaultNamespace, hash, family, jti)
	if errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("%w: %w", ErrUnknownCode, err)
	}
	return AuthCode(c), first, err
}

// people is the users the Authorizer sees.
type people struct {
	mu       sync.Mutex
	users    map[string]users.User
	dead     map[string]bool
	families map[string]users.UserFamily
}

func (p *people) Get(_ context.Context, id string) (users.User, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[id]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	return u, nil
}

func (p *people) SessionLive(_ context.Context, id string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.dead[id], nil
}

func (p *people) RecordFamily(_ context.Context, _ string, f users.UserFamily) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.families[f.Family] = f
	return nil
}

type azEnv struct {
	*rfEnv
	az      *Authorizer
	clients *Clients
	people  *people
}

var webApp = ClientSpec{ID: "web", Scopes: []string{"openid", "email", "profile", "verdict:decide", "verdict:admin"},
	Grants: []string{GrantAuthorizationCode, GrantRefreshToken}, RedirectURIs: []string{"https://app.example/cb", "com.example.app:/cb"}}

func newAZEnv(t *testing.T) *azEnv {
	t.Helper()
	env := newRFEnv(t)
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{Now: env.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	clients := newTestClients(t, newMemClientStore(), make([]byte, 32), env.clk)
	if _, _, err := clients.Add(context.Background(), webApp); err != nil {
		t.Fatal(err)
	}
	p := &people{users: map[string]users.User{
		"u1": {ID: "u1", Email: "ada@example.com", Name: "Ada", Status: users.StatusActive, Roles: []string{"editor"}},
		"u2": {ID: "u2", Email: "root@example.com", Status: users.StatusActive, Roles: []string{"verdict:admin"}},
		"u3": {ID: "u3", Email: "gone@example.com", Status: users.StatusActive},
	}, dead: map[string]bool{"ses-u3": true}, families: map[string]users.UserFamily{}}
	ids := NewIDTokenIssuer(selfIss, env.ring, 5*time.Minute, env.clk.Now)
	az, err := NewAuthorizer(selfIss, clients, boltCodes{b}, p, env.rf, ids, env.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &azEnv{rfEnv: env, az: az, clients: clients, people: p}
}

func validRequest(verifier string) AuthorizeRequest {
	return AuthorizeRequest{ResponseType: "code", ClientID: "web", RedirectURI: "https://app.example/cb", Scope: "openid email verdict:admin",
		State: "s", Nonce: "n", CodeChallenge: oauth2.S256ChallengeFromVerifier(verifier), CodeChallengeMethod: "S256"}
}

// code runs Check and IssueCode for user and returns the code.
func (e *azEnv) code(t *testing.T, user, verifier string) string {
	t.Helper()
	az, err := e.az.Check(context.Background(), validRequest(verifier))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := e.people.Get(context.Background(), user)
	loc, err := e.az.IssueCode(context.Background(), az, SignIn{User: u, SessionID: "ses-" + user, AuthTime: e.clk.Now(), AMR: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(loc)
	if q.Query().Get("state") != "s" || q.Query().Get("iss") != selfIss {
		t.Fatalf("redirect %s", loc)
	}
	return q.Query().Get("code")
}

func TestCheckRedirectURI(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://app.example/cb":          true,
		"http://127.0.0.1:8080/cb":        true,
		"http://localhost/cb":             true,
		"http://[::1]/cb":                 true,
		"com.example.app:/oauth2redirect": true,
		"http://app.example/cb":           false,
		"https://app.example/cb#frag":     false,
		"https://*.example/cb":            false,
		"/relative":                       false,
		"https://user:pw@app.example/cb":  false,
		"myapp:/cb":                       false,
		"javascript:alert(1)":             false,
	} {
		if err := CheckRedirectURI(raw); (err == nil) != ok {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

func TestRedeemCode(t *testing.T) {
	e := newAZEnv(t)
	ctx := context.Background()
	web, _ := e.clients.Lookup(ctx, "web")
	v := oauth2.GenerateVerifier()
	code := e.code(t, "u1", v)
	resp, err := e.az.Redeem(ctx, web, CodeRequest{Code: code, RedirectURI: "https://app.example/cb", CodeVerifier: v}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.IDToken == "" || resp.RefreshToken == "" || strings.Contains(resp.Scope, "verdict:admin") {
		t.Fatalf("response %+v", resp)
	}
	claims := mustVerify(t, e.v, resp.AccessToken)
	if claims.Subject() != "u1" || claims["acr"] != ACRPassword || claims["email"] != "ada@example.com" {
		t.Fatalf("access token claims %v", claims)
	}
	if len(e.people.families) != 1 {
		t.Fatalf("family not recorded: %v", e.people.families)
	}
	// A replay is refused and revokes the access token.
	if _, err := e.az.Redeem(ctx, web, CodeRequest{Code: code, RedirectURI: "https://app.example/cb", CodeVerifier: v}, nil); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay: %v", err)
	}
	if _, err := e.v.Verify(ctx, resp.AccessToken); err == nil {
		t.Fatal("the replayed code's access token still verifies")
	}
	// A user holding the role gets Verdict's own scope.
	v2 := oauth2.GenerateVerifier()
	resp, err = e.az.Redeem(ctx, web, CodeRequest{Code: e.code(t, "u2", v2), RedirectURI: "https://app.example/cb", CodeVerifier: v2}, nil)
	if err != nil || !strings.Contains(resp.Scope, "verdict:admin") {
		t.Fatalf("role-holder: %+v %v", resp, err)
	}
	cases := map[string]func() (CodeRequest, Client){
		"wrong verifier": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			return CodeRequest{Code: e.code(t, "u1", v), RedirectURI: "https://app.example/cb", CodeVerifier: oauth2.GenerateVerifier()}, web
		},
		"short verifier": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			return CodeRequest{Code: e.code(t, "u1", v), RedirectURI: "https://app.example/cb", CodeVerifier: "abc"}, web
		},
		"other redirect": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			return CodeRequest{Code: e.code(t, "u1", v), RedirectURI: "com.example.app:/cb", CodeVerifier: v}, web
		},
		"other client": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			return CodeRequest{Code: e.code(t, "u1", v), RedirectURI: "https://app.example/cb", CodeVerifier: v}, Client{ID: "other"}
		},
		"made-up code": func() (CodeRequest, Client) {
			return CodeRequest{Code: "vc_nothing", RedirectURI: "https://app.example/cb", CodeVerifier: oauth2.GenerateVerifier()}, web
		},
		"expired code": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			c := e.code(t, "u1", v)
			e.clk.Advance(61 * time.Second)
			return CodeRequest{Code: c, RedirectURI: "https://app.example/cb", CodeVerifier: v}, web
		},
		"ended session": func() (CodeRequest, Client) {
			v := oauth2.GenerateVerifier()
			return CodeRequest{Code: e.code(t, "u3", v), RedirectURI: "https://app.example/cb", CodeVerifier: v}, web
		},
	}
	for name, mk := range cases {
		req, cl := mk()
		_, err := e.az.Redeem(ctx, cl, req, nil)
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != OAuthInvalidGrant {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestIDTokenHashes(t *testing.T) {
	// OpenID Connect Core §3.1.3.6's example: the at_hash of this token
	// with RS256 (SHA-256) is 77QmUPtjPfzWtF2AnpK9RQ.
	got, err := tokenHash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y")
	if err != nil || got != "77QmUPtjPfzWtF2AnpK9RQ" {
		t.Fatalf("at_hash %q %v", got, err)
	}
	if _, err := tokenHash("HS256", "x"); err == nil {
		t.Fatal("an unknown alg hashed")
	}
}

// TestPublicClients: a public client names itself at the token endpoint
// for the code flow and nothing else; a confidential one still must
// authenticate; a public client may not introspect.
func TestPublicClients(t *testing.T) {
	e := newAZEnv(t)
	ctx := context.Background()
	if _, secret, err := e.clients.Add(ctx, ClientSpec{ID: "spa", Public: true, Scopes: []string{"openid"},
		Grants: []string{GrantAuthorizationCode, GrantRefreshToken}, RedirectURIs: []string{"http://localhost:5173/cb"}}); err != nil || secret != "" {
		t.Fatalf("add public: %q %v", secret, err)
	}
	ts := NewTokenService(e.clients, e.iss, e.clk.Now, WithRefresh(e.rf), WithRevocation(e.rv, e.in), WithAuthorizationCode(e.az, nil))
	v := oauth2.GenerateVerifier()
	req := validRequest(v)
	req.ClientID, req.RedirectURI, req.Scope = "spa", "http://localhost:5173/cb", "openid"
	az, err := e.az.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := e.people.Get(ctx, "u1")
	loc, err := e.az.IssueCode(ctx, az, SignIn{User: u, SessionID: "ses-u1", AuthTime: e.clk.Now(), AMR: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(loc)
	resp, err := ts.Token(ctx, TokenRequest{GrantType: GrantAuthorizationCode, ClientCredentials: ClientCredentials{ClientID: "spa"},
		Code: q.Query().Get("code"), RedirectURI: "http://localhost:5173/cb", CodeVerifier: v})
	if err != nil || resp.AccessToken == "" || resp.RefreshToken == "" || resp.IDToken == "" {
		t.Fatalf("public code flow: %+v %v", resp, err)
	}
	wantCode := func(what string, err error, code string) {
		t.Helper()
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != code {
			t.Errorf("%s: want %s, got %v", what, code, err)
		}
	}
	_, err = ts.Token(ctx, TokenRequest{GrantType: GrantClientCredentials, ClientCredentials: ClientCredentials{ClientID: "spa"}})
	wantCode("public client_credentials", err, OAuthUnauthorizedClient)
	_, err = ts.Introspect(ctx, ClientCredentials{ClientID: "spa"}, resp.AccessToken)
	wantCode("public introspection", err, OAuthInvalidClient)
	_, err = ts.Token(ctx, TokenRequest{GrantType: GrantAuthorizationCode, ClientCredentials: ClientCredentials{ClientID: "web"}, Code: "vc_x", RedirectURI: "https://app.example/cb", CodeVerifier: v})
	wantCode("confidential client without its secret", err, OAuthInvalidClient)
	_, err = ts.Token(ctx, TokenRequest{GrantType: "password", ClientCredentials: ClientCredentials{ClientID: "spa"}})
	wantCode("password grant", err, OAuthUnsupportedGrantType)
	if got := ts.GrantTypes(); !strings.Contains(strings.Join(got, " "), GrantAuthorizationCode) {
		t.Fatalf("grant types %v", got)
	}
	for name, spec := range map[string]ClientSpec{
		"public with client_credentials":  {ID: "p1", Public: true, Scopes: []string{"openid"}, Grants: []string{GrantAuthorizationCode, GrantClientCredentials}, RedirectURIs: []string{"https://a.example/cb"}},
		"public without the code grant":   {ID: "p2", Public: true, Scopes: []string{"openid"}, Grants: []string{GrantRefreshToken}},
		"code grant without redirect":     {ID: "p3", Scopes: []string{"openid"}, Grants: []string{GrantAuthorizationCode}},
		"wildcard redirect":               {ID: "p4", Scopes: []string{"openid"}, Grants: []string{GrantAuthorizationCode}, RedirectURIs: []string{"https://*.example/cb"}},
		"redirect without the code grant": {ID: "p5", Scopes: []string{"openid"}, RedirectURIs: []string{"https://a.example/cb"}},
	} {
		if err := spec.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
