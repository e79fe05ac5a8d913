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

// The records of people who sign in (store.People) add to the layout of
// the package documentation:
//
//	{P}<ns>/users                  hash id -> User JSON
//	{P}<ns>/user-emails            hash email -> user id (the unique index)
//	{P}<ns>/user-families/<user>   hash family -> UserFamily JSON, expires
//	                               at the latest ExpiresAt of its families
//	{P}<ns>/sessions/<id>          Session JSON, expires at ExpiresAt
//	{P}<ns>/user-sessions/<user>   sorted set session id -> ExpiresAt (unix
//	                               ms, rounded up), expires with its last
//	                               session
//	{P}<ns>/consents/<user>        hash client id -> Consent JSON
//	{P}<ns>/codes/<hash>           AuthCode JSON, expires at ExpiresAt
//	{P}<ns>/attempts/<key>         hash failures, exp and lock (unix ns as
//	                               19 digits), expires at exp
//	{P}<ns>/audit/<user>           sorted set, every score 0 so in byte
//	                               order, of "<unix ns, 19 digits>\x00<id>
//	                               \x00<AuditEvent JSON>": oldest first
//	{P}<ns>/audit-users            set of the users with audit events
//	{P}audit-namespaces            set of the namespaces with audit events,
//	                               so that PruneAudit needs no SCAN
//
// The part after the kind (a user id, a session id, a key) may contain
// "/": the namespace and the kind cannot, so keys stay unambiguous. User
// writes are announced (kind user), and so are session deletions (kind
// session); nothing else of people is cached by replicas.

// Key kinds of the people records.
const (
	kindUsers        = "users"
	kindUserEmails   = "user-emails"
	kindUserFamilies = "user-families"
	kindSessions     = "sessions"
	kindUserSessions = "user-sessions"
	kindConsents     = "consents"
	kindCodes        = "codes"
	kindAttempts     = "attempts"
	kindAudit        = "audit"
	kindAuditUsers   = "audit-users"
)

var _ store.People = (*Store)(nil)

// CreateUser adds u and announces it (kind user), under WATCH of the user
// hash and the email index, so that of concurrent creations with one id
// or one email exactly one succeeds. ErrConflict if the id or the email is
// taken, an error without ID or Email.
func (s *Store) CreateUser(ctx context.Context, ns string, u store.User) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if u.ID == "" || u.Email == "" {
		return errors.New("store: a user needs an id and an email")
	}
	data, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("store: encode user %q: %w", u.ID, err)
	}
	users, emails := s.key(ns, kindUsers), s.key(ns, kindUserEmails)
	return s.txn(ctx, func(tx *redis.Tx) error {
		taken, err := tx.HExists(ctx, users, u.ID).Result()
		if err != nil {
			return fmt.Errorf("redis store: %w", err)
		}
		if taken {
			return fmt.Errorf("store: user %q: %w", u.ID, store.ErrConflict)
		}
		if taken, err = tx.HExists(ctx, emails, u.Email).Result(); err != nil {
			return fmt.Errorf("redis store: %w", err)
		}
		if taken {
			return fmt.Errorf("store: email is taken: %w", store.ErrConflict)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HSet(ctx, users, u.ID, data)
			p.HSet(ctx, emails, u.Email, u.ID)
			s.announce(ctx, p, ns, store.ChangeUser, u.ID)
			return nil
		})
	}, users, emails)
}

// UpdateUser replaces an existing user, moving its email index entry when
// the email changed, and announces it, under WATCH like CreateUser.
// ErrNotFound if none, ErrConflict if the new email belongs to another
// user, an error without Email.
func (s *Store) UpdateUser(ctx context.Context, ns string, u store.User) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	data, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("store: encode user %q: %w", u.ID, err)
	}
	users, emails := s.key(ns, kindUsers), s.key(ns, kindUserEmails)
	return s.txn(ctx, func(tx *redis.Tx) error {
		var cur store.User
		found, err := hgetJSON(ctx, tx, users, u.ID, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: user %q: %w", u.ID, store.ErrNotFound)
		}
		if u.Email == "" {
			return errors.New("store: a user needs an email")
		}
		moved := u.Email != cur.Email
		if moved {
			owner, err := tx.HGet(ctx, emails, u.Email).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("redis store: %w", err)
			}
			if err == nil && owner != u.ID {
				return fmt.Errorf("store: email is taken: %w", store.ErrConflict)
			}
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			if moved {
				p.HDel(ctx, emails, cur.Email)
				p.HSet(ctx, emails, u.Email, u.ID)
			}
			p.HSet(ctx, users, u.ID, data)
			s.announce(ctx, p, ns, store.ChangeUser, u.ID)
			return nil
		})
	}, users, emails)
}

