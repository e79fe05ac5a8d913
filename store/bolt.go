package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked means the data directory's database file is held by another
// Verdict process (bbolt takes an exclusive file lock), so OpenBolt gave up
// after BoltOptions.LockTimeout.
var ErrLocked = errors.New("data dir is in use by another Verdict process")

// BoltFile is the name of the database file OpenBolt keeps in the data
// directory.
const BoltFile = "verdict.db"

// defaultLockTimeout bounds the wait for the file lock when
// BoltOptions.LockTimeout is zero; bbolt itself would wait forever.
const defaultLockTimeout = time.Second

// Sub-bucket names, one per kind of record, under each namespace bucket.
var (
	bucketKeys    = []byte("keys")
	bucketClients = []byte("clients")
	bucketRefresh = []byte("refresh")
	bucketRevoked = []byte("revoked")
	bucketOneTime = []byte("onetime")
	// Bundle revisions: their records, their archives (apart, so that a
	// listing reads no archive) and the active pointer.
	bucketBundleRevs  = []byte("bundle_revisions")
	bucketBundleBlobs = []byte("bundle_archives")
	bucketBundleState = []byte("bundle_state")
	keyActiveRevision = "active"
)

var errNotOpen = errors.New("store: bolt store is not open")

// BoltOptions tunes OpenBolt. The zero value is ready to use.
type BoltOptions struct {
	// LockTimeout is how long OpenBolt waits for another process to release
	// the database file before failing with ErrLocked. Zero or negative
	// means one second.
	LockTimeout time.Duration
	// Now is the clock Revoked and UseOnce compare expiry times with. Nil
	// means time.Now.
	Now func() time.Time
}

// Bolt is the embedded Store: one bbolt file in the data directory, with a
// top-level bucket per namespace and a sub-bucket per kind of record, each
// value the JSON of the record. Every method runs in one bbolt transaction,
// so writes are atomic and fsynced before they return, and concurrent
// writers are serialised. A Bolt is safe for concurrent use. The zero value
// is not usable (its methods return an error): use OpenBolt.
type Bolt struct {
	db  *bolt.DB
	now func() time.Time
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the database BoltFile in dir, creating
// dir with mode 0700 and the file with mode 0600 when they do not exist. If
// another process holds the file for longer than opts.LockTimeout it returns
// an error wrapping ErrLocked; any other failure to create or open is
// returned wrapped, and nothing is left open.
func OpenBolt(dir string, opts BoltOptions) (*Bolt, error) {
	if dir == "" {
		return nil, errors.New("store: empty data dir")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	path := filepath.Join(dir, BoltFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Bolt{db: db, now: now}, nil
}

// Close releases the database file and its lock. Closing twice, or closing
// the zero Bolt, returns nil; later calls to other methods return an error.
func (b *Bolt) Close() error {
	if b == nil || b.db == nil {
		return nil
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping runs an empty read transaction: it returns ctx.Err() if ctx is done
// and an error if the store is closed.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	return run(b.db.View, func(*bolt.Tx) error { return nil })
}

// PutKey inserts or replaces the key with k.KID. It returns an error for an
// invalid namespace or an empty KID.
func (b *Bolt) PutKey(ctx context.Context, ns string, k SigningKey) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if k.KID == "" {
			return errors.New("store: empty key id")
		}
		bk, err := writeBucket(tx, ns, bucketKeys)
		if err != nil {
			return err
		}
		return putJSON(bk, k.KID, k)
	})
}

// Keys lists every key in ns, oldest first (by CreatedAt, then KID). An
// unknown namespace has no keys. It returns an error for an invalid
// namespace or an unreadable record.
func (b *Bolt) Keys(ctx context.Context, ns string) ([]SigningKey, error) {
	keys, err := listAll[SigningKey](ctx, b, ns, bucketKeys)
	if err != nil {
		return nil, err
	}
	SortKeys(keys)
	return keys, nil
}

// DeleteKey removes a key; ErrNotFound if there is none.
func (b *Bolt) DeleteKey(ctx context.Context, ns, kid string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		return deleteExisting(readBucket(tx, ns, bucketKeys), kid, "key")
	})
}

