package server

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// limitStore keeps the token endpoint's failure counters for fiber's
// limiter. fiber's default storage starts a collector goroutine that never
// stops; this one starts none: entries expire when read, and a write sweeps
// expired entries once the map has doubled since the last sweep. Several
// replicas will share counters through Redis (fiber.Storage) instead.
type limitStore struct {
	mu        sync.Mutex
	m         map[string]limitEntry
	now       func() time.Time
	lastSweep int
}

type limitEntry struct {
	val []byte
	exp time.Time // zero: no expiry
}

var _ fiber.Storage = (*limitStore)(nil)

func newLimitStore() *limitStore {
	return &limitStore{m: map[string]limitEntry{}, now: time.Now}
}

func (s *limitStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	if !e.exp.IsZero() && !s.now().Before(e.exp) {
		delete(s.m, key)
		return nil, nil
	}
	return e.val, nil
}

func (s *limitStore) Set(key string, val []byte, exp time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := limitEntry{val: append([]byte(nil), val...)}
	now := s.now()
	if exp > 0 {
		e.exp = now.Add(exp)
	}
	s.m[key] = e
	if len(s.m) > 2*s.lastSweep+64 {
		for k, v := range s.m {
			if !v.exp.IsZero() && !now.Before(v.exp) {
				delete(s.m, k)
			}
		}
		s.lastSweep = len(s.m)
	}
	return nil
}

func (s *limitStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *limitStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = map[string]limitEntry{}
	s.lastSweep = 0
	return nil
}

func (s *limitStore) Close() error { return nil }
