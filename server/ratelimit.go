package server

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/verdictpdp/verdict/authn"
)

// Request limits: a rate per client and per address on each route group
// (server.rate_limits), and a cap on the requests being answered at once
// (server.max_in_flight) that sheds the rest with 503 before latency
// collapses.

// Route groups of server.rate_limits, also the group label of
// verdict_rate_limited_total.
const (
	GroupDecide      = "decide"
	GroupAuthZEN     = "authzen"
	GroupForwardAuth = "forward_auth"
	GroupToken       = "token"
	GroupIntrospect  = "introspect"
	GroupRevoke      = "revoke"
	GroupBundles     = "bundles"
	GroupAdmin       = "admin"
	GroupSignIn      = "signin"
)

// Kinds of limit, the by label of verdict_rate_limited_total.
const (
	limitByClient = "client"
	limitByIP     = "ip"
)

// CodeRateLimited answers a request over its route group's rate, with
// Retry-After; CodeOverloaded one shed by server.max_in_flight.
const (
	CodeRateLimited = "rate_limited"
	CodeOverloaded  = "overloaded"
)

// Limit is a number of requests allowed per window, for one client and for
// one address; 0 is no limit of that kind. Requests are spread as a token
// bucket: PerClient a window, at most PerClient at once.
type Limit struct {
	PerClient int           `yaml:"per_client"`
	PerIP     int           `yaml:"per_ip"`
	Window    time.Duration `yaml:"window"`
}

// RateLimits are the limits of each public route group.
type RateLimits struct {
	// Decide is POST /v1/decide; the client is the caller token's
	// client_id (else sub).
	Decide Limit `yaml:"decide"`
	// AuthZEN is /access/v1/…: evaluation(s) and search.
	AuthZEN Limit `yaml:"authzen"`
	// ForwardAuth is /v1/forward-auth; the client is the gateway (the
	// peer address), the address is the end user's (through
	// server.trusted_proxies).
	ForwardAuth Limit `yaml:"forward_auth"`
	// Token, Introspect and Revoke are the OAuth routes; the client is the
	// client id the request names. Failed requests have their own limit
	// besides (server.token_failures).
	Token      Limit `yaml:"token"`
	Introspect Limit `yaml:"introspect"`
	Revoke     Limit `yaml:"revoke"`
	// Bundles is /v1/bundles… (push, list, download, activate, preview).
	Bundles Limit `yaml:"bundles"`
	// Admin is /v1/admin…, /scim/v2… and the console (/console…).
	Admin Limit `yaml:"admin"`
	// SignIn is the people-facing pages and routes: /oauth2/authorize,
	// /login…, /account…, /oauth2/userinfo, /oauth2/logout, by address
	// (failed passwords have their own lockout, users.lockout).
	SignIn Limit `yaml:"signin"`
}

// DefaultRateLimits limit the operators' routes (bundles, admin), which
// see few requests and change everything; the decision and token routes
// carry no rate limit until one is configured (their capacity depends on
// the deployment; behind a load balancer not in server.trusted_proxies
// every caller shares one address).
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Bundles: Limit{PerClient: 120, PerIP: 240, Window: time.Minute},
		Admin:   Limit{PerClient: 600, PerIP: 1200, Window: time.Minute},
		SignIn:  Limit{PerIP: 300, Window: time.Minute},
	}
}

func (r RateLimits) groups() []struct {
	name string
	l    Limit
} {
	return []struct {
		name string
		l    Limit
	}{{GroupDecide, r.Decide}, {GroupAuthZEN, r.AuthZEN}, {GroupForwardAuth, r.ForwardAuth}, {GroupToken, r.Token},
		{GroupIntrospect, r.Introspect}, {GroupRevoke, r.Revoke}, {GroupBundles, r.Bundles}, {GroupAdmin, r.Admin},
		{GroupSignIn, r.SignIn}}
}

