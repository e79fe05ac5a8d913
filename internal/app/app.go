package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/scim"
	"go.opentelemetry.io/otel/trace"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/telemetry"
	"github.com/verdictpdp/verdict/server"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// Options are what New needs besides the configuration.
type Options struct {
	// Version is what /v1/status reports.
	Version string
	// Stderr receives the logs and the list of a rejected bundle's
	// problems; nil discards them.
	Stderr io.Writer
}

// App is one running Verdict: the store, the signing keys, the bundles,
// the token service, a replica's sync with a shared store, the decision
// log, telemetry and the HTTP listener, wired from one configuration. Build
// it with New, start it with Start, and stop it with Close, which stops
// every component in the reverse order of its start and waits for every
// goroutine the app started.
type App struct {
	cfg    Config
	opts   Options
	log    *slog.Logger
	stderr io.Writer

	// ctx lives from Start to Close: reloads and background work use it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	stops  []func() // in start order; Close runs them in reverse
	closed bool

	mgr  *bundles.Manager
	life *bundles.Lifecycle
	// facts keeps the SCIM-provisioned users and groups in the bundles'
	// data.
	facts *facts
	srv   *server.Server
	ln    net.Listener
	// adminLn is server.admin_addr's listener, nil without one.
	adminLn net.Listener
	// grpcLn is the listener of server.grpc_addr, nil without it.
	grpcLn net.Listener
	// served is closed when the HTTP server returned; serveErr is what it
	// returned.
	served   chan struct{}
	serveErr error
}

// New checks cfg and returns an app that has started nothing.
func New(cfg Config, opts Options) (*App, error) {
	if err := cfg.ValidateServe(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &App{cfg: cfg, opts: opts, stderr: opts.Stderr, log: cfg.Log.Logger(opts.Stderr)}, nil
}

// onStop registers f to run at Close, before everything started earlier.
func (a *App) onStop(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, f)
}

// goStop runs f in a goroutine with a context of its own, and at Close
// cancels it and waits for f to return.
func (a *App) goStop(f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	a.onStop(func() { cancel(); <-done })
}

