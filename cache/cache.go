package cache

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Config sizes a Cache.
type Config struct {
	// MaxCost is the total cost the cache may hold; with a cost of 1 per
	// entry it is the number of entries. Zero disables the cache.
	MaxCost int64 `yaml:"max_cost"`
	// NumCounters is the number of admission counters ristretto keeps;
	// zero means 10 × MaxCost, as ristretto recommends.
	NumCounters int64 `yaml:"num_counters"`
	// TTL is how long an entry may be served; zero keeps entries until they
	// are evicted.
	TTL time.Duration `yaml:"ttl"`
}

// Default returns a cache of 100,000 entries that live 5 minutes.
func Default() Config { return Config{MaxCost: 100_000, TTL: 5 * time.Minute} }

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.MaxCost < 0 {
		errs = append(errs, errors.New("cache max cost must not be negative"))
	}
	if c.TTL < 0 {
		errs = append(errs, errors.New("cache ttl must not be negative"))
	}
	if c.NumCounters < 0 {
		errs = append(errs, errors.New("cache num counters must not be negative"))
	}
	return errors.Join(errs...)
}

// Cache maps keys to values with bounded memory. Ristretto identifies entries
// by 64-bit hashes, so each entry also stores its full key and Get compares
// it: a hash collision is a miss, never another key's value. Writes may be
// dropped (ristretto's admission policy); callers must not rely on them. The
// zero value is not usable; a nil *Cache is a cache that stores nothing.
type Cache[K comparable, V any] struct {
	rc     *ristretto.Cache[uint64, entry[K, V]]
	ttl    time.Duration
	keyFn  func(K) uint64
	hits   atomic.Uint64
	misses atomic.Uint64
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New builds a cache; keyFn maps a key to the 64-bit hash ristretto indexes
// by (it should spread keys well; equality is checked on K itself). A Config with
// MaxCost 0 returns a nil cache, which stores nothing.
func New[K comparable, V any](cfg Config, keyFn func(K) uint64) (*Cache[K, V], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxCost == 0 {
		return nil, nil
	}
	counters := cfg.NumCounters
	if counters == 0 {
		counters = 10 * cfg.MaxCost
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, entry[K, V]]{
		NumCounters: counters,
		MaxCost:     cfg.MaxCost,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &Cache[K, V]{rc: rc, keyFn: keyFn, ttl: cfg.TTL}, nil
}

// Get returns the value stored under key, if any.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	e, ok := c.rc.Get(c.keyFn(key))
	if !ok || e.key != key {
		c.misses.Add(1)
		return zero, false
	}
	c.hits.Add(1)
	return e.val, true
}

// Set stores val under key with a cost of 1 for the configured TTL. It may
// be dropped.
func (c *Cache[K, V]) Set(key K, val V) {
	if c == nil {
		return
	}
	c.rc.SetWithTTL(c.keyFn(key), entry[K, V]{key: key, val: val}, 1, c.ttl)
}

// Del drops the entry stored under key (and any entry sharing its index,
// which only costs that entry a miss).
func (c *Cache[K, V]) Del(key K) {
	if c != nil {
		c.rc.Del(c.keyFn(key))
	}
}

// Wait blocks until buffered writes are applied (for tests and benchmarks).
func (c *Cache[K, V]) Wait() {
	if c != nil {
		c.rc.Wait()
	}
}

// Clear drops every entry.
func (c *Cache[K, V]) Clear() {
	if c != nil {
		c.rc.Clear()
	}
}

// Stats returns the hits and misses counted so far.
func (c *Cache[K, V]) Stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

// Close stops the cache's goroutines. The cache must not be used afterwards.
func (c *Cache[K, V]) Close() {
	if c != nil {
		c.rc.Close()
	}
}