// CreateClient adds c; ErrConflict if the id exists, an error for an
// invalid namespace or an empty id.
func (b *Bolt) CreateClient(ctx context.Context, ns string, c Client) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if c.ID == "" {
			return errors.New("store: empty client id")
		}
		bk, err := writeBucket(tx, ns, bucketClients)
		if err != nil {
			return err
		}
		if bk.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("store: client %q: %w", c.ID, ErrConflict)
		}
		return putJSON(bk, c.ID, c)
	})
}

// UpdateClient replaces an existing client; ErrNotFound if none.
func (b *Bolt) UpdateClient(ctx context.Context, ns string, c Client) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketClients)
		if bk == nil || c.ID == "" || bk.Get([]byte(c.ID)) == nil {
			return fmt.Errorf("store: client %q: %w", c.ID, ErrNotFound)
		}
		return putJSON(bk, c.ID, c)
	})
}

// Client returns one client; ErrNotFound if none.
func (b *Bolt) Client(ctx context.Context, ns, id string) (Client, error) {
	var c Client
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		found, err := getJSON(readBucket(tx, ns, bucketClients), id, &c)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: client %q: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return Client{}, err
	}
	return c, nil
}

// ListClients lists every client in ns, sorted by id. An unknown namespace
// has no clients. It returns an error for an invalid namespace or an
// unreadable record.
func (b *Bolt) ListClients(ctx context.Context, ns string) ([]Client, error) {
	// bbolt iterates in byte order, which is Go's string order.
	return listAll[Client](ctx, b, ns, bucketClients)
}

// DeleteClient removes a client; ErrNotFound if none.
func (b *Bolt) DeleteClient(ctx context.Context, ns, id string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		return deleteExisting(readBucket(tx, ns, bucketClients), id, "client")
	})
}

// CreateFamily stores the first token of a new family; ErrConflict if the
// family exists, an error if t has no Family, TokenHash or ExpiresAt (a
// family without expiry would never be swept) or ns is invalid.
func (b *Bolt) CreateFamily(ctx context.Context, ns string, t RefreshToken) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if err := CheckRefreshToken(t); err != nil {
			return err
		}
		bk, err := writeBucket(tx, ns, bucketRefresh)
		if err != nil {
			return err
		}
		if bk.Get([]byte(t.Family)) != nil {
			return fmt.Errorf("store: refresh family %q: %w", t.Family, ErrConflict)
		}
		return putJSON(bk, t.Family, t)
	})
}

// Rotate replaces the family's token with next if its current hash is
// oldHash (compared in constant time), in one write transaction, so of
// concurrent rotations of the same token exactly one succeeds. next keeps
// the family id whatever next.Family says, its PrevHash becomes the
// replaced hash (read in the same transaction) whatever next.PrevHash
// says, and its AccessJTIs become the union of the stored ones and next's
// (see NextRotation). It returns ErrConflict if the family is revoked or
// its hash differs (reuse of a rotated token), ErrNotFound if there is no
// such family, and an error if next has no TokenHash or
// ExpiresAt.
func (b *Bolt) Rotate(ctx context.Context, ns, family string, oldHash []byte, next RefreshToken) error {
	next.Family = family
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if err := CheckRefreshToken(next); err != nil {
			return err
		}
		bk := readBucket(tx, ns, bucketRefresh)
		var cur RefreshToken
		found, err := getJSON(bk, family, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: refresh family %q: %w", family, ErrNotFound)
		}
		stored, err := NextRotation(cur, oldHash, next)
		if err != nil {
			return err
		}
		return putJSON(bk, family, stored)
	})
}

// Family returns a family; ErrNotFound if none.
func (b *Bolt) Family(ctx context.Context, ns, family string) (RefreshToken, error) {
	var t RefreshToken
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		found, err := getJSON(readBucket(tx, ns, bucketRefresh), family, &t)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: refresh family %q: %w", family, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return RefreshToken{}, err
	}
	return t, nil
}

