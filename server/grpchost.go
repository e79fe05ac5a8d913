package server

import (
	"context"
	"crypto/tls"
	"errors"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictpdp/verdict/authn"
)

// The gRPC transport (package grpcapi) shares the HTTP server's caller
// authentication, rate limits, in-flight cap, metrics registry and TLS
// certificate, so that a caller, a limit or a certificate means the same on
// either transport. These are its entry points; it reaches them through
// interfaces of its own and never imports this package.

// AuthenticateCaller returns the claims of a caller's credential
// (authorization: an Authorization value, Bearer or ApiKey; apiKey: an
// X-API-Key value) when it is valid and has one of scopes. A refusal is
// counted in verdict_caller_auth_failures_total; Refusal describes it.
// source is the caller's address, for the log.
func (s *Server) AuthenticateCaller(ctx context.Context, authorization, apiKey, source string, scopes ...string) (authn.Claims, error) {
	claims, err := s.caller(ctx, authorization, apiKey, source, scopes)
	if err != nil {
		s.metrics.callerAuthFailed(err)
	}
	return claims, err
}

// DecisionsOpen reports whether the decision routes answer without a
// caller token (serve --dev on a loopback address).
func (s *Server) DecisionsOpen() bool { return s.authOpen }

// VerifyEndUser verifies an end user's Bearer token, as forward-auth does:
// a token that cannot be checked now is a refusal with status 503, an
// invalid one 401.
func (s *Server) VerifyEndUser(ctx context.Context, tok string) (authn.Claims, error) {
	return s.verifyBearer(ctx, tok, "end-user")
}

// Refusal describes err as the HTTP routes answer it: the status, the
// error code and a message safe to show, and the seconds a client should
// wait before retrying (0: no Retry-After). An error of the decision
// service or of caller authentication keeps its own; anything else is a
// 500 internal.
func Refusal(err error) (status int, code, message string, retryAfter int) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case isPDP(err):
		ae = fromPDP(err)
	default:
		return fiber.StatusInternalServerError, CodeInternal, "internal error", 0
	}
	for _, h := range ae.headers {
		if h[0] == fiber.HeaderRetryAfter {
			retryAfter, _ = strconv.Atoi(h[1])
		}
	}
	if ae.Status == fiber.StatusServiceUnavailable && retryAfter == 0 {
		retryAfter = 1
	}
	return ae.Status, ae.Code, ae.Message, retryAfter
}

// Limit counts one request of a route group (server.rate_limits: GroupAuthZEN,
// GroupForwardAuth, …) under its client and its address, on the counters
// the HTTP routes use (shared by the replicas of a Redis store); "" counts
// nothing of that kind. It returns a refusal (status 429 rate_limited with
// Retry-After, counted in verdict_rate_limited_total) or nil.
func (s *Server) Limit(ctx context.Context, group, client, ip string) error {
	var l Limit
	for _, g := range s.cfg.RateLimits.groups() {
		if g.name == group {
			l = g.l
		}
	}
	for _, k := range []struct {
		by, key string
		max     int
	}{{limitByIP, ip, l.PerIP}, {limitByClient, client, l.PerClient}} {
		if k.max == 0 || k.key == "" {
			continue
		}
		ok, after := s.allow(ctx, group+":"+k.by+":"+k.key, k.max, l.Window)
		if ok {
			continue
		}
		s.metrics.rateLimited(group, k.by)
		return newError(fiber.StatusTooManyRequests, CodeRateLimited, "too many requests to "+group+" from this "+
			map[string]string{limitByClient: "client", limitByIP: "address"}[k.by]+"; retry later (server.rate_limits."+group+")").
			with(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(max64(after.Seconds(), 1)))))
	}
	return nil
}

// Admit counts a request in flight against server.max_in_flight: ok is
// false (counted in verdict_requests_shed_total) when that many are being
// answered already. When ok, done must be called once the request is
// answered.
func (s *Server) Admit() (done func(), ok bool) {
	n := s.lim.inFlight.Add(1)
	if max := s.cfg.MaxInFlight; max > 0 && n > int64(max) {
		s.lim.inFlight.Add(-1)
		s.metrics.shedOne()
		return nil, false
	}
	return func() { s.lim.inFlight.Add(-1) }, true
}

// Registry is the registry of the server's metrics (served at /metrics),
// nil when server.metrics is false.
func (s *Server) Registry() *prometheus.Registry {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.reg
}

// GRPCTLS is the TLS configuration of the gRPC listener: the certificate
// of server.tls (reloaded as for HTTP), ALPN h2, and with
// requireClientCert a client certificate that verifies against
// tls.client_ca_file required in the handshake (mTLS). Nil without
// server.tls.
func (s *Server) GRPCTLS(requireClientCert bool) *tls.Config {
	if s.tls == nil {
		return nil
	}
	return &tls.Config{MinVersion: s.tls.minVer, GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cur, err := s.tls.config(hello)
		if err != nil {
			return nil, err
		}
		c := cur.Clone()
		c.NextProtos = []string{"h2"}
		c.ClientAuth = tls.NoClientCert
		if requireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}}
}
