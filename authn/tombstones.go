package authn

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// Tombstones make ForgetJTI and Forget take effect at once on cached
// verifications, which the cache itself cannot delete.
//
// Why it is race-free: Verify reads the clock (start), then the epoch;
// Forget* bumps the epoch, then reads the clock (t), under mu. A cache
// entry that predates a tombstone (entry epoch < tombstone epoch) started
// verifying before t, so it lives until at most t + CacheTTL, which is how
// long the tombstone is kept. A jti tombstone rejects outright (the miss
// path checks it after the revocation store, and a hit checks it again);
// a token tombstone forces a full verification of older entries only.
//
// ForgetAll records the epoch it bumped to in all: every entry that
// predates it (entry epoch < all) is verified again, by the same argument.
type tombstones struct {
	epoch   atomic.Uint64
	all     atomic.Uint64 // entries with an older epoch are forgotten
	n       atomic.Int64  // entries in both maps; 0 skips the lock on hits
	mu      sync.RWMutex
	jtis    map[string]tomb
	tokens  map[[sha256.Size]byte]tomb
	pruneAt int
}

type tomb struct {
	epoch uint64
	until time.Time
}

// Results of tombstones.check.
const (
	tombNone = iota
	tombRevoked
	tombForgotten
)

func (t *tombstones) init() {
	t.jtis = map[string]tomb{}
	t.tokens = map[[sha256.Size]byte]tomb{}
	t.pruneAt = 1024
}

// add records a token hash or (if jti != "") a jti.
func (t *tombstones) add(v *Verifier, key [sha256.Size]byte, jti string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := tomb{epoch: t.epoch.Add(1)}
	now := v.now()
	e.until = now.Add(v.cfg.CacheTTL)
	if jti != "" {
		t.jtis[jti] = e
	} else {
		t.tokens[key] = e
	}
	if n := len(t.jtis) + len(t.tokens); n > t.pruneAt {
		for k, x := range t.jtis {
			if x.until.Before(now) {
				delete(t.jtis, k)
			}
		}
		for k, x := range t.tokens {
			if x.until.Before(now) {
				delete(t.tokens, k)
			}
		}
		t.pruneAt = max(1024, 2*(len(t.jtis)+len(t.tokens)))
	}
	t.n.Store(int64(len(t.jtis) + len(t.tokens)))
}

// forgetAll makes every entry that exists now be verified again.
func (t *tombstones) forgetAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.all.Store(t.epoch.Add(1))
}

// check decides what a cache hit e for key may do.
func (t *tombstones) check(key [sha256.Size]byte, e *verified) int {
	if e.epoch < t.all.Load() {
		return tombForgotten
	}
	if t.n.Load() == 0 {
		return tombNone
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e.jti != "" {
		if _, ok := t.jtis[e.jti]; ok {
			return tombRevoked
		}
	}
	if x, ok := t.tokens[key]; ok && x.epoch > e.epoch {
		return tombForgotten
	}
	return tombNone
}

// jtiRevoked reports whether ForgetJTI recorded jti.
func (t *tombstones) jtiRevoked(jti string) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.jtis[jti]
	return ok
}
