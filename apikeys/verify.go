package apikeys

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// ErrUnavailable means a key could not be checked now (the store or the
// revocation mirror does not answer): refuse with 503, never pass.
var ErrUnavailable = authn.ErrUnavailable

// Issuer is the iss of the claims a key verifies to.
const Issuer = "verdict:apikey"

// Verify checks a key a caller presents and returns the caller's claims:
// iss verdict:apikey, sub and client_id (the key's client, else
// "apikey:<id>"), scope, apikey_id and apikey_name. A malformed key
// (ErrMalformed, wrapped in ErrInvalid) is refused before any lookup; an
// unknown id, a wrong secret, a revoked or expired key are ErrInvalid
// alike; a store or mirror that does not answer is ErrUnavailable. Each
// success counts one use, in memory (Flush writes the counts).
func (s *Service) Verify(ctx context.Context, text string) (authn.Claims, error) {
	id, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	k, fresh, err := s.record(ctx, id, false)
	if err != nil {
		return nil, err
	}
	now := s.now()
	mac := s.mac(text)
	match := func(k Key) bool {
		return hmac.Equal(mac, k.SecretHMAC) || (len(k.PrevHMAC) > 0 && now.Before(k.PrevUntil) && hmac.Equal(mac, k.PrevHMAC))
	}
	if !match(k) && !fresh {
		// Rotated on another replica since it was cached: read it again.
		if k, _, err = s.record(ctx, id, true); err != nil {
			return nil, err
		}
	}
	switch {
	case !match(k):
		return nil, fmt.Errorf("%w: wrong secret", ErrInvalid)
	case !k.RevokedAt.IsZero():
		return nil, fmt.Errorf("%w: revoked", ErrInvalid)
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return nil, fmt.Errorf("%w: expired", ErrInvalid)
	}
	revoked, err := s.rev.Revoked(ctx, RevokedID(id))
	if err != nil {
		return nil, fmt.Errorf("%w: revocation check: %w", ErrUnavailable, err)
	}
	if revoked {
		s.forget(id)
		return nil, fmt.Errorf("%w: revoked", ErrInvalid)
	}
	s.used(id, now)
	client := k.ClientID
	if client == "" {
		client = RevokedID(id)
	}
	return authn.Claims{
		"iss": Issuer, "sub": client, "client_id": client, "scope": strings.Join(k.Scopes, " "),
		"apikey_id": k.ID, "apikey_name": k.Name,
	}, nil
}

// record returns key id's record from the cache (fresh false) or the
// store (fresh true); reload skips the cache.
func (s *Service) record(ctx context.Context, id string, reload bool) (Key, bool, error) {
	now := s.now()
	if !reload {
		s.mu.RLock()
		c, ok := s.cache[id]
		s.mu.RUnlock()
		if ok && now.Sub(c.seen) < s.cfg.CacheTTL {
			return c.k, false, nil
		}
	}
	k, err := s.st.APIKey(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Key{}, true, fmt.Errorf("%w: unknown key", ErrInvalid)
	case err != nil:
		return Key{}, true, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	if len(s.cache) > 100_000 {
		clear(s.cache)
	}
	s.cache[id] = cached{k: k, seen: now}
	s.mu.Unlock()
	return k, true, nil
}

func (s *Service) used(id string, at time.Time) {
	s.mu.Lock()
	s.addUses(id, 1, at)
	s.mu.Unlock()
}

// addUses adds n uses of id, the last at last, to the pending counts;
// s.mu is held.
func (s *Service) addUses(id string, n int64, last time.Time) {
	p := s.uses[id]
	if p == nil {
		p = &pending{}
		s.uses[id] = p
	}
	p.n += n
	if last.After(p.last) {
		p.last = last
	}
}

// Flush writes the use counts gathered since the last flush to the store;
// counts it could not write are kept for the next one.
func (s *Service) Flush(ctx context.Context) error {
	s.mu.Lock()
	batch := s.uses
	s.uses = map[string]*pending{}
	s.mu.Unlock()
	var errs []error
	for id, p := range batch {
		if err := s.st.AddAPIKeyUse(ctx, id, p.n, p.last.UTC()); err != nil {
			errs = append(errs, err)
			s.mu.Lock()
			s.addUses(id, p.n, p.last)
			s.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// Run flushes the use counts every interval until ctx ends, then once
// more (with a short deadline of its own).
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.Flush(fctx); err != nil {
				s.log.Warn("API key use counts not written at stop", "error", err)
			}
			cancel()
			return
		case <-t.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("API key use counts not written; kept for the next flush", "error", err)
			}
		}
	}
}