// User returns one user; ErrNotFound if none.
func (s *Store) User(ctx context.Context, ns, id string) (store.User, error) {
	return hrecord[store.User](ctx, s, ns, kindUsers, id, "user")
}

// UserByEmail returns the user with that email (as stored: the caller
// normalises); ErrNotFound if none, or if the user's email changed between
// the index lookup and the read.
func (s *Store) UserByEmail(ctx context.Context, ns, email string) (store.User, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.User{}, err
	}
	notFound := fmt.Errorf("store: no user with that email: %w", store.ErrNotFound)
	if email == "" {
		return store.User{}, notFound
	}
	id, err := s.rdb.HGet(ctx, s.key(ns, kindUserEmails), email).Result()
	if errors.Is(err, redis.Nil) {
		return store.User{}, notFound
	}
	if err != nil {
		return store.User{}, fmt.Errorf("redis store: read email index: %w", err)
	}
	var u store.User
	found, err := hgetJSON(ctx, s.rdb, s.key(ns, kindUsers), id, &u)
	if err != nil {
		return store.User{}, err
	}
	if !found || u.Email != email {
		return store.User{}, notFound
	}
	return u, nil
}

// ListUsers lists every user of ns by id; an empty list for an unknown
// namespace.
func (s *Store) ListUsers(ctx context.Context, ns string) ([]store.User, error) {
	return hlist(ctx, s, ns, kindUsers, func(us []store.User) {
		slices.SortFunc(us, func(a, b store.User) int { return strings.Compare(a.ID, b.ID) })
	})
}

// DeleteUser removes a user and its email index entry and announces it;
// ErrNotFound if none. Sessions, consents and audit events are the
// caller's to remove.
func (s *Store) DeleteUser(ctx context.Context, ns, id string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	users, emails := s.key(ns, kindUsers), s.key(ns, kindUserEmails)
	return s.txn(ctx, func(tx *redis.Tx) error {
		var cur store.User
		found, err := hgetJSON(ctx, tx, users, id, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: user %q: %w", id, store.ErrNotFound)
		}
		owner, err := tx.HGet(ctx, emails, cur.Email).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("redis store: %w", err)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HDel(ctx, users, id)
			if owner == id {
				p.HDel(ctx, emails, cur.Email)
			}
			s.announce(ctx, p, ns, store.ChangeUser, id)
			return nil
		})
	}, users, emails)
}

// AddUserFamily records f under the user, replacing the same family's
// record, under WATCH of the user's family hash: in the same transaction
// it drops the families that have expired at the store's clock and sets
// the hash to expire with the latest of the others. An error without
// userID, Family or ExpiresAt. Not announced.
func (s *Store) AddUserFamily(ctx context.Context, ns, userID string, f store.UserFamily) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if userID == "" || f.Family == "" || f.ExpiresAt.IsZero() {
		return errors.New("store: a user family needs a user, a family and an expiry")
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("store: encode user family %q: %w", f.Family, err)
	}
	key := s.key(ns, kindUserFamilies, userID)
	return s.txn(ctx, func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("redis store: read %s: %w", key, err)
		}
		now, last := s.now(), f.ExpiresAt
		var dead []string
		for family, v := range m {
			if family == f.Family {
				continue
			}
			var cur store.UserFamily
			if err := json.Unmarshal([]byte(v), &cur); err != nil {
				return fmt.Errorf("redis store: decode %s %s: %w", key, family, err)
			}
			if !store.Live(now, cur.ExpiresAt) {
				dead = append(dead, family)
			} else if cur.ExpiresAt.After(last) {
				last = cur.ExpiresAt
			}
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, f.Family, data)
			if len(dead) > 0 {
				p.HDel(ctx, key, dead...)
			}
			p.PExpireAt(ctx, key, expireAtOrEpoch(last))
			return nil
		})
	}, key)
}

// UserFamilies lists the user's families that have not expired at the
// store's clock, by family id.
func (s *Store) UserFamilies(ctx context.Context, ns, userID string) ([]store.UserFamily, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	out := []store.UserFamily{}
	if userID == "" {
		return out, nil
	}
	key := s.key(ns, kindUserFamilies, userID)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", key, err)
	}
	now := s.now()
	for family, v := range m {
		var f store.UserFamily
		if err := json.Unmarshal([]byte(v), &f); err != nil {
			return nil, fmt.Errorf("redis store: decode %s %s: %w", key, family, err)
		}
		if store.Live(now, f.ExpiresAt) {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b store.UserFamily) int { return strings.Compare(a.Family, b.Family) })
	return out, nil
}