// Start starts every component in order: telemetry, the store and the
// signing keys (and their maintenance), the bundles (loaded from the
// configured paths, else the stored active revision), the token service and
// verifier, a replica's sync with a shared store, the decision log, the
// HTTP server on its listener, and the bundle watch. It returns once the
// listener accepts requests. On an error what was started is stopped again
// and Close has nothing left to do. ctx bounds nothing after Start returns.
func (a *App) Start(ctx context.Context) (err error) {
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.onStop(a.cancel)
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	cfg, log := a.cfg, a.log
	if cfg.Dev {
		log.Warn("!!! DEVELOPMENT MODE: --dev is for a local developer setup only; never run it in production !!!")
	}
	tp, stopTracing, err := telemetry.NewTracerProvider(a.ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	a.onStop(func() {
		// Flush the last spans, for at most the drain time.
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("traces: flushing the last spans failed", "error", err)
		}
	})
	if cfg.Telemetry.Traces.Exporter != telemetry.ExporterNone {
		log.Info("tracing", "exporter", cfg.Telemetry.Traces.Exporter, "sample_ratio", cfg.Telemetry.Traces.SampleRatio)
	}
	st, err := OpenState(a.ctx, cfg)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: to run a second server beside it, give this one its own --data-dir and --addr", err)
	}
	if err != nil {
		return err
	}
	a.onStop(func() { st.Close() })
	a.goStop(func(ctx context.Context) { maintain(ctx, st, cfg.Users.AuditRetention, log) })

	bc := cfg.BundleConfig()
	a.mgr = bundles.NewManager(bc, log, bundles.WithTracerProvider(tp))
	logSigning(log, bc.Signing)
	a.life = bundles.NewLifecycle(a.mgr, storeadapt.Revisions(st.Store, store.DefaultNamespace), log)
	// The users and groups provisioned over SCIM are data of every
	// bundle: read before the first activation, rebuilt on every change.
	a.facts = &facts{mgr: a.mgr, st: storeadapt.Directory(st.Store, store.DefaultNamespace)}
	if err := a.facts.load(a.ctx); err != nil {
		return err
	}
	a.Reload()
	if len(cfg.Bundles.Paths) > 0 && a.mgr.Active() != nil {
		log.Info("serving bundles from paths; a push (POST /v1/bundles) replaces them until restart, SIGHUP or a watched change",
			"paths", cfg.Bundles.Paths)
	}

	issuer, err := oauth.NewTokenIssuer(cfg.IssuerConfig(), st.Keys, time.Now)
	if err != nil {
		return err
	}
	vc := cfg.VerifierConfig()
	vc.Logger = log
	revoked, mirror, err := revocationCheck(cfg, st.Store)
	if err != nil {
		return err
	}
	verifier, err := authn.NewVerifier(vc, st.Keys, revoked, time.Now)
	if err != nil {
		return err
	}
	a.onStop(verifier.Close)
	if cfg.Tokens.Issuer == "" && unspecifiedAddr(cfg.Server.Addr) {
		log.Warn("tokens.issuer is not set and the server listens on every address: tokens name iss "+
			cfg.IssuerConfig().Issuer+", which callers cannot reach; set tokens.issuer to the URL callers use",
			"addr", cfg.Server.Addr)
	}
	// Validate refuses dev on any other address.
	open := cfg.Dev && loopbackAddr(cfg.Server.Addr)
	if open {
		log.Warn("!!! --dev on a loopback address: /v1/decide answers WITHOUT caller authentication !!!")
	}
	tokens, people, err := tokenService(cfg, st, issuer, verifier, log)
	if err != nil {
		return err
	}
	// With a shared store the replica follows the others' changes; it
	// stops (and is waited for) before the store closes.
	fctx, stopFollowing := context.WithCancel(a.ctx)
	// The shadowed revision (store state) is followed by every replica;
	// the decision service is set once the server made it.
	shadow := &shadows{bs: st.Store, ns: store.DefaultNamespace}
	if ss, ok := st.Store.(store.Shadows); ok {
		shadow.st = ss
	}
	self := selfMember(a.opts.Version, time.Now(), func() string {
		if act := a.mgr.Active(); act != nil {
			return act.Snapshot.Revision()
		}
		return ""
	}, shadow.counts)
	shared, following, err := followStore(fctx, cfg, st.Store, a.life, verifier, st.Keys, mirror, a.facts, shadow, self, log)
	a.onStop(func() { stopFollowing(); following() })
	if err != nil {
		return err
	}
	keys, err := apiKeys(cfg, st, revoked, log)
	if err != nil {
		return err
	}
	// Use counts are kept in memory and written every 30 s, and once
	// more at stop.
	a.goStop(func(ctx context.Context) { keys.Run(ctx, 30*time.Second) })
	directory, err := scim.New(storeadapt.Directory(st.Store, store.DefaultNamespace), cfg.IssuerConfig().Issuer+"/scim/v2", log, a.facts.Refresh)
	if err != nil {
		return err
	}
	fa, err := forward.New(cfg.ForwardAuth)
	if err != nil {
		return err
	}
	// WithSelf first: a shared store's options describe the replica with
	// its sync state instead.
	opts := append([]server.Option{server.WithSelf(self), server.WithVersion(a.opts.Version), server.WithForwardAuth(fa),
		server.WithJWKS(st.Keys), server.WithStore(st.Store),
		server.WithTokens(tokens, cfg.IssuerConfig().Issuer),
		server.WithAuth(verifier, open), server.WithClientAdmin(st.Clients), server.WithKeyAdmin(st.Keys),
		server.WithBundleAdmin(a.life), server.WithTracerProvider(tp),
		server.WithSignIn(people, tokens.Authorizer()), server.WithUserAdmin(people, st.PseudonymKey),
		server.WithAPIKeys(keys), server.WithAPIKeyAdmin(keys), server.WithSCIM(directory)}, shared...)
	// Signed decisions (options.signed, server.sign_decisions) use the
	// keys that sign access tokens: they verify against the same JWKS.
	opts = append(opts, server.WithDecisionSigner(st.Keys, cfg.IssuerConfig().Issuer))
	if fs, ok := revoked.(server.MirrorAnswers); ok {
		// A shared store: the revocation check is fail-static, and its
		// mirror's answers during an outage are a metric.
		opts = append(opts, server.WithMirrorAnswers(fs))
	}
	dlog, stopLog, err := startDecisionLog(a.ctx, cfg.DecisionLogs, a.opts.Version, log)
	if err != nil {
		return err
	}
	// Stopped after the HTTP server drained: the last decisions are
	// written too.
	a.onStop(stopLog)
	if dlog != nil {
		opts = append(opts, server.WithDecisionLog(dlog), server.WithDecisionHistory(dlog))
	}
	if shadow.st != nil {
		opts = append(opts, server.WithShadows(shadow))
	}
	a.srv, err = server.New(cfg.Server, a.mgr, log, opts...)
	if err != nil {
		return err
	}
	a.onStop(a.srv.Close)
	if shadow.st != nil {
		shadow.follow(a.srv.Decisions())
		if err := shadow.Refresh(a.ctx); err != nil {
			// Shadowing changes no answer: the replica starts without it
			// and the next change or repair tries again.
			log.Warn("the shadowed bundle revision could not be followed", "error", err)
		}
	}
	// The console's decision-rate chart: a sample every 10 s.
	a.goStop(func(ctx context.Context) { a.srv.SampleRates(ctx, 10*time.Second) })
	a.ln, err = net.Listen("tcp", cfg.Server.Addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is in use, perhaps by another verdict serve (make run?): give this one another --addr (%w)", cfg.Server.Addr, err)
	}
	if err != nil {
		return err
	}
	var admin []net.Listener
	if cfg.Server.AdminAddr != "" {
		a.adminLn, err = net.Listen("tcp", cfg.Server.AdminAddr)
		if err != nil {
			a.ln.Close()
			return fmt.Errorf("server.admin_addr: %w", err)
		}
		admin = append(admin, a.adminLn)
	}
	if cfg.Bundles.Watch {
		a.goStop(func(ctx context.Context) {
			if err := a.mgr.Watch(ctx, cfg.Bundles.Paths, bundles.DefaultDebounce); err != nil {
				log.Error("bundle watch stopped; changes are no longer picked up", "error", err)
			}
		})
	}
	// Said before the first request can be answered.
	scheme := "http://"
	if cfg.Server.TLS.Enabled() {
		scheme = "https://"
	}
	log.Info("verdict listening", "addr", scheme+a.ln.Addr().String(), "bundles", cfg.Bundles.Paths,
		"data_dir", cfg.DataDir, "store", StoreName(cfg))
	if a.adminLn != nil {
		log.Info("admin listener: metrics, status, bundles and admin routes are answered here only", "addr", scheme+a.adminLn.Addr().String())
	}
	// The HTTP server runs until Close, which drains it first of all.
	sctx, stopServing := context.WithCancel(a.ctx)
	a.served = make(chan struct{})
	go func() {
		defer close(a.served)
		a.serveErr = a.srv.Serve(sctx, a.ln, admin...)
	}()
	a.onStop(func() {
		stopServing()
		<-a.served
	})
	// gRPC starts after HTTP and, registered later, stops before it.
	return a.startGRPC(fa, tp)
}