// RevokeFamily marks the family revoked and returns it, with the access
// token ids issued from it; revoking a revoked family succeeds again.
// ErrNotFound if there is no such family.
func (b *Bolt) RevokeFamily(ctx context.Context, ns, family string) (RefreshToken, error) {
	var t RefreshToken
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketRefresh)
		found, err := getJSON(bk, family, &t)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: refresh family %q: %w", family, ErrNotFound)
		}
		t.Revoked = true
		return putJSON(bk, family, t)
	})
	if err != nil {
		return RefreshToken{}, err
	}
	return t, nil
}

// expiry is the stored value of a revoked or one-time token id.
type expiry struct {
	Exp time.Time `json:"exp"`
}

// Revoke records jti as revoked until exp. Revoking again keeps the later
// of the two expiry times. It returns an error for an empty jti or an
// invalid namespace.
func (b *Bolt) Revoke(ctx context.Context, ns, jti string, exp time.Time) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if jti == "" {
			return errors.New("store: empty token id")
		}
		bk, err := writeBucket(tx, ns, bucketRevoked)
		if err != nil {
			return err
		}
		var cur expiry
		found, err := getJSON(bk, jti, &cur)
		if err != nil {
			return err
		}
		if found && cur.Exp.After(exp) {
			return nil
		}
		return putJSON(bk, jti, expiry{Exp: exp})
	})
}

// Revoked reports whether jti is revoked, which is so only while the clock
// is before the exp it was revoked with. It returns an error for an invalid
// namespace or an unreadable record.
func (b *Bolt) Revoked(ctx context.Context, ns, jti string) (bool, error) {
	var revoked bool
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		var cur expiry
		found, err := getJSON(readBucket(tx, ns, bucketRevoked), jti, &cur)
		revoked = found && Live(b.now(), cur.Exp)
		return err
	})
	if err != nil {
		return false, err
	}
	return revoked, nil
}