// DeleteUserFamilies forgets every family record of a user (none is not
// an error).
func (s *Store) DeleteUserFamilies(ctx context.Context, ns, userID string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if userID == "" {
		return nil
	}
	if err := s.rdb.Del(ctx, s.key(ns, kindUserFamilies, userID)).Err(); err != nil {
		return fmt.Errorf("redis store: delete user families: %w", err)
	}
	return nil
}

// PutSession inserts or replaces a session, expiring at its ExpiresAt, and
// indexes it under its user, under WATCH of the session and the index: in
// the same transaction it removes the session from its previous user's
// index (if the user changed), drops the index entries that have expired
// at the store's clock and sets the index to expire with its last session.
// An error without ID, UserID or ExpiresAt. Not announced.
func (s *Store) PutSession(ctx context.Context, ns string, sess store.Session) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if sess.ID == "" || sess.UserID == "" || sess.ExpiresAt.IsZero() {
		return errors.New("store: a session needs an id, a user and an expiry")
	}
	data, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("store: encode session: %w", err)
	}
	key, idx := s.key(ns, kindSessions, sess.ID), s.key(ns, kindUserSessions, sess.UserID)
	exp := expireAtOrEpoch(sess.ExpiresAt)
	return s.txn(ctx, func(tx *redis.Tx) error {
		var old store.Session
		found, err := getJSON(ctx, tx, key, &old)
		if err != nil {
			return err
		}
		entries, err := tx.ZRangeWithScores(ctx, idx, 0, -1).Result()
		if err != nil {
			return fmt.Errorf("redis store: read %s: %w", idx, err)
		}
		// An entry scored at or before now (in ms, rounded down) is of a
		// session that has expired at the store's clock.
		nowMs := s.now().UnixMilli()
		last := exp.UnixMilli()
		for _, z := range entries {
			if ms := int64(z.Score); z.Member != sess.ID && ms > nowMs && ms > last {
				last = ms
			}
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			if found && old.UserID != sess.UserID {
				p.ZRem(ctx, s.key(ns, kindUserSessions, old.UserID), sess.ID)
			}
			p.SetArgs(ctx, key, data, redis.SetArgs{ExpireAt: exp})
			p.ZAdd(ctx, idx, redis.Z{Score: float64(exp.UnixMilli()), Member: sess.ID})
			p.ZRemRangeByScore(ctx, idx, "-inf", strconv.FormatInt(nowMs, 10))
			p.PExpireAt(ctx, idx, time.UnixMilli(last))
			return nil
		})
	}, key, idx)
}

// Session returns one session; ErrNotFound if none or if it is past its
// ExpiresAt at the store's clock.
func (s *Store) Session(ctx context.Context, ns, id string) (store.Session, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.Session{}, err
	}
	var sess store.Session
	found := false
	var err error
	if id != "" {
		found, err = getJSON(ctx, s.rdb, s.key(ns, kindSessions, id), &sess)
	}
	if err != nil {
		return store.Session{}, err
	}
	if !found || !store.Live(s.now(), sess.ExpiresAt) {
		return store.Session{}, fmt.Errorf("store: session: %w", store.ErrNotFound)
	}
	return sess, nil
}

// UserSessions lists a user's live sessions, oldest first
// (store.SortSessions): the index entries not yet expired, read with one
// MGET.
func (s *Store) UserSessions(ctx context.Context, ns, userID string) ([]store.Session, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	out := []store.Session{}
	if userID == "" {
		return out, nil
	}
	now := s.now()
	idx := s.key(ns, kindUserSessions, userID)
	ids, err := s.rdb.ZRangeByScore(ctx, idx, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", idx, err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(ns, kindSessions, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read sessions: %w", err)
	}
	for i, v := range vals {
		data, ok := v.(string)
		if !ok { // nil: the session is gone
			continue
		}
		var sess store.Session
		if err := json.Unmarshal([]byte(data), &sess); err != nil {
			return nil, fmt.Errorf("redis store: decode %s: %w", keys[i], err)
		}
		if sess.UserID == userID && store.Live(now, sess.ExpiresAt) {
			out = append(out, sess)
		}
	}
	store.SortSessions(out)
	return out, nil
}

// DeleteSession removes a session and its index entry, announces it (kind
// session) and returns it; ErrNotFound if none.
func (s *Store) DeleteSession(ctx context.Context, ns, id string) (store.Session, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.Session{}, err
	}
	key := s.key(ns, kindSessions, id)
	var sess store.Session
	err := s.txn(ctx, func(tx *redis.Tx) error {
		sess = store.Session{}
		found := false
		var err error
		if id != "" {
			found, err = getJSON(ctx, tx, key, &sess)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: session: %w", store.ErrNotFound)
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			p.ZRem(ctx, s.key(ns, kindUserSessions, sess.UserID), id)
			s.announce(ctx, p, ns, store.ChangeSession, id)
			return nil
		})
	}, key)
	if err != nil {
		return store.Session{}, err
	}
	return sess, nil
}

