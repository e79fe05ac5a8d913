package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// PutKey inserts or replaces the key with k.KID and announces it (kind
// key). It returns an error for an invalid namespace, an empty KID or an
// unreachable Redis.
func (s *Store) PutKey(ctx context.Context, ns string, k store.SigningKey) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if k.KID == "" {
		return errors.New("store: empty key id")
	}
	return s.hput(ctx, ns, kindKeys, store.ChangeKey, k.KID, k, putAny)
}

// Keys lists every key in ns, oldest first (store.SortKeys). An unknown
// namespace has no keys.
func (s *Store) Keys(ctx context.Context, ns string) ([]store.SigningKey, error) {
	return hlist(ctx, s, ns, kindKeys, store.SortKeys)
}

// DeleteKey removes a key and announces it; ErrNotFound if there is none.
func (s *Store) DeleteKey(ctx context.Context, ns, kid string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	return s.hdel(ctx, ns, kindKeys, store.ChangeKey, kid, "key")
}

// CreateClient adds c and announces it (kind client); ErrConflict if the
// id exists, an error for an invalid namespace or an empty id.
func (s *Store) CreateClient(ctx context.Context, ns string, c store.Client) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if c.ID == "" {
		return errors.New("store: empty client id")
	}
	return s.hput(ctx, ns, kindClients, store.ChangeClient, c.ID, c, putNew)
}

// UpdateClient replaces an existing client and announces it; ErrNotFound
// if none.
func (s *Store) UpdateClient(ctx context.Context, ns string, c store.Client) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	return s.hput(ctx, ns, kindClients, store.ChangeClient, c.ID, c, putExisting)
}

// Client returns one client; ErrNotFound if none.
func (s *Store) Client(ctx context.Context, ns, id string) (store.Client, error) {
	return hrecord[store.Client](ctx, s, ns, kindClients, id, "client")
}

// ListClients lists every client in ns, sorted by id.
func (s *Store) ListClients(ctx context.Context, ns string) ([]store.Client, error) {
	return hlist(ctx, s, ns, kindClients, store.SortClients)
}

// DeleteClient removes a client and announces it; ErrNotFound if none.
func (s *Store) DeleteClient(ctx context.Context, ns, id string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	return s.hdel(ctx, ns, kindClients, store.ChangeClient, id, "client")
}

// putMode says what hput requires of the field before it writes.
type putMode int

const (
	// putAny inserts or replaces.
	putAny putMode = iota
	// putNew fails with ErrConflict when the field exists.
	putNew
	// putExisting fails with ErrNotFound when the field does not exist.
	putExisting
)

// hput sets field of the kind hash to v's JSON and announces it, if the
// field's presence is what mode requires; otherwise it writes nothing.
func (s *Store) hput(ctx context.Context, ns, kind, change, field string, v any, mode putMode) error {
	key := s.key(ns, kind)
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %q: %w", field, err)
	}
	return s.txn(ctx, func(tx *redis.Tx) error {
		if mode != putAny {
			exists := false
			if field != "" {
				if exists, err = tx.HExists(ctx, key, field).Result(); err != nil {
					return fmt.Errorf("redis store: %w", err)
				}
			}
			if mode == putNew && exists {
				return fmt.Errorf("store: %s %q: %w", change, field, store.ErrConflict)
			}
			if mode == putExisting && !exists {
				return fmt.Errorf("store: %s %q: %w", change, field, store.ErrNotFound)
			}
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, field, data)
			s.announce(ctx, p, ns, change, field)
			return nil
		})
	}, key)
}

// hdel deletes field of the kind hash and announces it, or returns
// ErrNotFound.
func (s *Store) hdel(ctx context.Context, ns, kind, change, field, what string) error {
	key := s.key(ns, kind)
	return s.txn(ctx, func(tx *redis.Tx) error {
		exists := false
		if field != "" {
			var err error
			if exists, err = tx.HExists(ctx, key, field).Result(); err != nil {
				return fmt.Errorf("redis store: %w", err)
			}
		}
		if !exists {
			return fmt.Errorf("store: %s %q: %w", what, field, store.ErrNotFound)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HDel(ctx, key, field)
			s.announce(ctx, p, ns, change, field)
			return nil
		})
	}, key)
}

