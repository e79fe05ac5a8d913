package server

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/bundles"
)

// TestAutoDetectRetriesCountOnce drives the token route with
// golang.org/x/oauth2's default client (AuthStyleAutoDetect: Basic first,
// then form fields after any refusal). Each refused Token call is two
// requests, and must count as one failure: with a limit of 3, two wrong
// secrets leave the right one through, and the third wrong one throttles.
func TestAutoDetectRetriesCountOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 3, Window: time.Minute}
	h := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil), WithTokens(&fakeTokens{}, "http://x"))
	var requests int
	client := &http.Client{Transport: countingTransport{&requests}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	token := func(secret string) error {
		_, err := (&clientcredentials.Config{ClientID: "gw", ClientSecret: secret, TokenURL: h.url + tokenPath,
			AuthStyle: oauth2.AuthStyleAutoDetect}).Token(ctx)
		return err
	}
	for i := range 2 {
		if err := token("wrong"); err == nil {
			t.Fatalf("wrong secret %d accepted", i)
		}
	}
	if requests != 4 {
		t.Fatalf("the library sent %d requests for 2 refused Token calls, want 4 (Basic, then form fields)", requests)
	}
	if err := token("right"); err != nil {
		t.Fatalf("after two refused Token calls (four requests) under a limit of 3, the right secret: %v", err)
	}
	for range 2 {
		_ = token("wrong")
	}
	resp, m := formPost(t, h, "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=gw&client_secret=right")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after four refused Token calls the source is not throttled: %d %v", resp.StatusCode, m)
	}
}

// TestAuthProbeRetryIsOncePerRefusal: a retry passes uncounted only with
// the same credentials, the other way, soon, and only once.
func TestAuthProbeRetryIsOncePerRefusal(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 2, Window: time.Minute}
	h := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil), WithTokens(&fakeTokens{}, "http://x"))
	const form = "application/x-www-form-urlencoded"
	basic := func(secret string) int {
		resp, _ := formPost(t, h, form, "grant_type=client_credentials", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("gw:"+secret)))
		return resp.StatusCode
	}
	fields := func(secret string) int {
		resp, _ := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret="+secret)
		return resp.StatusCode
	}
	// Counted: 1 (basic a); free: fields a; counted: 2 (fields a again,
	// same way as the free one's memory is spent).
	if basic("a") != 401 || fields("a") != 401 || fields("a") != 401 {
		t.Fatal("refusals expected")
	}
	if got := fields("b"); got != 429 {
		t.Fatalf("a third counted failure: %d, want 429 (the second retry of the same secret must count)", got)
	}
}

type countingTransport struct{ n *int }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	*c.n++
	return http.DefaultTransport.RoundTrip(r)
}