// startGRPC serves gRPC on server.grpc_addr, if set: Envoy ext_authz and
// the access API, sharing the HTTP server's authentication, limits,
// metrics and certificate.
func (a *App) startGRPC(fa *forward.Auth, tp trace.TracerProvider) error {
	cfg, log := a.cfg.Server, a.log
	if cfg.GRPCAddr == "" {
		return nil
	}
	g, err := grpcapi.New(a.srv, grpcapi.Config{
		Forward: fa, Refusal: server.Refusal, TLS: a.srv.GRPCTLS(cfg.GRPCClientCert),
		MaxMessageBytes: cfg.BodyLimit, ShutdownTimeout: cfg.ShutdownTimeout, Registry: a.srv.Registry(), TracerProvider: tp, Log: log,
	})
	if err != nil {
		return err
	}
	if a.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("server.grpc_addr: %w", err)
	}
	log.Info("gRPC listening: Envoy ext_authz, verdict.access.v1.Access, health, reflection",
		"addr", a.grpcLn.Addr().String(), "tls", cfg.TLS.Enabled(), "client_cert", cfg.GRPCClientCert)
	gctx, stop := context.WithCancel(a.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Serve(gctx, a.grpcLn); err != nil {
			log.Error("gRPC listener failed", "error", err)
		}
	}()
	a.onStop(func() { stop(); <-done })
	return nil
}

// GRPCAddr is the address of the gRPC listener (after Start), nil without
// server.grpc_addr.
func (a *App) GRPCAddr() net.Addr {
	if a.grpcLn == nil {
		return nil
	}
	return a.grpcLn.Addr()
}

