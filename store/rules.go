package store

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The rules in this file are shared by every Store implementation so that
// the embedded and the Redis store cannot disagree on what a write means.

// CheckNamespace rejects namespaces that cannot be a bucket name or would be
// ambiguous in a key scheme that joins the namespace and the rest with "/"
// (the Redis store does).
func CheckNamespace(ns string) error {
	if ns == "" {
		return errors.New("store: empty namespace")
	}
	if strings.ContainsAny(ns, "/\x00") {
		return fmt.Errorf("store: namespace %q contains '/' or NUL", ns)
	}
	return nil
}

// CheckRefreshToken rejects refresh tokens that cannot be stored safely: no
// family, no hash, or no expiry (a family without expiry would never go).
func CheckRefreshToken(t RefreshToken) error {
	var errs []error
	if t.Family == "" {
		errs = append(errs, errors.New("store: empty refresh family"))
	}
	if len(t.TokenHash) == 0 {
		errs = append(errs, errors.New("store: empty refresh token hash"))
	}
	if t.ExpiresAt.IsZero() {
		errs = append(errs, errors.New("store: refresh token without expiry"))
	}
	return errors.Join(errs...)
}

// NextRotation is what Refresh.Rotate stores when it replaces cur, the
// family's stored record, with next, presented with oldHash: next with the
// family id kept, PrevHash set to the replaced hash (whatever next says) and
// AccessJTIs the union of the stored ones and next's. It returns ErrConflict
// if cur is revoked or its hash is not oldHash (compared in constant time;
// an empty oldHash never matches), and an error if next cannot be stored.
func NextRotation(cur RefreshToken, oldHash []byte, next RefreshToken) (RefreshToken, error) {
	next.Family = cur.Family
	if err := CheckRefreshToken(next); err != nil {
		return RefreshToken{}, err
	}
	if cur.Revoked {
		return RefreshToken{}, fmt.Errorf("store: refresh family %q is revoked: %w", cur.Family, ErrConflict)
	}
	// ConstantTimeCompare would accept two empty slices.
	if len(oldHash) == 0 || subtle.ConstantTimeCompare(cur.TokenHash, oldHash) != 1 {
		return RefreshToken{}, fmt.Errorf("store: refresh family %q: token is not current: %w", cur.Family, ErrConflict)
	}
	next.PrevHash = cur.TokenHash
	next.AccessJTIs = union(cur.AccessJTIs, next.AccessJTIs)
	return next, nil
}

// CheckRevision rejects a bundle revision record without a revision or a
// digest.
func CheckRevision(r BundleRevision) error {
	if r.Revision == "" || r.Digest == "" {
		return errors.New("store: bundle revision needs a revision and a digest")
	}
	return nil
}

// SameRevision decides a PutRevision of r over the stored record cur: nil
// when they have the same digest (a no-op), an error wrapping ErrConflict
// otherwise.
func SameRevision(cur, r BundleRevision) error {
	if cur.Digest != r.Digest {
		return fmt.Errorf("store: bundle revision %q exists with digest %s: %w", r.Revision, cur.Digest, ErrConflict)
	}
	return nil
}

// SortKeys orders keys as Keys.Keys lists them: oldest first (by CreatedAt,
// then KID).
func SortKeys(keys []SigningKey) {
	slices.SortFunc(keys, func(x, y SigningKey) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.KID, y.KID)
	})
}

// SortRevisions orders revisions as Bundles.Revisions lists them: newest
// first (by PushedAt, then revision).
func SortRevisions(revs []BundleRevision) {
	slices.SortFunc(revs, func(x, y BundleRevision) int {
		if c := y.PushedAt.Compare(x.PushedAt); c != 0 {
			return c
		}
		return strings.Compare(y.Revision, x.Revision)
	})
}

// Live reports whether a revoked or one-time token id recorded until exp
// still counts at now (it does strictly before exp).
func Live(now, exp time.Time) bool { return now.Before(exp) }

// SortClients orders clients as Clients.ListClients lists them: by id.
func SortClients(clients []Client) {
	slices.SortFunc(clients, func(x, y Client) int { return strings.Compare(x.ID, y.ID) })
}