// PutConsent inserts or replaces the consent of (c.UserID, c.ClientID); an
// error without either. Not announced.
func (s *Store) PutConsent(ctx context.Context, ns string, c store.Consent) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if c.UserID == "" || c.ClientID == "" {
		return errors.New("store: a consent needs a user and a client")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode consent: %w", err)
	}
	if err := s.rdb.HSet(ctx, s.key(ns, kindConsents, c.UserID), c.ClientID, data).Err(); err != nil {
		return fmt.Errorf("redis store: put consent: %w", err)
	}
	return nil
}

// Consent returns the consent of (userID, clientID); ErrNotFound if none.
func (s *Store) Consent(ctx context.Context, ns, userID, clientID string) (store.Consent, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.Consent{}, err
	}
	var c store.Consent
	found := false
	var err error
	if userID != "" {
		found, err = hgetJSON(ctx, s.rdb, s.key(ns, kindConsents, userID), clientID, &c)
	}
	if err != nil {
		return store.Consent{}, err
	}
	if !found {
		return store.Consent{}, fmt.Errorf("store: consent: %w", store.ErrNotFound)
	}
	return c, nil
}

// UserConsents lists a user's consents by client id.
func (s *Store) UserConsents(ctx context.Context, ns, userID string) ([]store.Consent, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	out := []store.Consent{}
	if userID == "" {
		return out, nil
	}
	key := s.key(ns, kindConsents, userID)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", key, err)
	}
	for client, v := range m {
		var c store.Consent
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return nil, fmt.Errorf("redis store: decode %s %s: %w", key, client, err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b store.Consent) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// DeleteUserConsents removes every consent of a user (none is not an
// error).
func (s *Store) DeleteUserConsents(ctx context.Context, ns, userID string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if userID == "" {
		return nil
	}
	if err := s.rdb.Del(ctx, s.key(ns, kindConsents, userID)).Err(); err != nil {
		return fmt.Errorf("redis store: delete consents: %w", err)
	}
	return nil
}

// CreateCode stores c, not redeemed whatever c says, expiring at its
// ExpiresAt (SET NX); ErrConflict if the hash exists, an error without
// Hash or ExpiresAt. Not announced.
func (s *Store) CreateCode(ctx context.Context, ns string, c store.AuthCode) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if c.Hash == "" || c.ExpiresAt.IsZero() {
		return errors.New("store: a code needs a hash and an expiry")
	}
	c.Redeemed, c.Family, c.AccessJTI = false, "", ""
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: encode code: %w", err)
	}
	err = s.rdb.SetArgs(ctx, s.key(ns, kindCodes, c.Hash), data, redis.SetArgs{Mode: "NX", ExpireAt: expireAtOrEpoch(c.ExpiresAt)}).Err()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: code: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("redis store: create code: %w", err)
	}
	return nil
}

// RedeemCode marks the code redeemed with family and accessJTI under
// WATCH (keeping its expiry), so of concurrent redemptions exactly one
// sees first true; a code already redeemed comes back as stored and first
// false. ErrNotFound if there is no such code or it has expired at the
// store's clock. Not announced.
func (s *Store) RedeemCode(ctx context.Context, ns, hash, family, accessJTI string) (store.AuthCode, bool, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.AuthCode{}, false, err
	}
	key := s.key(ns, kindCodes, hash)
	var (
		c     store.AuthCode
		first bool
	)
	err := s.txn(ctx, func(tx *redis.Tx) error {
		c, first = store.AuthCode{}, false
		found := false
		var err error
		if hash != "" {
			found, err = getJSON(ctx, tx, key, &c)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: code: %w", store.ErrNotFound)
		}
		if !store.Live(s.now(), c.ExpiresAt) {
			return fmt.Errorf("store: code expired: %w", store.ErrNotFound)
		}
		if c.Redeemed {
			return nil
		}
		c.Redeemed, c.Family, c.AccessJTI = true, family, accessJTI
		data, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("store: encode code: %w", err)
		}
		if err := exec(ctx, tx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, redis.SetArgs{KeepTTL: true})
			return nil
		}); err != nil {
			return err
		}
		first = true
		return nil
	}, key)
	if err != nil {
		return store.AuthCode{}, false, err
	}
	return c, first, nil
}

// expireAtOrEpoch is expireAt(t), but never before the first millisecond
// of 1970: Redis refuses a negative expiry, and one in the past deletes
// the key at once, which is what a record expired so long ago deserves.
func expireAtOrEpoch(t time.Time) time.Time {
	if !t.After(time.UnixMilli(1)) {
		return time.UnixMilli(1)
	}
	return expireAt(t)
}
