package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the people records. Index buckets hold keys only: the email
// index maps an email to a user id, the others are "parent\x00child" keys
// listed by prefix.
var (
	bucketUsers        = []byte("users")
	bucketUserEmails   = []byte("user_emails")
	bucketSessions     = []byte("sessions")
	bucketUserSessions = []byte("user_sessions")
	bucketConsents     = []byte("consents")
	bucketAuthCodes    = []byte("auth_codes")
	bucketAttempts     = []byte("login_attempts")
	bucketAudit        = []byte("audit")
	bucketUserFamilies = []byte("user_families")
)

var _ People = (*Bolt)(nil)

// pair is the key of a child record listed under its parent.
func pair(parent, child string) string { return parent + "\x00" + child }

// CreateUser adds u; ErrConflict if its id or email is taken, an error
// without ID or Email.
func (b *Bolt) CreateUser(ctx context.Context, ns string, u User) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if u.ID == "" || u.Email == "" {
			return errors.New("store: a user needs an id and an email")
		}
		users, emails, err := userBuckets(tx, ns)
		if err != nil {
			return err
		}
		if users.Get([]byte(u.ID)) != nil {
			return fmt.Errorf("store: user %q: %w", u.ID, ErrConflict)
		}
		if emails.Get([]byte(u.Email)) != nil {
			return fmt.Errorf("store: email is taken: %w", ErrConflict)
		}
		if err := emails.Put([]byte(u.Email), []byte(u.ID)); err != nil {
			return fmt.Errorf("store: put email: %w", err)
		}
		return putJSON(users, u.ID, u)
	})
}

// UpdateUser replaces an existing user, moving its email index entry when
// the email changed; ErrNotFound if none, ErrConflict if the new email
// belongs to another user.
func (b *Bolt) UpdateUser(ctx context.Context, ns string, u User) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		users, emails, err := userBuckets(tx, ns)
		if err != nil {
			return err
		}
		var cur User
		found, err := getJSON(users, u.ID, &cur)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("store: user %q: %w", u.ID, ErrNotFound)
		}
		if u.Email == "" {
			return errors.New("store: a user needs an email")
		}
		if u.Email != cur.Email {
			if owner := emails.Get([]byte(u.Email)); owner != nil && string(owner) != u.ID {
				return fmt.Errorf("store: email is taken: %w", ErrConflict)
			}
			if err := emails.Delete([]byte(cur.Email)); err != nil {
				return fmt.Errorf("store: delete email: %w", err)
			}
			if err := emails.Put([]byte(u.Email), []byte(u.ID)); err != nil {
				return fmt.Errorf("store: put email: %w", err)
			}
		}
		return putJSON(users, u.ID, u)
	})
}

// User returns one user; ErrNotFound if none.
func (b *Bolt) User(ctx context.Context, ns, id string) (User, error) {
	var u User
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return getExisting(readBucket(tx, ns, bucketUsers), id, "user", &u)
	})
	return u, err
}

// UserByEmail returns the user with that email; ErrNotFound if none.
func (b *Bolt) UserByEmail(ctx context.Context, ns, email string) (User, error) {
	var u User
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		emails := readBucket(tx, ns, bucketUserEmails)
		var id []byte
		if emails != nil && email != "" {
			id = emails.Get([]byte(email))
		}
		if id == nil {
			return fmt.Errorf("store: no user with that email: %w", ErrNotFound)
		}
		return getExisting(readBucket(tx, ns, bucketUsers), string(id), "user", &u)
	})
	return u, err
}

// ListUsers lists every user by id; an empty list for an unknown
// namespace.
func (b *Bolt) ListUsers(ctx context.Context, ns string) ([]User, error) {
	return listAll[User](ctx, b, ns, bucketUsers)
}

// DeleteUser removes a user and its email index entry; ErrNotFound if
// none. Sessions, consents and audit events are the caller's to remove.
func (b *Bolt) DeleteUser(ctx context.Context, ns, id string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		users, emails, err := userBuckets(tx, ns)
		if err != nil {
			return err
		}
		var cur User
		if err := getExisting(users, id, "user", &cur); err != nil {
			return err
		}
		if err := emails.Delete([]byte(cur.Email)); err != nil {
			return fmt.Errorf("store: delete email: %w", err)
		}
		return deleteExisting(users, id, "user")
	})
}

// AddUserFamily records f under the user, replacing the same family's
// record; an error without userID, Family or ExpiresAt.
func (b *Bolt) AddUserFamily(ctx context.Context, ns, userID string, f UserFamily) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if userID == "" || f.Family == "" || f.ExpiresAt.IsZero() {
			return errors.New("store: a user family needs a user, a family and an expiry")
		}
		bk, err := writeBucket(tx, ns, bucketUserFamilies)
		if err != nil {
			return err
		}
		return putJSON(bk, pair(userID, f.Family), f)
	})
}