// Addr is the address the app listens on (after Start).
func (a *App) Addr() net.Addr { return a.ln.Addr() }

// AdminAddr is the address of the admin listener (after Start), nil
// without server.admin_addr.
func (a *App) AdminAddr() net.Addr {
	if a.adminLn == nil {
		return nil
	}
	return a.adminLn.Addr()
}

// Server is the app's HTTP server (after Start).
func (a *App) Server() *server.Server { return a.srv }

// Done is closed when the HTTP server stopped on its own (its listener
// failed) or was stopped by Close.
func (a *App) Done() <-chan struct{} { return a.served }

// Reload loads the bundles again, all-or-nothing, as SIGHUP does: the
// configured paths, or without paths the stored active revision. A bundle
// that is rejected is logged and its problems written to Stderr; what was
// active keeps serving.
func (a *App) Reload() {
	cfg, log := a.cfg, a.log
	if len(cfg.Bundles.Paths) == 0 {
		restored, err := a.life.Restore(a.ctx)
		switch {
		case err != nil:
			log.Error("the stored active bundle revision was rejected: not ready, and every decision is a deny", "error", err)
			fmt.Fprintf(a.stderr, "bundle rejected:\n%v\n", err)
		case restored:
			log.Info("serving the stored active bundle revision", "revision", a.mgr.Active().Snapshot.Revision())
		default:
			log.Warn("no bundle given (--bundle PATH) and none pushed yet (verdict bundle push): not ready, and every decision is a deny")
		}
		return
	}
	if _, err := a.mgr.LoadPaths(a.ctx, cfg.Bundles.Paths); err != nil {
		// The manager logged it; this is the same list, one problem a line.
		fmt.Fprintf(a.stderr, "bundle rejected:\n%v\n", err)
	}
}

// Close stops the app: the HTTP server first (in-flight requests drain
// for at most server.shutdown_timeout), then every other component in the
// reverse order of its start, waiting for each goroutine it started. It
// returns the HTTP server's error, if it failed on its own. Calling it
// again does nothing.
func (a *App) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	stops := a.stops
	a.stops = nil
	a.mu.Unlock()
	for _, stop := range slices.Backward(stops) {
		stop()
	}
	// Last: every component stopped (the decision log's last records
	// written or shipped included).
	if a.served != nil {
		a.log.Info("verdict stopped")
	}
	if errors.Is(a.serveErr, context.Canceled) {
		return nil
	}
	return a.serveErr
}

// logSigning says at start how bundles are trusted, loudly when no bundle
// can be accepted.
func logSigning(log *slog.Logger, s bundles.SigningConfig) {
	kids := make([]string, 0, len(s.Keys))
	for kid := range s.Keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	switch {
	case s.Required && len(kids) == 0:
		log.Warn("bundle signatures are required but bundles.keys is empty: every bundle will be rejected. " +
			"Sign bundles with `verdict bundle sign` and configure the public key under bundles.keys, " +
			"or set bundles.require_signature: false (--dev also turns the requirement off)")
	case s.Required:
		log.Info("bundle signatures required", "keys", kids)
	case len(kids) > 0:
		log.Info("bundle signatures not required; signed bundles are verified", "keys", kids)
	default:
		log.Warn("bundle signatures not required: any bundle is trusted")
	}
}

// loopbackAddr reports whether host:port names only this machine.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unspecifiedAddr reports whether host:port listens on every address
// (0.0.0.0, ::, or no host).
func unspecifiedAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// maintain runs the key ring's schedule (a pending key starting to sign,
// retired keys leaving, automatic rotation), for a store that needs it
// (the embedded one) drops expired revocations, codes and sessions, and
// every hour deletes audit events older than retention, until ctx is
// done. Failures are logged; the ring keeps what it had.
func maintain(ctx context.Context, st *State, retention time.Duration, log *slog.Logger) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	sweeps := 0
	sw, needsSweep := st.Store.(sweeper)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before := keyStates(st.Keys.List())
		if err := st.Keys.Tick(ctx); err != nil && ctx.Err() == nil {
			log.Warn("signing-key maintenance failed; keys unchanged", "error", err)
		}
		for kid, state := range keyStates(st.Keys.List()) {
			if before[kid] != state {
				log.Info("signing key changed state", "audit", true, "kid", kid, "from", before[kid], "to", state)
			}
		}
		if sweeps++; needsSweep && sweeps%6 == 0 {
			if _, err := sw.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("sweeping expired state failed", "error", err)
			}
		}
		if sweeps%360 == 1 {
			pruneAudit(ctx, st.Store, time.Now().Add(-retention), log)
		}
	}
}

