package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// luaBefore is a Lua function comparing two times written by nanos, as
// numbers (Lua's string comparison follows the server's locale, and a
// double cannot hold 19 digits): seconds first, then nanoseconds.
const luaBefore = `
local function before(a, b)
  local as, bs = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if as ~= bs then return as < bs end
  return tonumber(string.sub(a, 11)) < tonumber(string.sub(b, 11))
end
`

// addFailureScript adds one failure to the attempts hash KEYS[1] and
// returns the count. A record not live at ARGV[1] (now) starts again from
// zero, without its lockout; the record's exp becomes ARGV[2] if that is
// later, and the hash then expires at ARGV[3] (unix ms).
var addFailureScript = redis.NewScript(luaBefore + `
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or not before(ARGV[1], exp) then
  redis.call('DEL', KEYS[1])
  exp = false
end
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if not exp or before(exp, ARGV[2]) then
  redis.call('HSET', KEYS[1], 'exp', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return n
`)

// lockScript sets the lockout end of the attempts hash KEYS[1] to ARGV[2]
// if the record is live at ARGV[1] (now), extending its exp (and the
// hash's expiry, ARGV[3] in unix ms) to the lockout end if that is later.
// It returns 0 when there is no live record.
var lockScript = redis.NewScript(luaBefore + `
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or not before(ARGV[1], exp) then return 0 end
redis.call('HSET', KEYS[1], 'lock', ARGV[2])
if before(exp, ARGV[2]) then
  redis.call('HSET', KEYS[1], 'exp', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 1
`)

// pruneAuditScript deletes from the user's audit set KEYS[1] the events
// before ARGV[1] (an exclusive ZRANGEBYLEX bound) and returns how many.
// When the set is left empty it forgets the user (ARGV[2]) in the
// namespace's set KEYS[2], and the namespace (ARGV[3]) in KEYS[3] when
// that is left empty too; AppendAudit adds all three in one transaction,
// so nothing is forgotten that still has events.
var pruneAuditScript = redis.NewScript(`
local n = redis.call('ZREMRANGEBYLEX', KEYS[1], '-', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
end
return n
`)

// maxNanos is the last time Unix nanoseconds can hold (in 2262).
var maxNanos = time.Unix(0, math.MaxInt64)

// nanos is t as 19 decimal digits of Unix nanoseconds, so that byte order
// is time order; times before 1970 are 1970 and after 2262 are 2262.
func nanos(t time.Time) string {
	switch {
	case !t.After(time.Unix(0, 0)):
		return strings.Repeat("0", 19)
	case t.After(maxNanos):
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	return fmt.Sprintf("%019d", t.UnixNano())
}

// parseNanos reads what nanos wrote; 1970 (or nothing) is the zero time.
func parseNanos(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}

// AddFailure adds one failure to key with one Lua script (so concurrent
// failures are all counted), makes the record live until expires (or
// longer, if it already was) and returns the count after it. A record past
// its ExpiresAt at the store's clock counts from zero again. An error for
// an empty key. Not announced.
func (s *Store) AddFailure(ctx context.Context, ns, key string, expires time.Time) (int, error) {
	if err := s.check(ctx, ns); err != nil {
		return 0, err
	}
	if key == "" {
		return 0, errors.New("store: empty attempts key")
	}
	n, err := addFailureScript.Run(ctx, s.rdb, []string{s.key(ns, kindAttempts, key)},
		nanos(s.now()), nanos(expires), expireAtOrEpoch(expires).UnixMilli()).Int()
	if err != nil {
		return 0, fmt.Errorf("redis store: add failure: %w", err)
	}
	return n, nil
}

// LockUntil sets key's lockout end, making the record live at least that
// long; ErrNotFound if key has no live record, an error for an empty key.
func (s *Store) LockUntil(ctx context.Context, ns, key string, until time.Time) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if key == "" {
		return errors.New("store: empty attempts key")
	}
	ok, err := lockScript.Run(ctx, s.rdb, []string{s.key(ns, kindAttempts, key)},
		nanos(s.now()), nanos(until), expireAtOrEpoch(until).UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("redis store: lock: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("store: login attempts: %w", store.ErrNotFound)
	}
	return nil
}

// Attempts returns key's record, the zero record if none or expired at the
// store's clock.
func (s *Store) Attempts(ctx context.Context, ns, key string) (store.LoginAttempts, error) {
	if err := s.check(ctx, ns); err != nil {
		return store.LoginAttempts{}, err
	}
	if key == "" {
		return store.LoginAttempts{}, nil
	}
	k := s.key(ns, kindAttempts, key)
	m, err := s.rdb.HGetAll(ctx, k).Result()
	if err != nil {
		return store.LoginAttempts{}, fmt.Errorf("redis store: read %s: %w", k, err)
	}
	if len(m) == 0 {
		return store.LoginAttempts{}, nil
	}
	var a store.LoginAttempts
	exp, err1 := parseNanos(m["exp"])
	lock, err2 := parseNanos(m["lock"])
	n, err3 := strconv.Atoi(m["failures"])
	if err := errors.Join(err1, err2, err3); err != nil {
		return store.LoginAttempts{}, fmt.Errorf("redis store: decode %s: %w", k, err)
	}
	if !store.Live(s.now(), exp) {
		return store.LoginAttempts{}, nil
	}
	a.Failures, a.LockedUntil, a.ExpiresAt = n, lock, exp
	return a, nil
}

// ClearAttempts forgets key (nothing to forget is not an error).
func (s *Store) ClearAttempts(ctx context.Context, ns, key string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if key == "" {
		return nil
	}
	if err := s.rdb.Del(ctx, s.key(ns, kindAttempts, key)).Err(); err != nil {
		return fmt.Errorf("redis store: clear attempts: %w", err)
	}
	return nil
}

// auditNamespaces is the key of the set of namespaces with audit events.
func (s *Store) auditNamespaces() string { return s.hashTag() + "audit-namespaces" }

// auditPrefix starts the audit set member of an event: its time, then its
// id, so that the set's byte order is oldest first.
func auditPrefix(e store.AuditEvent) string { return nanos(e.Time) + "\x00" + e.ID + "\x00" }

// decodeAudit reads the event at the end of an audit set member (JSON has
// no raw NUL, so it starts after the last one).
func decodeAudit(key, member string) (store.AuditEvent, error) {
	var e store.AuditEvent
	i := strings.LastIndexByte(member, 0)
	if i < 0 {
		return e, fmt.Errorf("redis store: malformed audit event in %s", key)
	}
	if err := json.Unmarshal([]byte(member[i+1:]), &e); err != nil {
		return e, fmt.Errorf("redis store: decode audit event in %s: %w", key, err)
	}
	return e, nil
}

// AppendAudit stores e under its user in one MULTI that also records the
// user and the namespace for PruneAudit, replacing an event of the same
// user, time and id; an error without ID or Time. Not announced.
func (s *Store) AppendAudit(ctx context.Context, ns string, e store.AuditEvent) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if e.ID == "" || e.Time.IsZero() {
		return errors.New("store: an audit event needs an id and a time")
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: encode audit event: %w", err)
	}
	key, prefix := s.key(ns, kindAudit, e.UserID), auditPrefix(e)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// UTF-8 never has the byte 0xff: the range is exactly the members
		// with the prefix.
		p.ZRemRangeByLex(ctx, key, "["+prefix, "("+prefix+"\xff")
		p.ZAdd(ctx, key, redis.Z{Member: prefix + string(data)})
		p.SAdd(ctx, s.key(ns, kindAuditUsers), e.UserID)
		p.SAdd(ctx, s.auditNamespaces(), ns)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: append audit event: %w", err)
	}
	return nil
}