// CreateFamily stores the first token of a new family, expiring at
// t.ExpiresAt; ErrConflict if the family exists, an error if t cannot be
// stored (store.CheckRefreshToken) or ns is invalid. Not announced: no
// replica caches families.
func (s *Store) CreateFamily(ctx context.Context, ns string, t store.RefreshToken) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if err := store.CheckRefreshToken(t); err != nil {
		return err
	}
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("store: encode refresh family %q: %w", t.Family, err)
	}
	err = s.rdb.SetArgs(ctx, s.key(ns, kindRefresh, t.Family), data, redis.SetArgs{Mode: "NX", ExpireAt: expireAt(t.ExpiresAt)}).Err()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: refresh family %q: %w", t.Family, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("redis store: create refresh family: %w", err)
	}
	return nil
}

// Rotate replaces the family's token with next if its current hash is
// oldHash, under WATCH, so of concurrent rotations exactly one succeeds; the
// stored record is store.NextRotation's and expires at its ExpiresAt. It
// returns ErrConflict if the family is revoked or its hash differs,
// ErrNotFound if there is no such family, and an error if next cannot be
// stored. Not announced.
func (s *Store) Rotate(ctx context.Context, ns, family string, oldHash []byte, next store.RefreshToken) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	next.Family = family
	if err := store.CheckRefreshToken(next); err != nil {
		return err
	}
	key := s.key(ns, kindRefresh, family)
	return s.txn(ctx, func(tx *redis.Tx) error {
		var cur store.RefreshToken
		found, err := getJSON(ctx, tx, key, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: refresh family %q: %w", family, store.ErrNotFound)
		}
		stored, err := store.NextRotation(cur, oldHash, next)
		if err != nil {
			return err
		}
		data, err := json.Marshal(stored)
		if err != nil {
			return fmt.Errorf("store: encode refresh family %q: %w", family, err)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, redis.SetArgs{ExpireAt: expireAt(stored.ExpiresAt)})
			return nil
		})
	}, key)
}

// Family returns a family; ErrNotFound if none (or expired).
func (s *Store) Family(ctx context.Context, ns, family string) (store.RefreshToken, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.RefreshToken{}, err
	}
	var t store.RefreshToken
	found := false
	var err error
	if family != "" {
		found, err = getJSON(ctx, s.rdb, s.key(ns, kindRefresh, family), &t)
	}
	if err != nil {
		return store.RefreshToken{}, err
	}
	if !found {
		return store.RefreshToken{}, fmt.Errorf("store: refresh family %q: %w", family, store.ErrNotFound)
	}
	return t, nil
}

// RevokeFamily marks the family revoked (keeping its expiry), announces it
// (kind refresh) and returns it with the access token ids issued from it;
// revoking a revoked family succeeds again. ErrNotFound if none.
func (s *Store) RevokeFamily(ctx context.Context, ns, family string) (store.RefreshToken, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.RefreshToken{}, err
	}
	var t store.RefreshToken
	key := s.key(ns, kindRefresh, family)
	err := s.txn(ctx, func(tx *redis.Tx) error {
		t = store.RefreshToken{}
		found := false
		var err error
		if family != "" {
			found, err = getJSON(ctx, tx, key, &t)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: refresh family %q: %w", family, store.ErrNotFound)
		}
		t.Revoked = true
		data, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("store: encode refresh family %q: %w", family, err)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, redis.SetArgs{KeepTTL: true})
			s.announce(ctx, p, ns, store.ChangeRefresh, family)
			return nil
		})
	}, key)
	if err != nil {
		return store.RefreshToken{}, err
	}
	return t, nil
}