// pruneAudit deletes the audit events older than before (users.
// audit_retention).
func pruneAudit(ctx context.Context, st store.Store, before time.Time, log *slog.Logger) {
	n, err := st.PruneAudit(ctx, before)
	if err != nil && ctx.Err() == nil {
		log.Warn("pruning old audit events failed", "error", err)
		return
	}
	if n > 0 {
		log.Info("old audit events deleted", "count", n, "before", before.UTC().Format(time.RFC3339))
	}
}

// tokenService assembles the token service: client_credentials, refresh
// tokens, revocation and introspection, private_key_jwt and the
// authorization-code flow of people signing in (with the users service it
// returns too) always; token exchange when tokens.exchange maps at least
// one trusted issuer.
func tokenService(cfg Config, st *State, issuer *oauth.TokenIssuer, verifier *authn.Verifier, log *slog.Logger) (*oauth.TokenService, *users.Service, error) {
	ns := store.DefaultNamespace
	rc := cfg.RefreshConfig()
	rc.Logger = log
	families := storeadapt.Refresh(st.Store, ns)
	revs := storeadapt.Revocations(st.Store, ns)
	refresher, err := oauth.NewRefresher(rc, issuer, families, revs, verifier, time.Now)
	if err != nil {
		return nil, nil, err
	}
	revoker, err := oauth.NewRevoker(rc, verifier, families, revs, verifier, time.Now)
	if err != nil {
		return nil, nil, err
	}
	introspector, err := oauth.NewIntrospector(rc, verifier, families, time.Now)
	if err != nil {
		return nil, nil, err
	}
	assertions, err := oauth.NewAssertionVerifier(cfg.AssertionConfig(), st.Clients, storeadapt.OneTime(st.Store, ns), time.Now)
	if err != nil {
		return nil, nil, err
	}
	people, err := usersService(cfg, st, refresher, log)
	if err != nil {
		return nil, nil, err
	}
	az, err := authorizer(cfg, st, people, refresher)
	if err != nil {
		return nil, nil, err
	}
	opts := []oauth.ServiceOption{
		oauth.WithRefresh(refresher), oauth.WithRevocation(revoker, introspector), oauth.WithAssertions(assertions),
		oauth.WithAuthorizationCode(az, log),
	}
	if len(cfg.Tokens.Exchange.Mappings) > 0 {
		x, err := oauth.NewExchanger(cfg.Tokens.Exchange, st.Clients, verifier, issuer)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, oauth.WithExchange(x))
	}
	return oauth.NewTokenService(st.Clients, issuer, time.Now, opts...), people, nil
}

func keyStates(ks []authn.KeyInfo) map[string]authn.KeyState {
	m := make(map[string]authn.KeyState, len(ks))
	for _, k := range ks {
		m[k.KID] = k.State
	}
	return m
}

// startDecisionLog opens the decision log's sink and starts its writer; nil
// when decision_logs records nothing. stop ends the writer (which writes
// what is buffered first), waits for it and closes the sink; call it once
// the HTTP server drained. The writer does not stop with ctx, so that no
// decision made during the drain is lost.
func startDecisionLog(ctx context.Context, cfg decisionlog.Config, version string, log *slog.Logger) (l *decisionlog.Logger, stop func(), err error) {
	if !cfg.Enabled() {
		return nil, func() {}, nil
	}
	sink, err := decisionlog.OpenSink(cfg)
	if err != nil {
		return nil, nil, err
	}
	var w io.Writer
	if sink != nil {
		w = sink
	}
	if l, err = decisionlog.New(cfg, w, log, decisionlog.WithVersion(version)); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(lctx)
	}()
	where := []any{"path", cfg.Path}
	if cfg.Sink == decisionlog.SinkHTTP {
		where = []any{"url", cfg.HTTP.URL}
	}
	log.Info("decision log on", append([]any{"sink", cfg.Sink, "history", cfg.History, "sample_ratio", cfg.SampleRatio}, where...)...)
	return l, func() {
		cancel()
		<-done
		if sink != nil {
			if err := sink.Close(); err != nil {
				log.Warn("decision log: closing the sink failed", "error", err)
			}
		}
	}, nil
}
