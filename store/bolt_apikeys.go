package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketAPIKeys   = []byte("apikeys")
	bucketAPIKeyUse = []byte("apikey_use")
)

var _ APIKeys = (*Bolt)(nil)

// CreateAPIKey adds k; ErrConflict if the id exists, an error without ID.
func (b *Bolt) CreateAPIKey(ctx context.Context, ns string, k APIKey) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if k.ID == "" {
			return errors.New("store: empty api key id")
		}
		bk, err := writeBucket(tx, ns, bucketAPIKeys)
		if err != nil {
			return err
		}
		if bk.Get([]byte(k.ID)) != nil {
			return fmt.Errorf("store: api key %q: %w", k.ID, ErrConflict)
		}
		return putJSON(bk, k.ID, k)
	})
}

// UpdateAPIKey replaces an existing key; ErrNotFound if none.
func (b *Bolt) UpdateAPIKey(ctx context.Context, ns string, k APIKey) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketAPIKeys)
		if bk == nil || k.ID == "" || bk.Get([]byte(k.ID)) == nil {
			return fmt.Errorf("store: api key %q: %w", k.ID, ErrNotFound)
		}
		return putJSON(bk, k.ID, k)
	})
}

// APIKey returns one key; ErrNotFound if none.
func (b *Bolt) APIKey(ctx context.Context, ns, id string) (APIKey, error) {
	var k APIKey
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return getExisting(readBucket(tx, ns, bucketAPIKeys), id, "api key", &k)
	})
	return k, err
}

// ListAPIKeys lists every key by id.
func (b *Bolt) ListAPIKeys(ctx context.Context, ns string) ([]APIKey, error) {
	return listAll[APIKey](ctx, b, ns, bucketAPIKeys)
}

// AddAPIKeyUse adds n uses to key id in one transaction.
func (b *Bolt) AddAPIKeyUse(ctx context.Context, ns, id string, n int64, last time.Time) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if id == "" || n < 0 {
			return errors.New("store: api key use needs an id and a count")
		}
		bk, err := writeBucket(tx, ns, bucketAPIKeyUse)
		if err != nil {
			return err
		}
		var u APIKeyUse
		if _, err := getJSON(bk, id, &u); err != nil {
			return err
		}
		u.Count += n
		if last.After(u.LastUsedAt) {
			u.LastUsedAt = last
		}
		return putJSON(bk, id, u)
	})
}

// APIKeyUse returns a key's use; the zero value if never used.
func (b *Bolt) APIKeyUse(ctx context.Context, ns, id string) (APIKeyUse, error) {
	var u APIKeyUse
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		_, err := getJSON(readBucket(tx, ns, bucketAPIKeyUse), id, &u)
		return err
	})
	return u, err
}
