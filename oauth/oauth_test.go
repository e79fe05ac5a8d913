package oauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

func newTokenService(t *testing.T) (*TokenService, *Clients) {
	t.Helper()
	ring, err := authn.NewKeyring(authn.DefaultKeyConfig(), newMemStore(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	iss, err := NewTokenIssuer(IssuerConfig{Issuer: "https://verdict.test", Audience: "verdict", AccessTokenTTL: 5 * time.Minute}, ring, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	pepper, _ := NewPepper()
	cs, err := NewClients(newMemClientStore(), pepper, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return NewTokenService(cs, iss, time.Now), cs
}

func TestClientCredentials(t *testing.T) {
	ts, cs := newTokenService(t)
	ctx := context.Background()
	_, secret, err := cs.Add(ctx, ClientSpec{ID: "gw", Scopes: []string{"verdict:decide", "read"}})
	if err != nil {
		t.Fatal(err)
	}
	_, rsecret, err := cs.Add(ctx, ClientSpec{ID: "rt", Scopes: []string{"read"}, Grants: []string{GrantRefreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Token(ctx, TokenRequest{GrantType: GrantClientCredentials, ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.TokenType != "Bearer" || resp.Scope != "verdict:decide read" || resp.ExpiresIn != 300 || strings.Count(resp.AccessToken, ".") != 2 {
		t.Fatalf("response: %+v", resp)
	}
	resp, err = ts.Token(ctx, TokenRequest{GrantType: GrantClientCredentials, Scope: "read", ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}})
	if err != nil || resp.Scope != "read" {
		t.Fatalf("narrowed scope: %+v %v", resp, err)
	}
	cases := []struct {
		name string
		req  TokenRequest
		code string
	}{
		{"no grant type", TokenRequest{ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}}, OAuthInvalidRequest},
		{"unknown grant type", TokenRequest{GrantType: "password", ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}}, OAuthUnsupportedGrantType},
		{"refresh not enabled", TokenRequest{GrantType: GrantRefreshToken, ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}}, OAuthUnsupportedGrantType},
		{"wrong secret", TokenRequest{GrantType: GrantClientCredentials, ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: "nope"}}, OAuthInvalidClient},
		{"unknown client", TokenRequest{GrantType: GrantClientCredentials, ClientCredentials: ClientCredentials{ClientID: "who", ClientSecret: secret}}, OAuthInvalidClient},
		{"no credentials", TokenRequest{GrantType: GrantClientCredentials}, OAuthInvalidClient},
		{"scope not granted", TokenRequest{GrantType: GrantClientCredentials, Scope: "verdict:admin", ClientCredentials: ClientCredentials{ClientID: "gw", ClientSecret: secret}}, OAuthInvalidScope},
		{"grant not allowed", TokenRequest{GrantType: GrantClientCredentials, ClientCredentials: ClientCredentials{ClientID: "rt", ClientSecret: rsecret}}, OAuthUnauthorizedClient},
	}
	for _, tc := range cases {
		_, err := ts.Token(ctx, tc.req)
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != tc.code {
			t.Errorf("%s: want %s, got %v", tc.name, tc.code, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the secret", tc.name)
		}
	}
}
