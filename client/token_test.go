package client

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestEffectiveMargin(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		margin, life, want time.Duration
	}{
		{30 * time.Second, 5 * time.Minute, 30 * time.Second},  // the margin
		{30 * time.Second, 20 * time.Second, 10 * time.Second}, // half a short lifetime
		{0, 5 * time.Minute, 0},                                // at expiry
		{30 * time.Second, 0, 0},                               // no lifetime known
	} {
		if got := effectiveMargin(tc.margin, t0, t0.Add(tc.life)); got != tc.want {
			t.Errorf("margin %s, lifetime %s: %s, want %s", tc.margin, tc.life, got, tc.want)
		}
	}
}

// fakeFetch hands out tok-1, tok-2, ... living life each, after release
// is closed (nil: at once).
type fakeFetch struct {
	life    time.Duration
	release chan struct{}
	n       atomic.Int32
}

func (f *fakeFetch) fetch(ctx context.Context) (*oauth2.Token, error) {
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n := f.n.Add(1)
	return &oauth2.Token{AccessToken: "tok-" + string(rune('0'+n)), Expiry: time.Now().Add(f.life)}, nil
}

func TestTokenCacheRefreshesWithinMargin(t *testing.T) {
	f := &fakeFetch{life: 20 * time.Second}
	tc := newTokenCache(f.fetch, DefaultRefreshMargin)
	var ahead atomic.Int64
	tc.now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	ctx := context.Background()
	get := func() string {
		t.Helper()
		tok, err := tc.token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	// A 20s token against a 30s margin: used for its first half (10s),
	// not fetched on every call.
	if a, b := get(), get(); a != "tok-1" || b != "tok-1" {
		t.Fatalf("%s %s", a, b)
	}
	ahead.Store(int64(5 * time.Second))
	if got := get(); got != "tok-1" {
		t.Fatalf("5s on: %s", got)
	}
	ahead.Store(int64(11 * time.Second))
	if got := get(); got != "tok-2" {
		t.Fatalf("11s on: %s", got)
	}
}

func TestTokenCacheSharesOneFetch(t *testing.T) {
	f := &fakeFetch{life: time.Hour, release: make(chan struct{})}
	tc := newTokenCache(f.fetch, DefaultRefreshMargin)
	var wg sync.WaitGroup
	got := make([]string, 5)
	for i := range got {
		wg.Go(func() {
			if tok, err := tc.token(context.Background()); err == nil {
				got[i] = tok.AccessToken
			}
		})
	}
	// One caller is fetching; another whose context ends gives up at once
	// instead of waiting for that fetch.
	for len(tc.sem) == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tc.token(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled waiter: %v", err)
	}
	close(f.release)
	wg.Wait()
	for i, g := range got {
		if g != "tok-1" {
			t.Fatalf("caller %d got %q", i, g)
		}
	}
	if n := f.n.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestTokenCacheDrop(t *testing.T) {
	f := &fakeFetch{life: time.Hour}
	tc := newTokenCache(f.fetch, DefaultRefreshMargin)
	ctx := context.Background()
	tok, _ := tc.token(ctx)
	tc.drop("another token") // a refusal of a token already replaced
	if again, _ := tc.token(ctx); again.AccessToken != tok.AccessToken {
		t.Fatalf("dropping another token replaced %s with %s", tok.AccessToken, again.AccessToken)
	}
	tc.drop(tok.AccessToken)
	if again, _ := tc.token(ctx); again.AccessToken != "tok-2" {
		t.Fatalf("after drop: %s", again.AccessToken)
	}
}

func TestTokenCacheFetchError(t *testing.T) {
	h := http.Header{"Retry-After": {"2"}}
	tc := newTokenCache(func(context.Context) (*oauth2.Token, error) {
		return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 429, Header: h}, ErrorCode: "too_many_requests", ErrorDescription: "slow down"}
	}, 0)
	_, err := tc.token(context.Background())
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Status != 429 || e.Code != "too_many_requests" || e.Message != "slow down" || e.RetryAfter != 2*time.Second {
		t.Fatalf("%T %v", err, err)
	}
	tc = newTokenCache(func(context.Context) (*oauth2.Token, error) { return &oauth2.Token{}, nil }, 0)
	if _, err := tc.token(context.Background()); err == nil {
		t.Fatal("an answer without an access token was taken")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"7":                             7 * time.Second,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 23:59:00 GMT": 0,
		"99999999999":                   24 * time.Hour,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second}.withDefaults()
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		for range 50 {
			if d := p.backoff(n); d < ceiling/2 || d > ceiling {
				t.Fatalf("retry %d: %s, want within [%s, %s]", n, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestNewError(t *testing.T) {
	for body, want := range map[string]Error{
		`{"error":{"code":"invalid_input","message":"subject: is required"}}`:           {Status: 400, Code: "invalid_input", Message: "subject: is required"},
		`{"error":"invalid_client","error_description":"client authentication failed"}`: {Status: 400, Code: "invalid_client", Message: "client authentication failed"},
		`<html>Bad Gateway</html>`: {Status: 400, Message: "<html>Bad Gateway</html>"},
	} {
		got := newError(400, http.Header{}, []byte(body))
		if got.Status != want.Status || got.Code != want.Code || got.Message != want.Message {
			t.Errorf("%s: %+v", body, got)
		}
	}
	e := &Error{Status: 503, Code: "unavailable", Message: "retry"}
	if e.Error() != "verdict: 503 unavailable: retry" || (&Error{Status: 502}).Error() != "verdict: 502 Bad Gateway" {
		t.Fatalf("%q", e.Error())
	}
}
