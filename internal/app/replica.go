package app

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/gofiber/fiber/v2"
	fiberredis "github.com/gofiber/storage/redis/v3"
	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/replica"
	"github.com/verdictpdp/verdict/server"
	"github.com/verdictpdp/verdict/store"
)

// revocationCheck is the caller-token verifier's revocation check. With the
// embedded store it is the store itself. With a store shared by several
// replicas (a store.Notifier: Redis) it is fail-static: the store answers
// when it can, and while it cannot, until the replica is stale, the
// replica's mirror of the revoked token ids (returned, for followStore to
// keep) answers, so that a caller token this replica has not seen yet is
// not a 503 during an outage, nor a revoked one a pass. The mirror keeps an
// announced revocation for an access token's lifetime plus the clock skew.
func revocationCheck(cfg Config, st store.Store) (authn.RevocationChecker, *replica.Mirror, error) {
	rev := storeadapt.Revocations(st, store.DefaultNamespace)
	if _, ok := st.(store.Notifier); !ok {
		return rev, nil, nil
	}
	mirror, err := replica.NewMirror(rev, cfg.IssuerConfig().AccessTokenTTL+cfg.VerifierConfig().ClockSkew, time.Now)
	if err != nil {
		return nil, nil, err
	}
	check, err := replica.NewFailStatic(rev, mirror)
	if err != nil {
		return nil, nil, err
	}
	return check, mirror, nil
}

// redisClient is what a Redis store shares with the rate limiter.
type redisClient interface {
	Redis() redis.UniversalClient
	Prefix() string
}

// limitKeys keeps the token routes' failure counters under the store's key
// prefix, in the store's Redis, through gofiber's Redis storage. The
// client belongs to the store: Close leaves it open, and Reset (which would
// flush the whole database) does nothing.
type limitKeys struct {
	*fiberredis.Storage
	prefix string
}

var _ fiber.Storage = limitKeys{}

func (l limitKeys) Get(key string) ([]byte, error) { return l.Storage.Get(l.prefix + key) }
func (l limitKeys) Set(key string, val []byte, exp time.Duration) error {
	return l.Storage.Set(l.prefix+key, val, exp)
}
func (l limitKeys) Delete(key string) error { return l.Storage.Delete(l.prefix + key) }
func (l limitKeys) Reset() error            { return nil }
func (l limitKeys) Close() error            { return nil }

// followStore starts keeping this replica in step with st when st is
// shared by several replicas (a store.Notifier: Redis): a replica.Syncer
// that ends with ctx and keeps mirror (revocationCheck's), and the server
// options that report it in readiness and share the token routes' rate
// limits. wait blocks until the syncer has stopped. With the embedded store
// it starts nothing and returns no options.
//
// self describes this replica to the roster of a shared store that keeps
// one (store.Roster): the replica reports itself every poll and the
// server lists every replica.
func followStore(ctx context.Context, cfg Config, st store.Store, life *bundles.Lifecycle,
	verifier *authn.Verifier, keys *authn.Keyring, mirror *replica.Mirror, directory replica.Refresher,
	shadow replica.Refresher, self func() store.Member, log *slog.Logger) (opts []server.Option, wait func(), err error) {
	wait = func() {}
	n, ok := st.(store.Notifier)
	if !ok {
		return nil, wait, nil
	}
	deps := replica.Deps{
		Bundles: life, Tokens: verifier, Keys: keys,
		Families:    storeadapt.FamilyJTIs(st, store.DefaultNamespace),
		Revocations: mirror,
		Directory:   directory,
		Shadow:      shadow,
	}
	r, hasRoster := st.(store.Roster)
	if hasRoster {
		deps.Roster, deps.Self = roster{r: r, n: n, ns: store.DefaultNamespace}, self
	}
	sy, err := replica.New(cfg.Replica, n, deps, log)
	if err != nil {
		return nil, wait, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sy.Run(ctx) // ends with ctx; failures are logged and retried
	}()
	opts = append(opts, server.WithReplica(sy))
	if hasRoster {
		opts = append(opts, server.WithRoster(roster{r: r, n: n, ns: store.DefaultNamespace}), server.WithSelf(sy.Member))
	}
	if rc, ok := st.(redisClient); ok {
		opts = append(opts, server.WithLimitStorage(limitKeys{
			// Under the store's hash tag, so that the store's ACL key
			// pattern covers them and a Cluster keeps them in its slot.
			Storage: fiberredis.NewFromConnection(rc.Redis()), prefix: "{" + rc.Prefix() + "}ratelimit:"}),
			// redis_rate prepends "rate:" to the key: rate:{<prefix>}routelimit:….
			server.WithRateLimiter(newRedisLimiter(rc.Redis(), "{"+rc.Prefix()+"}routelimit:")))
	}
	log.Info("following the shared store: changes announced, gaps repaired by polling",
		"poll_interval", cfg.Replica.PollInterval, "stale_after", cfg.Replica.StaleAfter)
	return opts, func() { <-done }, nil
}

// The replica's counters become metrics through these server interfaces.
var (
	_ server.MirrorAnswers = (*replica.FailStatic)(nil)
	_ server.Repairer      = (*replica.Syncer)(nil)
)

// roster is a store's roster in one namespace, with its generation: what
// the replica reports to and the server lists.
type roster struct {
	r  store.Roster
	n  store.Notifier
	ns string
}

func (r roster) Report(ctx context.Context, m store.Member, ttl time.Duration) error {
	return r.r.Report(ctx, r.ns, m, ttl)
}
func (r roster) Leave(ctx context.Context, id string) error { return r.r.Leave(ctx, r.ns, id) }
func (r roster) Members(ctx context.Context) ([]store.Member, error) {
	return r.r.Members(ctx, r.ns)
}
func (r roster) Generation(ctx context.Context) (uint64, error) { return r.n.Generation(ctx) }

var (
	_ replica.Roster = roster{}
	_ server.Roster  = roster{}
)

// selfMember is this replica as it reports itself to the roster: a random
// suffix tells apart replicas on one host (or restarts of one).
func selfMember(version string, started time.Time, serving func() string, shadow func() *store.ShadowCounts) func() store.Member {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	id := strings.ReplaceAll(host, "/", "_") + "-" + strings.ToLower(rand.Text()[:8])
	return func() store.Member {
		return store.Member{ID: id, Host: host, Version: version, Started: started, Revision: serving(), Shadow: shadow()}
	}
}
