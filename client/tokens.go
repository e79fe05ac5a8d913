package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultRefreshMargin is how long before its expiry a cached access token
// is replaced, unless WithTokenRefreshMargin says otherwise.
const DefaultRefreshMargin = 30 * time.Second

// tokenCache holds the access token the client presents, fetching a new
// one when it is missing, or within the refresh margin of its expiry.
//
// It is not oauth2.ReuseTokenSourceWithExpiry, which has the same refresh
// rule, for two reasons: a token the server refuses (revoked, or signed
// with a key since revoked) must be dropped so that the next one is
// fetched, and ReuseTokenSource offers no way to drop it; and
// oauth2.TokenSource.Token takes no context, so a fetch could outlive the
// deadline of the call that needs it. Here a fetch runs under the call's
// context, and callers waiting for another's fetch give up with their own.
type tokenCache struct {
	// fetch gets a new token; ctx bounds it when the source can be bounded.
	fetch func(ctx context.Context) (*oauth2.Token, error)
	// margin is the refresh margin (see effectiveMargin).
	margin time.Duration
	now    func() time.Time
	// sem admits one fetch at a time.
	sem chan struct{}

	mu        sync.Mutex
	tok       *oauth2.Token
	fetchedAt time.Time
}

func newTokenCache(fetch func(context.Context) (*oauth2.Token, error), margin time.Duration) *tokenCache {
	return &tokenCache{fetch: fetch, margin: margin, now: time.Now, sem: make(chan struct{}, 1)}
}

// effectiveMargin is the refresh margin for a token fetched at fetchedAt:
// margin, but at most half the token's lifetime, so that a short-lived
// token (a lifetime under twice the margin) is still used for half of it
// instead of being fetched anew on every call.
func effectiveMargin(margin time.Duration, fetchedAt, expiry time.Time) time.Duration {
	if life := expiry.Sub(fetchedAt); life > 0 {
		return min(margin, life/2)
	}
	return 0
}

// current is the cached token while it is usable: not within its refresh
// margin of expiry (a token without expiry is used until the server
// refuses it); nil otherwise.
func (tc *tokenCache) current() *oauth2.Token {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	t := tc.tok
	if t == nil || t.AccessToken == "" {
		return nil
	}
	if t.Expiry.IsZero() {
		return t
	}
	if !tc.now().Before(t.Expiry.Add(-effectiveMargin(tc.margin, tc.fetchedAt, t.Expiry))) {
		return nil
	}
	return t
}

// token is a usable access token: the cached one, or a new one fetched
// under ctx. Concurrent callers share one fetch.
func (tc *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	if t := tc.current(); t != nil {
		return t, nil
	}
	select {
	case tc.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-tc.sem }()
	if t := tc.current(); t != nil { // fetched while this call waited
		return t, nil
	}
	at := tc.now()
	t, err := tc.fetch(ctx)
	if err != nil {
		return nil, tokenError(err)
	}
	if t == nil || t.AccessToken == "" {
		return nil, errors.New("token request: the answer has no access token")
	}
	tc.mu.Lock()
	tc.tok, tc.fetchedAt = t, at
	tc.mu.Unlock()
	return t, nil
}

// drop forgets access, if it is still the cached token, so that the next
// call fetches another.
func (tc *tokenCache) drop(access string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.tok != nil && tc.tok.AccessToken == access {
		tc.tok = nil
	}
}