// RevokedTokens lists the revocations of ns whose exp is after the store's
// clock, ordered by jti (expired ones wait for Sweep). It returns an error
// for an invalid namespace or an unreadable record.
func (b *Bolt) RevokedTokens(ctx context.Context, ns string) ([]RevokedToken, error) {
	var out []RevokedToken
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		now := b.now()
		return forEach(readBucket(tx, ns, bucketRevoked), func(k []byte, e expiry) error {
			if Live(now, e.Exp) {
				out = append(out, RevokedToken{JTI: string(k), Exp: e.Exp})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UseOnce records jti until exp and reports whether this was its first use:
// a second use before the recorded exp reports false; once the clock reaches
// exp the id is free and the next use reports true again. It returns false
// and an error for an empty jti or an invalid namespace.
func (b *Bolt) UseOnce(ctx context.Context, ns, jti string, exp time.Time) (bool, error) {
	var first bool
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		if jti == "" {
			return errors.New("store: empty token id")
		}
		bk, err := writeBucket(tx, ns, bucketOneTime)
		if err != nil {
			return err
		}
		var cur expiry
		found, err := getJSON(bk, jti, &cur)
		if err != nil {
			return err
		}
		if found && Live(b.now(), cur.Exp) {
			return nil
		}
		first = true
		return putJSON(bk, jti, expiry{Exp: exp})
	})
	if err != nil {
		return false, err
	}
	return first, nil
}

// Sweep deletes, in every namespace, revoked and one-time token ids whose
// exp is not after now and refresh families whose ExpiresAt is not after
// now, in one write transaction, and returns how many records it deleted.
// On error (ctx done, unreadable record, closed store) nothing is deleted
// and it returns 0.
func (b *Bolt) Sweep(ctx context.Context, now time.Time) (int, error) {
	if err := b.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := run(b.db.Update, func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, nsb *bolt.Bucket) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, kind := range [][]byte{bucketRevoked, bucketOneTime} {
				d, err := sweep(nsb.Bucket(kind), now, func(e expiry) time.Time { return e.Exp })
				if err != nil {
					return err
				}
				n += d
			}
			d, err := sweep(nsb.Bucket(bucketRefresh), now, func(t RefreshToken) time.Time { return t.ExpiresAt })
			n += d
			if err != nil {
				return err
			}
			d, err = sweepPeople(nsb, now)
			n += d
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// sweep deletes the records of bk whose expiry time is not after now.
func sweep[T any](bk *bolt.Bucket, now time.Time, exp func(T) time.Time) (int, error) {
	var dead [][]byte
	err := forEach(bk, func(k []byte, v T) error {
		if !now.Before(exp(v)) {
			// Keys are only valid during the transaction and deleting
			// while iterating can skip entries: collect, then delete.
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := bk.Delete(k); err != nil {
			return 0, fmt.Errorf("store: sweep: %w", err)
		}
	}
	return len(dead), nil
}

// PutRevision stores r and its archive in one transaction and reports
// whether the revision is new. The same revision with the same digest
// changes nothing and returns false; with another digest it returns an error
// wrapping ErrConflict. An empty revision or digest is an error.
func (b *Bolt) PutRevision(ctx context.Context, ns string, r BundleRevision, archive []byte) (bool, error) {
	created := false
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		if err := CheckRevision(r); err != nil {
			return err
		}
		revs, err := writeBucket(tx, ns, bucketBundleRevs)
		if err != nil {
			return err
		}
		var cur BundleRevision
		found, err := getJSON(revs, r.Revision, &cur)
		if err != nil {
			return err
		}
		if found {
			return SameRevision(cur, r)
		}
		blobs, err := writeBucket(tx, ns, bucketBundleBlobs)
		if err != nil {
			return err
		}
		if err := blobs.Put([]byte(r.Revision), archive); err != nil {
			return fmt.Errorf("store: put archive %q: %w", r.Revision, err)
		}
		r.Size = int64(len(archive))
		created = true
		return putJSON(revs, r.Revision, r)
	})
	return created, err
}

// Revisions lists every revision of ns, newest first (by PushedAt, then
// revision). It reads no archive.
func (b *Bolt) Revisions(ctx context.Context, ns string) ([]BundleRevision, error) {
	out, err := listAll[BundleRevision](ctx, b, ns, bucketBundleRevs)
	if err != nil {
		return nil, err
	}
	SortRevisions(out)
	return out, nil
}

// Revision returns one revision's record; ErrNotFound if none.
func (b *Bolt) Revision(ctx context.Context, ns, revision string) (BundleRevision, error) {
	var r BundleRevision
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		found, err := getJSON(readBucket(tx, ns, bucketBundleRevs), revision, &r)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: bundle revision %q: %w", revision, ErrNotFound)
		}
		return nil
	})
	return r, err
}

// Archive returns a copy of the revision's archive; ErrNotFound if none.
func (b *Bolt) Archive(ctx context.Context, ns, revision string) ([]byte, error) {
	var out []byte
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketBundleBlobs)
		var data []byte
		if bk != nil && revision != "" {
			data = bk.Get([]byte(revision))
		}
		if data == nil {
			return fmt.Errorf("store: bundle archive %q: %w", revision, ErrNotFound)
		}
		out = bytes.Clone(data) // bbolt's memory is only valid inside the transaction
		return nil
	})
	return out, err
}

// SetActive points the active revision at revision in one transaction;
// ErrNotFound if the revision is not stored (the pointer is then unchanged).
func (b *Bolt) SetActive(ctx context.Context, ns, revision string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		revs := readBucket(tx, ns, bucketBundleRevs)
		if revs == nil || revision == "" || revs.Get([]byte(revision)) == nil {
			return fmt.Errorf("store: bundle revision %q: %w", revision, ErrNotFound)
		}
		st, err := writeBucket(tx, ns, bucketBundleState)
		if err != nil {
			return err
		}
		if err := st.Put([]byte(keyActiveRevision), []byte(revision)); err != nil {
			return fmt.Errorf("store: set active revision: %w", err)
		}
		return nil
	})
}