// UserFamilies lists the user's unexpired families by family id.
func (b *Bolt) UserFamilies(ctx context.Context, ns, userID string) ([]UserFamily, error) {
	out := []UserFamily{}
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return forPrefix(readBucket(tx, ns, bucketUserFamilies), userID, func(_ []byte, f UserFamily) error {
			if Live(b.now(), f.ExpiresAt) {
				out = append(out, f)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUserFamilies forgets every family record of a user.
func (b *Bolt) DeleteUserFamilies(ctx context.Context, ns, userID string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		return deletePrefix(readBucket(tx, ns, bucketUserFamilies), userID)
	})
}

func userBuckets(tx *bolt.Tx, ns string) (users, emails *bolt.Bucket, err error) {
	if users, err = writeBucket(tx, ns, bucketUsers); err != nil {
		return nil, nil, err
	}
	emails, err = writeBucket(tx, ns, bucketUserEmails)
	return users, emails, err
}

// PutSession inserts or replaces a session, moving its index entry when
// the replaced session was another user's; an error without ID, UserID or
// ExpiresAt.
func (b *Bolt) PutSession(ctx context.Context, ns string, s Session) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if s.ID == "" || s.UserID == "" || s.ExpiresAt.IsZero() {
			return errors.New("store: a session needs an id, a user and an expiry")
		}
		bk, err := writeBucket(tx, ns, bucketSessions)
		if err != nil {
			return err
		}
		idx, err := writeBucket(tx, ns, bucketUserSessions)
		if err != nil {
			return err
		}
		var old Session
		found, err := getJSON(bk, s.ID, &old)
		if err != nil {
			return err
		}
		if found && old.UserID != s.UserID {
			if err := idx.Delete([]byte(pair(old.UserID, s.ID))); err != nil {
				return fmt.Errorf("store: delete session index: %w", err)
			}
		}
		if err := idx.Put([]byte(pair(s.UserID, s.ID)), nil); err != nil {
			return fmt.Errorf("store: put session index: %w", err)
		}
		return putJSON(bk, s.ID, s)
	})
}

// Session returns one live session; ErrNotFound if none or expired.
func (b *Bolt) Session(ctx context.Context, ns, id string) (Session, error) {
	var s Session
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		if err := getExisting(readBucket(tx, ns, bucketSessions), id, "session", &s); err != nil {
			return err
		}
		if !Live(b.now(), s.ExpiresAt) {
			return fmt.Errorf("store: session: %w", ErrNotFound)
		}
		return nil
	})
	return s, err
}

// UserSessions lists a user's live sessions, oldest first.
func (b *Bolt) UserSessions(ctx context.Context, ns, userID string) ([]Session, error) {
	out := []Session{}
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		sessions := readBucket(tx, ns, bucketSessions)
		return prefixKeys(readBucket(tx, ns, bucketUserSessions), userID, func(id string) error {
			var s Session
			found, err := getJSON(sessions, id, &s)
			if err == nil && found && s.UserID == userID && Live(b.now(), s.ExpiresAt) {
				out = append(out, s)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	SortSessions(out)
	return out, nil
}

// DeleteSession removes a session and returns it; ErrNotFound if none.
func (b *Bolt) DeleteSession(ctx context.Context, ns, id string) (Session, error) {
	var s Session
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketSessions)
		if err := getExisting(bk, id, "session", &s); err != nil {
			return err
		}
		if idx := readBucket(tx, ns, bucketUserSessions); idx != nil {
			if err := idx.Delete([]byte(pair(s.UserID, s.ID))); err != nil {
				return fmt.Errorf("store: delete session index: %w", err)
			}
		}
		return deleteExisting(bk, id, "session")
	})
	return s, err
}

// PutConsent inserts or replaces the consent of (c.UserID, c.ClientID).
func (b *Bolt) PutConsent(ctx context.Context, ns string, c Consent) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if c.UserID == "" || c.ClientID == "" {
			return errors.New("store: a consent needs a user and a client")
		}
		bk, err := writeBucket(tx, ns, bucketConsents)
		if err != nil {
			return err
		}
		return putJSON(bk, pair(c.UserID, c.ClientID), c)
	})
}

// Consent returns the consent of (userID, clientID); ErrNotFound if none.
func (b *Bolt) Consent(ctx context.Context, ns, userID, clientID string) (Consent, error) {
	var c Consent
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return getExisting(readBucket(tx, ns, bucketConsents), pair(userID, clientID), "consent", &c)
	})
	return c, err
}