func (r RateLimits) validate() []error {
	var errs []error
	for _, g := range r.groups() {
		if g.l.PerClient < 0 || g.l.PerIP < 0 {
			errs = append(errs, fmt.Errorf("server rate_limits.%s: per_client and per_ip must not be negative (0: no limit)", g.name))
		}
		if (g.l.PerClient > 0 || g.l.PerIP > 0) && g.l.Window <= 0 {
			errs = append(errs, fmt.Errorf("server rate_limits.%s.window must be positive", g.name))
		}
	}
	return errs
}

// RateLimiter counts requests against limits that every replica shares
// (a Redis store). Allow reports whether one more request under key fits
// max a window, and if not, when one will; an error means the count could
// not be kept, and the server then counts on this replica alone.
type RateLimiter interface {
	Allow(ctx context.Context, key string, max int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
}

// WithRateLimiter shares the route limits through rl (internal/app gives
// the Redis store's when several replicas run). Without it each replica
// counts alone.
func WithRateLimiter(rl RateLimiter) Option {
	return func(s *Server) { s.shared = rl }
}

// DefaultMaxInFlight is the default of server.max_in_flight: far above
// what a decision server answers at once when it keeps up (each answer
// takes microseconds), far below where queued requests would all be late.
const DefaultMaxInFlight = 1024

// groupOf is the route group of the route template p, "" for routes
// without a rate limit (probes, metadata, metrics).
func groupOf(p string) string {
	switch {
	case p == "/v1/decide", p == PlanPath:
		return GroupDecide
	case underPrefix(p, "/access/v1"):
		return GroupAuthZEN
	case underPrefix(p, ForwardAuthPath):
		return GroupForwardAuth
	case p == tokenPath:
		return GroupToken
	case p == "/oauth2/introspect":
		return GroupIntrospect
	case p == "/oauth2/revoke":
		return GroupRevoke
	case underPrefix(p, "/v1/bundles"):
		return GroupBundles
	case underPrefix(p, "/v1/admin"), underPrefix(p, scimPrefix), underPrefix(p, consolePath):
		return GroupAdmin
	case underPrefix(p, "/oauth2/authorize"), underPrefix(p, "/login"), underPrefix(p, "/account"),
		p == "/oauth2/userinfo", p == "/oauth2/logout":
		return GroupSignIn
	}
	return ""
}

// localLimiter is a token bucket a key, on this replica, made on the key's
// first request and forgotten once full again.
type localLimiter struct {
	seed   maphash.Seed
	shards [64]limiterShard
}

type limiterShard struct {
	mu     sync.Mutex
	m      map[string]*bucket
	sweeps int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLocalLimiter() *localLimiter {
	l := &localLimiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = map[string]*bucket{}
	}
	return l
}

func (l *localLimiter) Allow(_ context.Context, key string, max int, window time.Duration) (bool, time.Duration, error) {
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.m[key]
	if !ok {
		sh.sweep(now, window)
		b = &bucket{lim: rate.NewLimiter(rate.Every(window/time.Duration(max)), max)}
		sh.m[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}

// sweep forgets, every so many new keys, the buckets not used for a
// window: they are full again, as a new one would be.
func (sh *limiterShard) sweep(now time.Time, window time.Duration) {
	sh.sweeps++
	if sh.sweeps < 256 && len(sh.m) < 4096 {
		return
	}
	sh.sweeps = 0
	for k, b := range sh.m {
		if now.Sub(b.seen) > window {
			delete(sh.m, k)
		}
	}
}

// limits are the server's rate limiters and in-flight cap.
type limits struct {
	local    *localLimiter
	inFlight atomic.Int64
	// loggedAt is when a shared counter's failure was last logged.
	loggedAt atomic.Int64
}

// allow counts one request under key against max a window: on the shared
// limiter when there is one, else (or when it fails) on this replica.
func (s *Server) allow(ctx context.Context, key string, max int, window time.Duration) (bool, time.Duration) {
	if s.shared != nil {
		ok, after, err := s.shared.Allow(ctx, key, max, window)
		if err == nil {
			return ok, after
		}
		s.metrics.rateLimitStoreFailed()
		// Once a second at most: an outage fails every request's count.
		if now := time.Now().UnixNano(); now-s.lim.loggedAt.Load() > int64(time.Second) {
			s.lim.loggedAt.Store(now)
			s.log.Warn("rate limit: the shared counter failed; counting on this replica", "error", err)
		}
	}
	ok, after, _ := s.lim.local.Allow(ctx, key, max, window)
	return ok, after
}

// rateLimit is the handler of one route group's limit of one kind: key
// gives the client or address a request is counted under ("" counts
// nothing). oauth answers in the OAuth error shape.
func (s *Server) rateLimit(group, by string, max int, window time.Duration, key func(*fiber.Ctx) string) fiber.Handler {
	prefix := group + ":" + by + ":"
	return func(c *fiber.Ctx) error {
		k := key(c)
		if k == "" {
			return c.Next()
		}
		ok, after := s.allow(c.UserContext(), prefix+k, max, window)
		if ok {
			return c.Next()
		}
		s.metrics.rateLimited(group, by)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(max64(after.Seconds(), 1)))))
		msg := "too many requests to " + group + " from this " + map[string]string{limitByClient: "client", limitByIP: "address"}[by] +
			"; retry after the time in Retry-After (server.rate_limits." + group + ")"
		if group == GroupToken || group == GroupIntrospect || group == GroupRevoke {
			return s.oauthFail(c, fiber.StatusTooManyRequests, oauthTooManyRequests, msg)
		}
		return newError(fiber.StatusTooManyRequests, CodeRateLimited, msg)
	}
}

