package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/untrusted"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Why not jwx's jwk.Cache: measured and by design. BenchmarkExternalKeyLookup
// (issuers_bench_test.go) finds a key here in ~40 ns with 0 allocations;
// jwk.Cache's Lookup + LookupKeyID + pinning takes ~2.5 µs and 8
// allocations on the same JWKS (2026-12-03, 2 cores), because the cache
// keeps a jwk.Set, not keys already checked against the alg allow-list.
// jwk.Cache also refreshes on a schedule from goroutines of its own, while
// Verdict fetches on an unknown kid (at most once per JWKSRefreshInterval,
// one fetch shared by concurrent misses, the wait bounded by the caller's
// ctx) and must bound the body, refuse redirects and plain http off
// loopback, and read the discovery document; its own documentation warns
// against it for JWKS that are not "stable" ones of major providers, and
// the issuers operators trust are often their own.
//
// remoteKeys is the key set of one external issuer, fetched on demand from
// its configured JWKS or discovery URL (never from a URL in a token). At
// most one fetch runs at a time; concurrent misses wait for it, and fetches
// start at most once per JWKSRefreshInterval.
type remoteKeys struct {
	cfg   TrustedIssuer
	v     *Verifier
	httpc *http.Client // the Verifier's, or the issuer's own with its CA file
	set   atomic.Pointer[keySet]

	mu          sync.Mutex
	lastAttempt time.Time     // start of the last fetch
	inflight    chan struct{} // closed when the running fetch ends
}

// keySet is an immutable result of the fetches so far.
type keySet struct {
	keys      map[string]pinnedKey // nil until a fetch succeeds
	fetchedAt time.Time            // of keys
	err       error                // of the last fetch, nil if it succeeded
}

// key returns the key kid. An unknown kid, or a set older than
// JWKSMaxAge, starts a fetch unless one started less than
// JWKSRefreshInterval ago; then the keys at hand answer (stale keys too).
// An unknown kid wraps ErrInvalidToken; no keys ever fetched, or ctx
// ending while waiting, wraps ErrUnavailable.
func (r *remoteKeys) key(ctx context.Context, kid string) (pinnedKey, error) {
	now := r.v.now()
	s := r.set.Load()
	if s != nil && s.keys != nil {
		if k, ok := s.keys[kid]; ok && now.Sub(s.fetchedAt) < r.v.cfg.JWKSMaxAge {
			return k, nil
		}
	}
	if done := r.refresh(now); done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return pinnedKey{}, unavailable("waiting for issuer keys", ctx.Err())
		}
		s = r.set.Load()
	}
	if s == nil || s.keys == nil {
		var cause error
		if s != nil {
			cause = s.err
		}
		return pinnedKey{}, unavailable(fmt.Sprintf("keys of issuer %q not fetched", r.cfg.Issuer), cause)
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return pinnedKey{}, invalid("unknown key id %s", untrusted.Quote(kid))
}

// refresh starts a fetch, or joins the one running; it returns a channel
// closed when that fetch ends, or nil if no fetch may start now.
func (r *remoteKeys) refresh(now time.Time) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight != nil {
		return r.inflight
	}
	if !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.v.cfg.JWKSRefreshInterval {
		return nil
	}
	done := make(chan struct{})
	started := r.v.goFetch(func(base context.Context) {
		ctx, cancel := context.WithTimeout(base, r.v.cfg.FetchTimeout)
		keys, err := r.fetch(ctx)
		cancel()
		next := &keySet{keys: keys, fetchedAt: r.v.now(), err: err}
		if err != nil {
			r.v.log.Warn("fetching issuer keys failed",
				slog.String("issuer", r.cfg.Issuer), slog.String("error", err.Error()))
			if old := r.set.Load(); old != nil {
				next.keys, next.fetchedAt = old.keys, old.fetchedAt
			}
		}
		r.set.Store(next)
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		close(done)
	})
	if !started {
		return nil
	}
	r.lastAttempt = now
	r.inflight = done
	return done
}

// fetch gets the issuer's JWK Set (through discovery if configured) and
// keeps the keys that have a usable kid and pin to an allowed alg. A kid
// that appears twice is dropped: which key it means is ambiguous.
func (r *remoteKeys) fetch(ctx context.Context) (map[string]pinnedKey, error) {
	jwksURL := r.cfg.JWKSURL
	if r.cfg.DiscoveryURL != "" {
		body, err := r.get(ctx, r.cfg.DiscoveryURL)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("discovery document: %w", err)
		}
		if doc.Issuer != r.cfg.Issuer {
			return nil, fmt.Errorf("discovery document names issuer %q, want %q", doc.Issuer, r.cfg.Issuer)
		}
		if err := checkFetchURL(doc.JWKSURI); err != nil {
			return nil, fmt.Errorf("discovery document jwks_uri: %w", err)
		}
		jwksURL = doc.JWKSURI
	}
	body, err := r.get(ctx, jwksURL)
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body, jwk.WithMaxKeys(maxJWKSKeys), jwk.WithStrictKeySetParsing(false))
	if err != nil {
		return nil, fmt.Errorf("JWK set from %s: %w", jwksURL, err)
	}
	keys := map[string]pinnedKey{}
	dup := map[string]bool{}
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		kid, ok := k.KeyID()
		if !ok || checkKID(kid) != nil {
			continue
		}
		pk, err := pinKey(k, r.cfg.KeyAlg)
		if err != nil {
			r.v.log.Debug("issuer key skipped", slog.String("issuer", r.cfg.Issuer),
				slog.String("kid", kid), slog.String("reason", err.Error()))
			continue
		}
		if _, seen := keys[kid]; seen || dup[kid] {
			delete(keys, kid)
			dup[kid] = true
			continue
		}
		keys[kid] = pk
	}
	if len(keys) == 0 {
		r.v.log.Warn("issuer publishes no usable key", slog.String("issuer", r.cfg.Issuer))
	}
	return keys, nil
}

// get fetches a document of at most maxFetchBytes with a 200 answer.
func (r *remoteKeys) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.httpc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxFetchBytes {
		return nil, fmt.Errorf("GET %s: body over %d bytes", u, maxFetchBytes)
	}
	return body, nil
}

// checkFetchURL accepts an absolute https URL, or http to a loopback host
// (development and tests), without credentials.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return errors.New("URL must not carry credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q: http is allowed only to a loopback host", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}
