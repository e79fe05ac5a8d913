package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var _ Directory = (*Bolt)(nil)

// Buckets of a directory type: its entries by id, and its keys.
func dirBuckets(tx *bolt.Tx, ns, typ string) (entries, keys *bolt.Bucket, err error) {
	if typ == "" {
		return nil, nil, errors.New("store: a directory entry needs a type")
	}
	if entries, err = writeBucket(tx, ns, []byte("dir:"+typ)); err != nil {
		return nil, nil, err
	}
	keys, err = writeBucket(tx, ns, []byte("dirkey:"+typ))
	return entries, keys, err
}

// CreateEntry adds e with version 1.
func (b *Bolt) CreateEntry(ctx context.Context, ns string, e DirectoryEntry) (DirectoryEntry, error) {
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		if e.ID == "" || e.Key == "" {
			return errors.New("store: a directory entry needs an id and a key")
		}
		entries, keys, err := dirBuckets(tx, ns, e.Type)
		if err != nil {
			return err
		}
		if entries.Get([]byte(e.ID)) != nil {
			return fmt.Errorf("store: %s %q: %w", e.Type, e.ID, ErrConflict)
		}
		if keys.Get([]byte(e.Key)) != nil {
			return fmt.Errorf("store: %s key is taken: %w", e.Type, ErrConflict)
		}
		e.Version = 1
		if err := keys.Put([]byte(e.Key), []byte(e.ID)); err != nil {
			return fmt.Errorf("store: put key: %w", err)
		}
		return putJSON(entries, e.ID, e)
	})
	return e, err
}

// ReplaceEntry replaces an existing entry and bumps its version.
func (b *Bolt) ReplaceEntry(ctx context.Context, ns string, e DirectoryEntry, ifVersion int64) (DirectoryEntry, error) {
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		entries, keys, err := dirBuckets(tx, ns, e.Type)
		if err != nil {
			return err
		}
		var cur DirectoryEntry
		if err := getExisting(entries, e.ID, e.Type, &cur); err != nil {
			return err
		}
		if ifVersion != 0 && ifVersion != cur.Version {
			return fmt.Errorf("store: %s %q changed (version %d, not %d): %w", e.Type, e.ID, cur.Version, ifVersion, ErrConflict)
		}
		if e.Key == "" {
			return errors.New("store: a directory entry needs a key")
		}
		if e.Key != cur.Key {
			if owner := keys.Get([]byte(e.Key)); owner != nil && string(owner) != e.ID {
				return fmt.Errorf("store: %s key is taken: %w", e.Type, ErrConflict)
			}
			if err := keys.Delete([]byte(cur.Key)); err != nil {
				return fmt.Errorf("store: delete key: %w", err)
			}
			if err := keys.Put([]byte(e.Key), []byte(e.ID)); err != nil {
				return fmt.Errorf("store: put key: %w", err)
			}
		}
		e.Version, e.Created = cur.Version+1, cur.Created
		return putJSON(entries, e.ID, e)
	})
	return e, err
}

// Entry returns one entry; ErrNotFound if none.
func (b *Bolt) Entry(ctx context.Context, ns, typ, id string) (DirectoryEntry, error) {
	var e DirectoryEntry
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return getExisting(readBucket(tx, ns, []byte("dir:"+typ)), id, typ, &e)
	})
	return e, err
}

// Entries lists the entries of a type by id.
func (b *Bolt) Entries(ctx context.Context, ns, typ string) ([]DirectoryEntry, error) {
	return listAll[DirectoryEntry](ctx, b, ns, []byte("dir:"+typ))
}

// DeleteEntry removes an entry and its key.
func (b *Bolt) DeleteEntry(ctx context.Context, ns, typ, id string, ifVersion int64) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		entries, keys, err := dirBuckets(tx, ns, typ)
		if err != nil {
			return err
		}
		var cur DirectoryEntry
		if err := getExisting(entries, id, typ, &cur); err != nil {
			return err
		}
		if ifVersion != 0 && ifVersion != cur.Version {
			return fmt.Errorf("store: %s %q changed: %w", typ, id, ErrConflict)
		}
		if err := keys.Delete([]byte(cur.Key)); err != nil {
			return fmt.Errorf("store: delete key: %w", err)
		}
		return deleteExisting(entries, id, typ)
	})
}
