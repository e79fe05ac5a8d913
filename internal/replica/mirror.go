package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// RevokedLister lists the revocations in force in the shared store, for
// one namespace (store.Revocations.RevokedTokens).
type RevokedLister interface {
	RevokedTokens(ctx context.Context) ([]store.RevokedToken, error)
}

// RevocationStore answers whether an access token's jti is revoked, from
// the shared store (what the Verifier asks without a replica).
type RevocationStore interface {
	Revoked(ctx context.Context, jti string) (bool, error)
}

// minSweep is the size under which Mirror.Add does not look for expired
// entries.
const minSweep = 64

// Mirror is the replica's copy of the revoked access-token ids of the
// shared store, with the time each revocation ends, so that a FailStatic
// checker can answer from it while the store cannot be reached. A Syncer
// fills it: in full from the store at every repair (Load), and with every
// announced revocation in between (Add). It is bounded by time: an entry
// leaves at its exp (access tokens live minutes), at the latest when the
// mirror has doubled since it last looked. A Mirror is trusted only while
// the Syncer it was given to (Deps.Revocations) is healthy: before, and
// once stale, the checker returns the store's error. It is safe for
// concurrent use; build it with NewMirror.
type Mirror struct {
	list RevokedLister
	hold time.Duration
	now  func() time.Time

	mu  sync.RWMutex
	exp map[string]time.Time
	// swept is the size after the last look for expired entries.
	swept int

	loaded atomic.Bool
	syncer atomic.Pointer[Syncer]
}

// NewMirror returns an empty Mirror that Load fills from list. hold is how
// long an announced revocation is kept (announcements carry no expiry): at
// least the longest an access token issued now is accepted, its lifetime
// plus the clock skew the Verifier allows. A nil now means time.Now. It
// fails on a nil list or a hold that is not positive.
func NewMirror(list RevokedLister, hold time.Duration, now func() time.Time) (*Mirror, error) {
	var errs []error
	if list == nil {
		errs = append(errs, errors.New("replica: mirror without a revocation listing"))
	}
	if hold <= 0 {
		errs = append(errs, fmt.Errorf("replica: mirror hold must be positive, got %s", hold))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Mirror{list: list, hold: hold, now: now, exp: map[string]time.Time{}}, nil
}

// Load replaces the mirror's content with the store's listing of the
// revocations in force. On error it keeps what it had and returns the
// error.
func (m *Mirror) Load(ctx context.Context) error {
	list, err := m.list.RevokedTokens(ctx)
	if err != nil {
		return err
	}
	exp := make(map[string]time.Time, len(list))
	for _, r := range list {
		exp[r.JTI] = r.Exp
	}
	m.mu.Lock()
	m.exp, m.swept = exp, len(exp)
	m.mu.Unlock()
	m.loaded.Store(true)
	return nil
}

// Add records jti as revoked for hold from now (an announced revocation),
// keeping a later end it already has. An empty jti is ignored.
func (m *Mirror) Add(jti string) {
	if jti == "" {
		return
	}
	now := m.now()
	until := now.Add(m.hold)
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.exp[jti]; !ok || cur.Before(until) {
		m.exp[jti] = until
	}
	if len(m.exp) >= max(2*m.swept, minSweep) {
		for j, e := range m.exp {
			if !store.Live(now, e) {
				delete(m.exp, j)
			}
		}
		m.swept = len(m.exp)
	}
}

// Revoked reports whether the mirror holds jti with a revocation that has
// not ended.
func (m *Mirror) Revoked(jti string) bool {
	m.mu.RLock()
	e, ok := m.exp[jti]
	m.mu.RUnlock()
	return ok && store.Live(m.now(), e)
}

// Len is the number of entries held, ended ones not yet dropped included.
func (m *Mirror) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.exp)
}

// trusted reports whether the mirror may answer for the store: it was
// loaded, and its Syncer is healthy (has applied every change, or repaired,
// within StaleAfter).
func (m *Mirror) trusted() bool {
	s := m.syncer.Load()
	return s != nil && m.loaded.Load() && s.Healthy()
}

// FailStatic is the revocation check (authn.RevocationChecker) of a
// replica on a shared store: the store answers whenever it can; while it
// cannot (store.ErrUnavailable) and the replica is not stale, the Mirror
// answers, so that a caller token the replica has not seen before is still
// verified, and a revoked one still rejected. Once the replica is stale the
// store's error is returned (the Verifier then answers 503): past the
// staleness bound nothing can be known. Build it with NewFailStatic.
type FailStatic struct {
	st       RevocationStore
	m        *Mirror
	answered atomic.Uint64
}

// NewFailStatic returns the checker that asks st and falls back on m. It
// fails on a nil st or m.
func NewFailStatic(st RevocationStore, m *Mirror) (*FailStatic, error) {
	if st == nil || m == nil {
		return nil, errors.New("replica: fail-static revocation check needs a store and a mirror")
	}
	return &FailStatic{st: st, m: m}, nil
}

// Revoked reports whether jti is revoked: the store's answer when it
// gives one; the mirror's, with no error, when the store is unavailable
// and the mirror trusted; otherwise the store's error.
func (f *FailStatic) Revoked(ctx context.Context, jti string) (bool, error) {
	revoked, err := f.st.Revoked(ctx, jti)
	if err == nil {
		return revoked, nil
	}
	if !errors.Is(err, store.ErrUnavailable) || !f.m.trusted() {
		return false, err
	}
	f.answered.Add(1)
	return f.m.Revoked(jti), nil
}

// MirrorAnswers counts the checks the mirror answered for an unavailable
// store.
func (f *FailStatic) MirrorAnswers() uint64 { return f.answered.Load() }