// expiry is the stored value of a revoked or one-time token id.
type expiry struct {
	Exp time.Time `json:"exp"`
}

// Revoke records jti as revoked until exp (the key expires then) and
// announces it (kind revocation). In the same transaction it indexes jti in
// the namespace's revoked-index sorted set (scored by exp in milliseconds,
// for RevokedTokens) and prunes the index of what has expired. Revoking
// again keeps the later expiry (an earlier one changes and announces
// nothing). It returns an error for an empty jti or an invalid namespace.
func (s *Store) Revoke(ctx context.Context, ns, jti string, exp time.Time) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if jti == "" {
		return errors.New("store: empty token id")
	}
	key, index := s.key(ns, kindRevoked, jti), s.key(ns, kindRevokedIndex)
	data, err := json.Marshal(expiry{Exp: exp})
	if err != nil {
		return fmt.Errorf("store: encode revocation: %w", err)
	}
	return s.txn(ctx, func(tx *redis.Tx) error {
		var cur expiry
		found, err := getJSON(ctx, tx, key, &cur)
		if err != nil {
			return err
		}
		if found && cur.Exp.After(exp) {
			return nil
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, redis.SetArgs{ExpireAt: expireAt(exp)})
			p.ZAdd(ctx, index, redis.Z{Score: float64(expireAt(exp).UnixMilli()), Member: jti})
			p.ZRemRangeByScore(ctx, index, "-inf", strconv.FormatInt(s.now().UnixMilli(), 10))
			s.announce(ctx, p, ns, store.ChangeRevocation, jti)
			return nil
		})
	}, key)
}

// RevokedTokens lists the revocations of ns in force at the store's clock,
// ordered by jti, from the revoked-index sorted set (one ZRANGEBYSCORE,
// which leaves out what has expired and Revoke has not pruned yet). Exp is
// the revocation's expiry rounded up to the millisecond.
func (s *Store) RevokedTokens(ctx context.Context, ns string) ([]store.RevokedToken, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	key := s.key(ns, kindRevokedIndex)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(s.now().UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", key, err)
	}
	out := make([]store.RevokedToken, 0, len(zs))
	for _, z := range zs {
		jti, ok := z.Member.(string)
		if !ok {
			return nil, fmt.Errorf("redis store: %s member %v is not a string", key, z.Member)
		}
		out = append(out, store.RevokedToken{JTI: jti, Exp: time.UnixMilli(int64(z.Score)).UTC()})
	}
	slices.SortFunc(out, func(a, b store.RevokedToken) int { return strings.Compare(a.JTI, b.JTI) })
	return out, nil
}

// Revoked reports whether jti is revoked, which is so only while the clock
// is before the exp it was revoked with.
func (s *Store) Revoked(ctx context.Context, ns, jti string) (bool, error) {
	if err := s.check(ctx, ns); err != nil {
		return false, err
	}
	if jti == "" {
		return false, nil
	}
	var cur expiry
	found, err := getJSON(ctx, s.rdb, s.key(ns, kindRevoked, jti), &cur)
	if err != nil {
		return false, err
	}
	return found && store.Live(s.now(), cur.Exp), nil
}

// UseOnce records jti until exp (the key expires then) and reports whether
// this was its first use; of concurrent uses exactly one is first. Once the
// clock reaches exp the id is free again. It returns false and an error for
// an empty jti or an invalid namespace. Not announced.
func (s *Store) UseOnce(ctx context.Context, ns, jti string, exp time.Time) (bool, error) {
	if err := s.check(ctx, ns); err != nil {
		return false, err
	}
	if jti == "" {
		return false, errors.New("store: empty token id")
	}
	key := s.key(ns, kindOnce, jti)
	data, err := json.Marshal(expiry{Exp: exp})
	if err != nil {
		return false, fmt.Errorf("store: encode one-time id: %w", err)
	}
	var first bool
	err = s.txn(ctx, func(tx *redis.Tx) error {
		first = false
		var cur expiry
		found, err := getJSON(ctx, tx, key, &cur)
		if err != nil {
			return err
		}
		if found && store.Live(s.now(), cur.Exp) {
			return nil
		}
		if err := exec(ctx, tx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, redis.SetArgs{ExpireAt: expireAt(exp)})
			return nil
		}); err != nil {
			return err
		}
		first = true
		return nil
	}, key)
	if err != nil {
		return false, err
	}
	return first, nil
}