func max64(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// groupLimits are the handlers of group's limits: the address first (it
// runs before authentication: a flood of bad tokens is counted too), the
// client after (caller token routes: afterAuth; the others name their
// client in the request).
func (s *Server) groupLimits(group string) (before, afterAuth []fiber.Handler) {
	var l Limit
	for _, g := range s.cfg.RateLimits.groups() {
		if g.name == group {
			l = g.l
		}
	}
	if l.PerIP > 0 {
		before = append(before, s.rateLimit(group, limitByIP, l.PerIP, l.Window, s.clientIP))
	}
	if l.PerClient == 0 {
		return before, nil
	}
	switch group {
	case GroupToken, GroupIntrospect, GroupRevoke:
		before = append(before, s.rateLimit(group, limitByClient, l.PerClient, l.Window, limitClientID))
	case GroupForwardAuth:
		// The gateway is the client: its own address, not the end user's.
		before = append(before, s.rateLimit(group, limitByClient, l.PerClient, l.Window, func(c *fiber.Ctx) string {
			return c.Context().RemoteIP().String()
		}))
	default:
		afterAuth = append(afterAuth, s.rateLimit(group, limitByClient, l.PerClient, l.Window, limitCallerID))
	}
	return before, afterAuth
}

// limitCallerID is the authenticated caller's issuer and client_id (else
// subject); "" when the route let the request through without a token
// (serve --dev).
func limitCallerID(c *fiber.Ctx) string {
	cl, ok := c.Locals(callerClaims).(authn.Claims)
	if !ok {
		return ""
	}
	id, _ := cl["client_id"].(string)
	if id == "" {
		id = cl.Subject()
	}
	return cl.Issuer() + " " + id
}

// shed answers 503 with Retry-After once server.max_in_flight requests are
// being answered: a burst beyond capacity is refused at once instead of
// queueing until every answer is late. The probes and /metrics are never
// shed (an overloaded server must still be observable).
func (s *Server) shed(c *fiber.Ctx) error {
	if neverShed(c.Path()) {
		s.lim.inFlight.Add(1)
		defer s.lim.inFlight.Add(-1)
		return c.Next()
	}
	done, ok := s.Admit()
	if !ok {
		c.Set(fiber.HeaderRetryAfter, "1")
		return newError(fiber.StatusServiceUnavailable, CodeOverloaded,
			"the server is answering as many requests as it may at once (server.max_in_flight); retry")
	}
	defer done()
	return c.Next()
}

func neverShed(p string) bool {
	return p == "/healthz" || p == "/readyz" || p == MetricsPath
}
