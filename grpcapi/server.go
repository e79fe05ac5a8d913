// Package grpcapi is Verdict's gRPC transport, on server.grpc_addr: Envoy's
// external authorization (envoy.service.auth.v3.Authorization/Check, as
// Envoy, Istio, Gloo, Contour and Emissary call it), Verdict's access API
// (verdict.access.v1.Access: AuthZEN evaluation, evaluations and search;
// accessv1 holds its generated code), grpc.health.v1 and server reflection.
//
// Like the HTTP routes it only binds the wire format to the typed request,
// makes one call to the decision service and renders the answer; caller
// authentication, rate limits, the in-flight cap, metrics and the TLS
// certificate are the HTTP server's (Host), so that a caller or a limit
// means the same on either transport.
package grpcapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/pdp"
)

// Host is what the gRPC transport shares with the HTTP server
// (*server.Server implements it).
type Host interface {
	// Decisions is the decision service every decision route calls.
	Decisions() *pdp.Service
	// AuthenticateCaller returns the claims of a caller's credential
	// with one of scopes, or a refusal that Refusal describes.
	AuthenticateCaller(ctx context.Context, authorization, apiKey, source string, scopes ...string) (authn.Claims, error)
	// DecisionsOpen: the decision routes need no caller token (--dev).
	DecisionsOpen() bool
	// VerifyEndUser verifies an end user's Bearer token (forward-auth).
	VerifyEndUser(ctx context.Context, token string) (authn.Claims, error)
	// Limit counts a request of a rate-limit group under its client and
	// address; a refusal is a 429.
	Limit(ctx context.Context, group, client, ip string) error
	// Admit counts a request in flight; false when the server is full.
	Admit() (done func(), ok bool)
}

// Refusal describes an error as the HTTP routes answer it: status, code,
// message and Retry-After seconds (server.Refusal).
type Refusal func(err error) (status int, code, message string, retryAfter int)

// Config is how New builds the gRPC server.
type Config struct {
	// Forward is the forward-auth configuration Check decides with.
	Forward *forward.Auth
	// Refusal turns the Host's errors into statuses and codes.
	Refusal Refusal
	// TLS, when not nil, makes the listener speak TLS (server.tls, with
	// ALPN h2; mTLS when it requires client certificates).
	TLS *tls.Config
	// MaxMessageBytes bounds a request message (server.body_limit).
	MaxMessageBytes int
	// ShutdownTimeout bounds how long in-flight calls may drain on stop.
	ShutdownTimeout time.Duration
	// Registry, when not nil, receives the gRPC metrics (served at
	// /metrics with the others).
	Registry *prometheus.Registry
	// TracerProvider, when not nil nor a no-op, traces every call: a
	// server span continuing the caller's W3C trace context (or, for a
	// Check, the original request's), parent of the decision's span.
	TracerProvider trace.TracerProvider
	// Log receives warnings and errors; nil discards them.
	Log *slog.Logger
}

// Server is the gRPC server. Build it with New, run it with Serve.
type Server struct {
	cfg     Config
	host    Host
	grpc    *grpc.Server
	health  *health.Server
	metrics *metrics
	tracer  trace.Tracer
	log     *slog.Logger
}

// New builds the gRPC server and registers its services.
func New(host Host, cfg Config) (*Server, error) {
	if host == nil || cfg.Forward == nil || cfg.Refusal == nil {
		return nil, errors.New("grpcapi: a host, a forward-auth configuration and a refusal mapper are required")
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, host: host, health: health.NewServer(), log: log, metrics: newMetrics(cfg.Registry), tracer: newTracer(cfg.TracerProvider)}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.intercept),
		// Gateways keep one connection open; pings keep it through
		// idle-timeout middleboxes, and abusive pings are refused.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s.grpc, &extAuthz{s: s})
	accessv1.RegisterAccessServer(s.grpc, &access{s: s})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setHealth()
	return s, nil
}

// The services health reports: "" (the whole server) and each API.
var healthServices = []string{"", authv3.Authorization_ServiceDesc.ServiceName, accessv1.Access_ServiceDesc.ServiceName}

// setHealth reports SERVING while a bundle is active (ready: decisions can
// be made) and NOT_SERVING before.
func (s *Server) setHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.host.Decisions().Active() != nil {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range healthServices {
		s.health.SetServingStatus(name, st)
	}
}

// Serve answers calls on ln until ctx is done, then reports NOT_SERVING,
// lets in-flight calls finish for at most ShutdownTimeout and returns. It
// returns the listener's error if it fails on its own.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(ln) }()
	// Readiness follows the bundles: checked every second.
	var wg sync.WaitGroup
	hctx, stopHealth := context.WithCancel(ctx)
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				s.setHealth()
			}
		}
	})
	defer func() { stopHealth(); wg.Wait() }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc: %w", err)
	case <-ctx.Done():
	}
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn("gRPC: calls still running after the shutdown timeout were cut")
		s.grpc.Stop()
		<-done
	}
	<-errc
	return nil
}