// UserConsents lists a user's consents by client id.
func (b *Bolt) UserConsents(ctx context.Context, ns, userID string) ([]Consent, error) {
	out := []Consent{}
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketConsents)
		return prefixKeys(bk, userID, func(client string) error {
			var c Consent
			found, err := getJSON(bk, pair(userID, client), &c)
			if found {
				out = append(out, c)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUserConsents removes every consent of a user.
func (b *Bolt) DeleteUserConsents(ctx context.Context, ns, userID string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		return deletePrefix(readBucket(tx, ns, bucketConsents), userID)
	})
}

// CreateCode stores c; ErrConflict if its hash exists, an error without
// Hash or ExpiresAt.
func (b *Bolt) CreateCode(ctx context.Context, ns string, c AuthCode) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if c.Hash == "" || c.ExpiresAt.IsZero() {
			return errors.New("store: a code needs a hash and an expiry")
		}
		bk, err := writeBucket(tx, ns, bucketAuthCodes)
		if err != nil {
			return err
		}
		if bk.Get([]byte(c.Hash)) != nil {
			return fmt.Errorf("store: code: %w", ErrConflict)
		}
		c.Redeemed, c.Family, c.AccessJTI = false, "", ""
		return putJSON(bk, c.Hash, c)
	})
}

// RedeemCode marks the code redeemed in one write transaction, so of two
// concurrent redemptions exactly one sees first true.
func (b *Bolt) RedeemCode(ctx context.Context, ns, hash, family, accessJTI string) (AuthCode, bool, error) {
	var (
		c     AuthCode
		first bool
	)
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketAuthCodes)
		if err := getExisting(bk, hash, "code", &c); err != nil {
			return err
		}
		if !Live(b.now(), c.ExpiresAt) {
			return fmt.Errorf("store: code expired: %w", ErrNotFound)
		}
		if c.Redeemed {
			return nil
		}
		first = true
		c.Redeemed, c.Family, c.AccessJTI = true, family, accessJTI
		return putJSON(bk, hash, c)
	})
	if err != nil {
		return AuthCode{}, false, err
	}
	return c, first, nil
}

// AddFailure adds one failure to key and returns the count.
func (b *Bolt) AddFailure(ctx context.Context, ns, key string, expires time.Time) (int, error) {
	var n int
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk, err := writeAttempts(tx, ns, key)
		if err != nil {
			return err
		}
		var a LoginAttempts
		if _, err := getJSON(bk, key, &a); err != nil {
			return err
		}
		if !Live(b.now(), a.ExpiresAt) {
			a = LoginAttempts{}
		}
		a.Failures++
		if expires.After(a.ExpiresAt) {
			a.ExpiresAt = expires
		}
		n = a.Failures
		return putJSON(bk, key, a)
	})
	return n, err
}

// LockUntil sets key's lockout end, making the record live at least that
// long; ErrNotFound if key has no live record.
func (b *Bolt) LockUntil(ctx context.Context, ns, key string, until time.Time) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk, err := writeAttempts(tx, ns, key)
		if err != nil {
			return err
		}
		var a LoginAttempts
		found, err := getJSON(bk, key, &a)
		if err != nil {
			return err
		}
		if !found || !Live(b.now(), a.ExpiresAt) {
			return fmt.Errorf("store: login attempts: %w", ErrNotFound)
		}
		a.LockedUntil = until
		if until.After(a.ExpiresAt) {
			a.ExpiresAt = until
		}
		return putJSON(bk, key, a)
	})
}

// Attempts returns key's record, the zero record if none or expired.
func (b *Bolt) Attempts(ctx context.Context, ns, key string) (LoginAttempts, error) {
	var a LoginAttempts
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		_, err := getJSON(readBucket(tx, ns, bucketAttempts), key, &a)
		return err
	})
	if err != nil || !Live(b.now(), a.ExpiresAt) {
		return LoginAttempts{}, err
	}
	return a, nil
}

// ClearAttempts forgets key (nothing to forget is not an error).
func (b *Bolt) ClearAttempts(ctx context.Context, ns, key string) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if bk := readBucket(tx, ns, bucketAttempts); bk != nil && key != "" {
			if err := bk.Delete([]byte(key)); err != nil {
				return fmt.Errorf("store: clear attempts: %w", err)
			}
		}
		return nil
	})
}

func writeAttempts(tx *bolt.Tx, ns, key string) (*bolt.Bucket, error) {
	if key == "" {
		return nil, errors.New("store: empty attempts key")
	}
	return writeBucket(tx, ns, bucketAttempts)
}

// auditKey orders a user's events by time: user, then the RFC 3339 time
// with fixed nanoseconds, then the id.
func auditKey(e AuditEvent) string {
	return pair(e.UserID, e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z")+"\x00"+e.ID)
}

// AppendAudit stores e; an error without ID or Time.
func (b *Bolt) AppendAudit(ctx context.Context, ns string, e AuditEvent) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if e.ID == "" || e.Time.IsZero() {
			return errors.New("store: an audit event needs an id and a time")
		}
		bk, err := writeBucket(tx, ns, bucketAudit)
		if err != nil {
			return err
		}
		return putJSON(bk, auditKey(e), e)
	})
}

