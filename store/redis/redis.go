package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// DefaultPrefix starts every key and the channel name unless Options.Prefix
// says otherwise.
const DefaultPrefix = "verdict:"

// maxTxRetries bounds how often a WATCH transaction is retried when
// concurrent writers keep changing the watched keys.
const maxTxRetries = 100

// errNotOpen is what the zero Store's methods return.
var errNotOpen = errors.New("redis store is not open")

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Prefix starts every key and the channel name, so that several Verdict
	// deployments can share one Redis. Empty means the URL's key_prefix
	// parameter, or DefaultPrefix without one. It may not
	// contain '{' or '}' (it becomes the keys' Cluster hash tag).
	Prefix string
	// DialTimeout bounds connecting; zero keeps the URL's dial_timeout or
	// go-redis's default (5 s).
	DialTimeout time.Duration
	// ReadTimeout bounds one reply; zero keeps the URL's read_timeout or
	// go-redis's default (3 s).
	ReadTimeout time.Duration
	// Now is the clock Revoked and UseOnce compare expiry times with (Redis
	// expires the keys on its own clock besides). Nil means time.Now.
	Now func() time.Time
	// Logger receives the malformed announcements Subscribe skips and its
	// resubscriptions. Nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if strings.ContainsAny(o.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("redis store: key prefix %q may not contain '{' or '}'", o.Prefix))
	}
	if o.DialTimeout < 0 {
		errs = append(errs, errors.New("redis store: negative dial timeout"))
	}
	if o.ReadTimeout < 0 {
		errs = append(errs, errors.New("redis store: negative read timeout"))
	}
	return errors.Join(errs...)
}

// Store is the store.Store kept in Redis, and the store.Notifier of its
// changes. It is safe for concurrent use. The zero value is not usable (its
// methods return an error): use Open.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
	log    *slog.Logger
	// backoff bounds Subscribe's waits between failed subscriptions.
	backoffMin, backoffMax time.Duration
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// Validate reports whether rawURL is a store URL Open could use, without
// connecting. The error never contains the password.
func Validate(rawURL string) error {
	_, prefix, err := parseURL(rawURL)
	if err != nil {
		return err
	}
	return Options{Prefix: prefix}.Validate()
}

// Open connects to the Redis named by rawURL (see clientOptions for the
// forms) and pings it. It returns an error, never containing the password,
// for an invalid URL or options, or when Redis does not answer the ping
// within the dial and read timeouts (or before ctx ends); nothing is left
// open then.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	uo, urlPrefix, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = urlPrefix
		if err := opts.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.DialTimeout > 0 {
		uo.DialTimeout = opts.DialTimeout
	}
	if opts.ReadTimeout > 0 {
		uo.ReadTimeout = opts.ReadTimeout
	}
	s := &Store{
		rdb:        redis.NewUniversalClient(uo),
		prefix:     opts.Prefix,
		now:        opts.Now,
		log:        opts.Logger,
		backoffMin: 50 * time.Millisecond,
		backoffMax: 2 * time.Second,
	}
	s.rdb.AddHook(unavailableHook{})
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.rdb.Close()
		return nil, fmt.Errorf("redis store %s unreachable: %w", Redact(rawURL), err)
	}
	return s, nil
}

// Redis is the go-redis client the store uses, for sharing its connection
// pool (such as with a distributed rate limiter). Closing the store closes
// it; the zero Store's is nil.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Prefix is the key prefix the store uses.
func (s *Store) Prefix() string { return s.prefix }

// Ping reports whether Redis answers PING (on every node of a Cluster); it
// returns ctx.Err() if ctx is done and an error if the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
	return s.rdb.Ping(ctx).Err()
}

// Close closes the connections. Closing twice, or closing the zero Store,
// returns nil.
func (s *Store) Close() error {
	if s == nil || s.rdb == nil {
		return nil
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redis store: close: %w", err)
	}
	return nil
}

// ready reports why s cannot run a command for ctx, if it cannot.
func (s *Store) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s == nil || s.rdb == nil {
		return errNotOpen
	}
	return nil
}

// check is ready plus the namespace rule.
func (s *Store) check(ctx context.Context, ns string) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return store.CheckNamespace(ns)
}

// hashTag is the braced prefix every key starts with.
func (s *Store) hashTag() string { return "{" + s.prefix + "}" }

// GenKey is the key holding the generation.
func (s *Store) GenKey() string { return s.hashTag() + "gen" }

// Channel is the pub/sub channel changes are announced on.
func (s *Store) Channel() string { return s.prefix + "changes" }

// key is the key of kind in ns, with more parts joined by "/".
func (s *Store) key(ns, kind string, more ...string) string {
	k := s.hashTag() + ns + "/" + kind
	for _, m := range more {
		k += "/" + m
	}
	return k
}

// Key kinds (see the package documentation).
const (
	kindKeys    = "keys"
	kindClients = "clients"
	kindRefresh = "refresh"
	kindRevoked = "revoked"
	// kindRevokedIndex is the sorted set of revoked jtis by expiry.
	kindRevokedIndex = "revoked-index"
	kindOnce         = "once"
	kindBundles      = "bundles"
	kindArchives     = "archives"
	kindActive       = "active"
)