// PutRevision stores r and its archive in one transaction and reports
// whether the revision is new. The same revision with the same digest
// changes nothing and returns false; another digest is ErrConflict. An
// empty revision or digest is an error. Not announced: only SetActive
// changes what replicas serve.
func (s *Store) PutRevision(ctx context.Context, ns string, r store.BundleRevision, archive []byte) (bool, error) {
	if err := s.check(ctx, ns); err != nil {
		return false, err
	}
	if err := store.CheckRevision(r); err != nil {
		return false, err
	}
	r.Size = int64(len(archive))
	data, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("store: encode revision %q: %w", r.Revision, err)
	}
	revs, blobs := s.key(ns, kindBundles), s.key(ns, kindArchives)
	created := false
	err = s.txn(ctx, func(tx *redis.Tx) error {
		created = false
		var cur store.BundleRevision
		found, err := hgetJSON(ctx, tx, revs, r.Revision, &cur)
		if err != nil {
			return err
		}
		if found {
			return store.SameRevision(cur, r)
		}
		if err := exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HSet(ctx, blobs, r.Revision, archive)
			p.HSet(ctx, revs, r.Revision, data)
			return nil
		}); err != nil {
			return err
		}
		created = true
		return nil
	}, revs)
	return created, err
}

// Revisions lists every revision of ns, newest first. It reads no archive.
func (s *Store) Revisions(ctx context.Context, ns string) ([]store.BundleRevision, error) {
	return hlist(ctx, s, ns, kindBundles, store.SortRevisions)
}

// Revision returns one revision's record; ErrNotFound if none.
func (s *Store) Revision(ctx context.Context, ns, revision string) (store.BundleRevision, error) {
	return hrecord[store.BundleRevision](ctx, s, ns, kindBundles, revision, "bundle revision")
}

// Archive returns the revision's archive; ErrNotFound if none.
func (s *Store) Archive(ctx context.Context, ns, revision string) ([]byte, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	if revision == "" {
		return nil, fmt.Errorf("store: bundle archive %q: %w", revision, store.ErrNotFound)
	}
	data, err := s.rdb.HGet(ctx, s.key(ns, kindArchives), revision).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: bundle archive %q: %w", revision, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redis store: read archive %q: %w", revision, err)
	}
	return data, nil
}

// SetActive points the active revision at revision and announces it (kind
// bundle) in one transaction; ErrNotFound if the revision is not stored
// (the pointer is then unchanged).
func (s *Store) SetActive(ctx context.Context, ns, revision string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	revs, active := s.key(ns, kindBundles), s.key(ns, kindActive)
	return s.txn(ctx, func(tx *redis.Tx) error {
		exists := false
		if revision != "" {
			var err error
			if exists, err = tx.HExists(ctx, revs, revision).Result(); err != nil {
				return fmt.Errorf("redis store: %w", err)
			}
		}
		if !exists {
			return fmt.Errorf("store: bundle revision %q: %w", revision, store.ErrNotFound)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.Set(ctx, active, revision, 0)
			s.announce(ctx, p, ns, store.ChangeBundle, revision)
			return nil
		})
	}, revs)
}

// ActiveRevision returns the active revision; ErrNotFound if none was set.
func (s *Store) ActiveRevision(ctx context.Context, ns string) (string, error) {
	if err := s.check(ctx, ns); err != nil {
		return "", err
	}
	rev, err := s.rdb.Get(ctx, s.key(ns, kindActive)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store: active bundle revision: %w", store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("redis store: active revision: %w", err)
	}
	return rev, nil
}
