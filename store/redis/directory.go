package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// A directory type's entries are a hash of their JSON by id ("dir/<type>")
// and a hash of their keys to ids ("dirkey/<type>"), both changed under
// WATCH in one transaction that also announces the change.
const (
	kindDir    = "dir"
	kindDirKey = "dirkey"
)

var _ store.Directory = (*Store)(nil)

func (s *Store) dirKeys(ns, typ string) (entries, keys string, err error) {
	if typ == "" || strings.ContainsAny(typ, "/{}") {
		return "", "", errors.New("store: a directory entry needs a plain type")
	}
	return s.key(ns, kindDir, typ), s.key(ns, kindDirKey, typ), nil
}

// CreateEntry adds e with version 1; ErrConflict if its id or key is taken.
func (s *Store) CreateEntry(ctx context.Context, ns string, e store.DirectoryEntry) (store.DirectoryEntry, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.DirectoryEntry{}, err
	}
	if e.ID == "" || e.Key == "" {
		return store.DirectoryEntry{}, errors.New("store: a directory entry needs an id and a key")
	}
	ek, kk, err := s.dirKeys(ns, e.Type)
	if err != nil {
		return store.DirectoryEntry{}, err
	}
	e.Version = 1
	data, err := json.Marshal(e)
	if err != nil {
		return store.DirectoryEntry{}, err
	}
	err = s.txn(ctx, func(tx *redis.Tx) error {
		if n, err := tx.HExists(ctx, ek, e.ID).Result(); err != nil {
			return fmt.Errorf("redis store: %w", err)
		} else if n {
			return fmt.Errorf("store: %s %q: %w", e.Type, e.ID, store.ErrConflict)
		}
		if n, err := tx.HExists(ctx, kk, e.Key).Result(); err != nil {
			return fmt.Errorf("redis store: %w", err)
		} else if n {
			return fmt.Errorf("store: %s key is taken: %w", e.Type, store.ErrConflict)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HSet(ctx, ek, e.ID, data)
			p.HSet(ctx, kk, e.Key, e.ID)
			s.announce(ctx, p, ns, store.ChangeDirectory, e.Type+"/"+e.ID)
			return nil
		})
	}, ek, kk)
	return e, err
}

// ReplaceEntry replaces an existing entry and bumps its version.
func (s *Store) ReplaceEntry(ctx context.Context, ns string, e store.DirectoryEntry, ifVersion int64) (store.DirectoryEntry, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.DirectoryEntry{}, err
	}
	ek, kk, err := s.dirKeys(ns, e.Type)
	if err != nil {
		return store.DirectoryEntry{}, err
	}
	if e.Key == "" {
		return store.DirectoryEntry{}, errors.New("store: a directory entry needs a key")
	}
	err = s.txn(ctx, func(tx *redis.Tx) error {
		var cur store.DirectoryEntry
		found, err := hgetJSON(ctx, tx, ek, e.ID, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: %s %q: %w", e.Type, e.ID, store.ErrNotFound)
		}
		if ifVersion != 0 && ifVersion != cur.Version {
			return fmt.Errorf("store: %s %q changed: %w", e.Type, e.ID, store.ErrConflict)
		}
		if e.Key != cur.Key {
			owner, err := tx.HGet(ctx, kk, e.Key).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("redis store: %w", err)
			}
			if err == nil && owner != e.ID {
				return fmt.Errorf("store: %s key is taken: %w", e.Type, store.ErrConflict)
			}
		}
		e.Version, e.Created = cur.Version+1, cur.Created
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			if e.Key != cur.Key {
				p.HDel(ctx, kk, cur.Key)
				p.HSet(ctx, kk, e.Key, e.ID)
			}
			p.HSet(ctx, ek, e.ID, data)
			s.announce(ctx, p, ns, store.ChangeDirectory, e.Type+"/"+e.ID)
			return nil
		})
	}, ek, kk)
	return e, err
}

// Entry returns one entry; ErrNotFound if none.
func (s *Store) Entry(ctx context.Context, ns, typ, id string) (store.DirectoryEntry, error) {
	if _, _, err := s.dirKeys(ns, typ); err != nil {
		return store.DirectoryEntry{}, err
	}
	return hrecord[store.DirectoryEntry](ctx, s, ns, kindDir, id, typ, typ)
}

// Entries lists the entries of a type by id.
func (s *Store) Entries(ctx context.Context, ns, typ string) ([]store.DirectoryEntry, error) {
	if _, _, err := s.dirKeys(ns, typ); err != nil {
		return nil, err
	}
	return hlist(ctx, s, ns, kindDir+"/"+typ, func(es []store.DirectoryEntry) {
		slices.SortFunc(es, func(a, b store.DirectoryEntry) int { return strings.Compare(a.ID, b.ID) })
	})
}

// DeleteEntry removes an entry and its key.
func (s *Store) DeleteEntry(ctx context.Context, ns, typ, id string, ifVersion int64) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	ek, kk, err := s.dirKeys(ns, typ)
	if err != nil {
		return err
	}
	return s.txn(ctx, func(tx *redis.Tx) error {
		var cur store.DirectoryEntry
		found, err := hgetJSON(ctx, tx, ek, id, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: %s %q: %w", typ, id, store.ErrNotFound)
		}
		if ifVersion != 0 && ifVersion != cur.Version {
			return fmt.Errorf("store: %s %q changed: %w", typ, id, store.ErrConflict)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HDel(ctx, ek, id)
			p.HDel(ctx, kk, cur.Key)
			s.announce(ctx, p, ns, store.ChangeDirectory, typ+"/"+id)
			return nil
		})
	}, ek, kk)
}