// announce queues, in a MULTI, the generation increment and the
// publication of the change: the script runs inside the transaction, so
// the generation and the write are atomic and announcements go out in
// generation order.
func (s *Store) announce(ctx context.Context, pipe redis.Pipeliner, ns, kind, id string) {
	// Eval, not EvalSha: a NOSCRIPT inside MULTI could not be retried.
	announceScript.Eval(ctx, pipe, []string{s.GenKey()}, s.Channel(), ns, kind, id)
}

// announceScript increments the generation and publishes the Change JSON.
// cjson encodes the strings (escaping them); the generation is formatted
// with %d because cjson would print large numbers in exponent form.
var announceScript = redis.NewScript(`
local g = redis.call('INCR', KEYS[1])
local msg = '{"gen":' .. string.format('%d', g) .. ',"kind":' .. cjson.encode(ARGV[3]) ..
  ',"id":' .. cjson.encode(ARGV[4]) .. ',"ns":' .. cjson.encode(ARGV[2]) .. '}'
redis.call('PUBLISH', ARGV[1], msg)
return g
`)

// txn runs fn under WATCH of keys and retries it while a concurrent writer
// changes them before fn's MULTI/EXEC; fn's own errors are returned as
// they are.
func (s *Store) txn(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	for range maxTxRetries {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("redis store: too much contention on %v: %w", keys, store.ErrConflict)
}

// exec runs the queued commands of a transaction and labels Redis errors.
func exec(ctx context.Context, tx *redis.Tx, fn func(redis.Pipeliner) error) error {
	_, err := tx.TxPipelined(ctx, fn)
	if err != nil && !errors.Is(err, redis.TxFailedErr) {
		return fmt.Errorf("redis store: %w", err)
	}
	return err
}

// getJSON decodes the value of a string key into v and reports whether
// there was one.
func getJSON(ctx context.Context, c redis.Cmdable, key string, v any) (bool, error) {
	data, err := c.Get(ctx, key).Bytes()
	return decode(key, data, err, v)
}

// hgetJSON decodes a hash field into v and reports whether there was one;
// an empty field holds nothing.
func hgetJSON(ctx context.Context, c redis.Cmdable, key, field string, v any) (bool, error) {
	if field == "" {
		return false, nil
	}
	data, err := c.HGet(ctx, key, field).Bytes()
	return decode(key+" "+field, data, err, v)
}

func decode(what string, data []byte, err error, v any) (bool, error) {
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis store: get %s: %w", what, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("redis store: decode %s: %w", what, err)
	}
	return true, nil
}

// hrecord checks ns and decodes field of the kind hash (more parts of the
// key as s.key takes them); ErrNotFound, naming what and field, if none.
func hrecord[T any](ctx context.Context, s *Store, ns, kind, field, what string, more ...string) (T, error) {
	var v T
	if err := s.check(ctx, ns); err != nil {
		return v, err
	}
	found, err := hgetJSON(ctx, s.rdb, s.key(ns, kind, more...), field, &v)
	if err != nil {
		return v, err
	}
	if !found {
		var zero T
		return zero, fmt.Errorf("store: %s %q: %w", what, field, store.ErrNotFound)
	}
	return v, nil
}

// hlist checks ns and decodes every value of its kind hash, ordered by
// sortFn.
func hlist[T any](ctx context.Context, s *Store, ns, kind string, sortFn func([]T)) ([]T, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	key := s.key(ns, kind)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: read %s: %w", key, err)
	}
	out := make([]T, 0, len(m))
	for field, data := range m {
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, fmt.Errorf("redis store: decode %s %s: %w", key, field, err)
		}
		out = append(out, v)
	}
	sortFn(out)
	return out, nil
}

// expireAt is the Redis expiry for a record that matters until exp: the
// millisecond at or after exp, so Redis never drops a record the clock
// still needs.
func expireAt(exp time.Time) time.Time {
	ms := exp.UnixMilli()
	if time.UnixMilli(ms).Before(exp) {
		ms++
	}
	return time.UnixMilli(ms)
}

// Generation returns the current generation, 0 before any announced
// write, or an error when Redis cannot be reached.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	v, err := s.rdb.Get(ctx, s.GenKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis store: generation: %w", err)
	}
	g, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis store: generation %q: %w", v, err)
	}
	return g, nil
}

// Pepper returns the pepper client secrets are HMACed with, shared by
// every replica: the value under {P}pepper, which the first caller sets to
// newPepper() (SET NX, so concurrent first starts agree on one). It returns an
// error when Redis cannot be reached or make fails.
func (s *Store) Pepper(ctx context.Context, newPepper func() ([]byte, error)) ([]byte, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	key := s.hashTag() + "pepper"
	p, err := s.rdb.Get(ctx, key).Bytes()
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: read pepper: %w", err)
	}
	fresh, err := newPepper()
	if err != nil {
		return nil, err
	}
	if err := s.rdb.SetNX(ctx, key, fresh, 0).Err(); err != nil {
		return nil, fmt.Errorf("redis store: store pepper: %w", err)
	}
	// Whoever won the SET NX, this is the pepper now.
	p, err = s.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return nil, fmt.Errorf("redis store: read pepper: %w", err)
	}
	return p, nil
}