// ActiveRevision returns the active revision; ErrNotFound if none was set.
func (b *Bolt) ActiveRevision(ctx context.Context, ns string) (string, error) {
	var rev string
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		st := readBucket(tx, ns, bucketBundleState)
		if st == nil || st.Get([]byte(keyActiveRevision)) == nil {
			return fmt.Errorf("store: active bundle revision: %w", ErrNotFound)
		}
		rev = string(st.Get([]byte(keyActiveRevision)))
		return nil
	})
	return rev, err
}

// ready reports why b cannot start a transaction for ctx, if it cannot.
func (b *Bolt) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil || b.db == nil {
		return errNotOpen
	}
	return nil
}

// view runs fn in a read transaction after checking ctx and ns.
func (b *Bolt) view(ctx context.Context, ns string, fn func(*bolt.Tx) error) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := CheckNamespace(ns); err != nil {
		return err
	}
	return run(b.db.View, fn)
}

// update runs fn in a write transaction, committed (and fsynced) only if fn
// returns nil, after checking ctx and ns.
func (b *Bolt) update(ctx context.Context, ns string, fn func(*bolt.Tx) error) error {
	if err := b.ready(ctx); err != nil {
		return err
	}
	if err := CheckNamespace(ns); err != nil {
		return err
	}
	return run(b.db.Update, fn)
}

// run runs fn in a transaction started by txn (DB.View or DB.Update) and
// returns fn's error as it is, or labels bbolt's own (a closed database, a
// failed commit).
func run(txn func(func(*bolt.Tx) error) error, fn func(*bolt.Tx) error) error {
	var fnErr error
	err := txn(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// readBucket returns the kind bucket of ns, or nil if it does not exist.
func readBucket(tx *bolt.Tx, ns string, kind []byte) *bolt.Bucket {
	nsb := tx.Bucket([]byte(ns))
	if nsb == nil {
		return nil
	}
	return nsb.Bucket(kind)
}

// writeBucket returns the kind bucket of ns, creating both as needed.
func writeBucket(tx *bolt.Tx, ns string, kind []byte) (*bolt.Bucket, error) {
	nsb, err := tx.CreateBucketIfNotExists([]byte(ns))
	if err != nil {
		return nil, fmt.Errorf("store: namespace %q: %w", ns, err)
	}
	bk, err := nsb.CreateBucketIfNotExists(kind)
	if err != nil {
		return nil, fmt.Errorf("store: namespace %q bucket %s: %w", ns, kind, err)
	}
	return bk, nil
}

// putJSON stores v as JSON under key.
func putJSON(bk *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %q: %w", key, err)
	}
	if err := bk.Put([]byte(key), data); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	return nil
}

// getJSON decodes the value under key into v and reports whether there was
// one; a nil bucket or empty key holds nothing.
func getJSON(bk *bolt.Bucket, key string, v any) (bool, error) {
	if bk == nil || key == "" {
		return false, nil
	}
	data := bk.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("store: decode %q: %w", key, err)
	}
	return true, nil
}

// listAll decodes every record of the kind bucket of ns, in key order; an
// empty list (not nil) when there are none.
func listAll[T any](ctx context.Context, b *Bolt, ns string, kind []byte) ([]T, error) {
	out := []T{}
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return forEach(readBucket(tx, ns, kind), func(_ []byte, v T) error {
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// forEach decodes every value of bk, in key order; a nil bucket is empty.
func forEach[T any](bk *bolt.Bucket, fn func(k []byte, v T) error) error {
	if bk == nil {
		return nil
	}
	return bk.ForEach(func(k, data []byte) error {
		if data == nil { // a nested bucket, which the layout never has
			return nil
		}
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("store: decode %q: %w", k, err)
		}
		return fn(k, v)
	})
}

// deleteExisting deletes key from bk, or returns ErrNotFound.
func deleteExisting(bk *bolt.Bucket, key, what string) error {
	if bk == nil || key == "" || bk.Get([]byte(key)) == nil {
		return fmt.Errorf("store: %s %q: %w", what, key, ErrNotFound)
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: delete %s %q: %w", what, key, err)
	}
	return nil
}

// union returns a followed by the members of b not in a, without
// duplicates.
func union(a, b []string) []string {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range slices.Concat(a, b) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
