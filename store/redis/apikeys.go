package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// Key kinds of API keys: a hash of the keys' JSON by id (announced as
// kind apikey), and a hash per key of its use (count, last use in Unix
// nanoseconds), changed by HINCRBY and a compare-and-set script so that
// replicas flushing their counts at once add up.
const (
	kindAPIKeys   = "apikeys"
	kindAPIKeyUse = "apikey-use"
)

var _ store.APIKeys = (*Store)(nil)

// CreateAPIKey adds k and announces it; ErrConflict if the id exists.
func (s *Store) CreateAPIKey(ctx context.Context, ns string, k store.APIKey) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if k.ID == "" {
		return errors.New("store: empty api key id")
	}
	return s.hput(ctx, ns, kindAPIKeys, store.ChangeAPIKey, k.ID, k, putNew)
}

// UpdateAPIKey replaces an existing key and announces it; ErrNotFound if
// none.
func (s *Store) UpdateAPIKey(ctx context.Context, ns string, k store.APIKey) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	return s.hput(ctx, ns, kindAPIKeys, store.ChangeAPIKey, k.ID, k, putExisting)
}

// APIKey returns one key; ErrNotFound if none.
func (s *Store) APIKey(ctx context.Context, ns, id string) (store.APIKey, error) {
	return hrecord[store.APIKey](ctx, s, ns, kindAPIKeys, id, "api key")
}

// ListAPIKeys lists every key by id.
func (s *Store) ListAPIKeys(ctx context.Context, ns string) ([]store.APIKey, error) {
	return hlist(ctx, s, ns, kindAPIKeys, sortAPIKeys)
}

func sortAPIKeys(ks []store.APIKey) {
	slices.SortFunc(ks, func(a, b store.APIKey) int { return strings.Compare(a.ID, b.ID) })
}

// useScript adds ARGV[1] to the count and keeps ARGV[2] as the last use
// if it is later than the stored one.
var useScript = redis.NewScript(`
redis.call('HINCRBY', KEYS[1], 'count', ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if tonumber(ARGV[2]) > last then redis.call('HSET', KEYS[1], 'last', ARGV[2]) end
return 1`)

// AddAPIKeyUse adds n uses to key id, atomically.
func (s *Store) AddAPIKeyUse(ctx context.Context, ns, id string, n int64, last time.Time) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if id == "" || n < 0 {
		return errors.New("store: api key use needs an id and a count")
	}
	err := useScript.Run(ctx, s.rdb, []string{s.key(ns, kindAPIKeyUse, id)}, n, strconv.FormatInt(last.UnixNano(), 10)).Err()
	if err != nil {
		return fmt.Errorf("redis store: api key use: %w", err)
	}
	return nil
}

// APIKeyUse returns a key's use; the zero value if never used.
func (s *Store) APIKeyUse(ctx context.Context, ns, id string) (store.APIKeyUse, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.APIKeyUse{}, err
	}
	m, err := s.rdb.HGetAll(ctx, s.key(ns, kindAPIKeyUse, id)).Result()
	if err != nil {
		return store.APIKeyUse{}, fmt.Errorf("redis store: api key use: %w", err)
	}
	var u store.APIKeyUse
	u.Count, _ = strconv.ParseInt(m["count"], 10, 64)
	if ns, _ := strconv.ParseInt(m["last"], 10, 64); ns > 0 {
		u.LastUsedAt = time.Unix(0, ns).UTC()
	}
	return u, nil
}