// UserAudit lists a user's events, oldest first.
func (b *Bolt) UserAudit(ctx context.Context, ns, userID string) ([]AuditEvent, error) {
	out := []AuditEvent{}
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		return forPrefix(readBucket(tx, ns, bucketAudit), userID, func(_ []byte, e AuditEvent) error {
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PseudonymizeAudit moves a user's events to pseudonym and clears their
// IP, in one transaction.
func (b *Bolt) PseudonymizeAudit(ctx context.Context, ns, userID, pseudonym string) (int, error) {
	var n int
	err := b.update(ctx, ns, func(tx *bolt.Tx) error {
		bk := readBucket(tx, ns, bucketAudit)
		var events []AuditEvent
		var keys [][]byte
		if err := forPrefix(bk, userID, func(k []byte, e AuditEvent) error {
			keys, events = append(keys, bytes.Clone(k)), append(events, e)
			return nil
		}); err != nil {
			return err
		}
		for i, e := range events {
			if err := bk.Delete(keys[i]); err != nil {
				return fmt.Errorf("store: pseudonymize audit: %w", err)
			}
			e.UserID, e.IP = pseudonym, ""
			if err := putJSON(bk, auditKey(e), e); err != nil {
				return err
			}
		}
		n = len(events)
		return nil
	})
	return n, err
}

// PruneAudit deletes the events of every namespace older than before.
func (b *Bolt) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	if err := b.ready(ctx); err != nil {
		return 0, err
	}
	var n int
	err := run(b.db.Update, func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, nsb *bolt.Bucket) error {
			d, err := sweep(nsb.Bucket(bucketAudit), before, func(e AuditEvent) time.Time { return e.Time.Add(time.Nanosecond) })
			n += d
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// sweepPeople deletes the expired people records of one namespace bucket:
// codes, attempts and sessions (with their index entries).
func sweepPeople(nsb *bolt.Bucket, now time.Time) (int, error) {
	n, err := sweep(nsb.Bucket(bucketAuthCodes), now, func(c AuthCode) time.Time { return c.ExpiresAt })
	if err != nil {
		return 0, err
	}
	d, err := sweep(nsb.Bucket(bucketAttempts), now, func(a LoginAttempts) time.Time { return a.ExpiresAt })
	if err != nil {
		return 0, err
	}
	n += d
	d, err = sweep(nsb.Bucket(bucketUserFamilies), now, func(f UserFamily) time.Time { return f.ExpiresAt })
	if err != nil {
		return 0, err
	}
	n += d
	sessions, idx := nsb.Bucket(bucketSessions), nsb.Bucket(bucketUserSessions)
	var dead []Session
	if err := forEach(sessions, func(_ []byte, s Session) error {
		if !now.Before(s.ExpiresAt) {
			dead = append(dead, s)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, s := range dead {
		if err := sessions.Delete([]byte(s.ID)); err != nil {
			return 0, fmt.Errorf("store: sweep session: %w", err)
		}
		if idx != nil {
			if err := idx.Delete([]byte(pair(s.UserID, s.ID))); err != nil {
				return 0, fmt.Errorf("store: sweep session index: %w", err)
			}
		}
	}
	return n + len(dead), nil
}

// getExisting decodes key of bk into v, or returns ErrNotFound.
func getExisting(bk *bolt.Bucket, key, what string, v any) error {
	found, err := getJSON(bk, key, v)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	return nil
}

// prefixKeys calls fn with the child part of every "parent\x00child" key
// of bk.
func prefixKeys(bk *bolt.Bucket, parent string, fn func(child string) error) error {
	if bk == nil || parent == "" {
		return nil
	}
	prefix := []byte(parent + "\x00")
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if err := fn(string(k[len(prefix):])); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes every "parent\x00child" key of bk.
func deletePrefix(bk *bolt.Bucket, parent string) error {
	var keys []string
	if err := prefixKeys(bk, parent, func(child string) error {
		keys = append(keys, pair(parent, child))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := bk.Delete([]byte(k)); err != nil {
			return fmt.Errorf("store: delete %q: %w", k, err)
		}
	}
	return nil
}

// forPrefix decodes every value of bk under "parent\x00", in key order.
func forPrefix[T any](bk *bolt.Bucket, parent string, fn func(k []byte, v T) error) error {
	if bk == nil || parent == "" {
		return nil
	}
	prefix := []byte(parent + "\x00")
	c := bk.Cursor()
	for k, data := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, data = c.Next() {
		var v T
		if err := decodeJSON(k, data, &v); err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func decodeJSON(k, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("store: decode %q: %w", k, err)
	}
	return nil
}