// UserAudit lists a user's events, oldest first (by time, then id).
func (s *Store) UserAudit(ctx context.Context, ns, userID string) ([]store.AuditEvent, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	out := []store.AuditEvent{}
	if userID == "" {
		return out, nil
	}
	key := s.key(ns, kindAudit, userID)
	members, err := s.rdb.ZRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", key, err)
	}
	for _, m := range members {
		e, err := decodeAudit(key, m)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// PseudonymizeAudit moves every event of the user to pseudonym with its IP
// cleared, under WATCH of both users' sets, and returns how many events it
// moved (0 for an empty userID). Not announced.
func (s *Store) PseudonymizeAudit(ctx context.Context, ns, userID, pseudonym string) (int, error) {
	if err := s.check(ctx, ns); err != nil {
		return 0, err
	}
	if userID == "" {
		return 0, nil
	}
	from, to, users := s.key(ns, kindAudit, userID), s.key(ns, kindAudit, pseudonym), s.key(ns, kindAuditUsers)
	var n int
	err := s.txn(ctx, func(tx *redis.Tx) error {
		n = 0
		members, err := tx.ZRange(ctx, from, 0, -1).Result()
		if err != nil {
			return fmt.Errorf("redis store: read %s: %w", from, err)
		}
		if len(members) == 0 {
			return nil
		}
		moved := make([]redis.Z, 0, len(members))
		for _, m := range members {
			e, err := decodeAudit(from, m)
			if err != nil {
				return err
			}
			e.UserID, e.IP = pseudonym, ""
			data, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("store: encode audit event: %w", err)
			}
			moved = append(moved, redis.Z{Member: auditPrefix(e) + string(data)})
		}
		if err := exec(ctx, tx, func(p redis.Pipeliner) error {
			p.Del(ctx, from)
			p.ZAdd(ctx, to, moved...)
			p.SRem(ctx, users, userID)
			p.SAdd(ctx, users, pseudonym)
			p.SAdd(ctx, s.auditNamespaces(), ns)
			return nil
		}); err != nil {
			return err
		}
		n = len(members)
		return nil
	}, from, to)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PruneAudit deletes the events of every namespace older than before and
// returns how many it deleted: one script per user with events, so it is
// atomic per user, not as a whole. On error (ctx done, Redis unreachable)
// it returns what it deleted until then with the error.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	nss, err := s.rdb.SMembers(ctx, s.auditNamespaces()).Result()
	if err != nil {
		return 0, fmt.Errorf("redis store: read audit namespaces: %w", err)
	}
	// A member starts with its time: every member before "<before>" is of
	// an event strictly older (one at before is longer, so after).
	bound := "(" + nanos(before)
	total := 0
	for _, ns := range nss {
		users := s.key(ns, kindAuditUsers)
		ids, err := s.rdb.SMembers(ctx, users).Result()
		if err != nil {
			return total, fmt.Errorf("redis store: read %s: %w", users, err)
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n, err := pruneAuditScript.Run(ctx, s.rdb, []string{s.key(ns, kindAudit, id), users, s.auditNamespaces()},
				bound, id, ns).Int()
			if err != nil {
				return total, fmt.Errorf("redis store: prune audit: %w", err)
			}
			total += n
		}
	}
	return total, nil
}
