package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/telemetry"
	"github.com/verdictpdp/verdict/server"
	"github.com/verdictpdp/verdict/store"
)

func newServe() *cobra.Command {
	var (
		cfgPath  string
		addr     string
		paths    []string
		dataDir  string
		storeURL string
		dev      bool
		level    string
		watch    bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve decisions over HTTP",
		Long: `Serve decisions over HTTP from one or more bundles.

Bundles are loaded all-or-nothing: a bundle that fails to read, compile or pass
its own tests is rejected with file:line:col errors, and the server keeps what
it had. At start that means it is not ready (/readyz answers 503) and every
decision is a deny until a good bundle is loaded. SIGHUP reloads the bundles.

Without --bundle, the server serves the bundle revision last activated in the
data dir's store (pushed with "verdict bundle push" or POST /v1/bundles), so a
restart keeps what was pushed. With --bundle, those paths serve; a push
replaces them until the next restart, SIGHUP or watched change.

--watch (or bundles.watch: true) reloads the --bundle paths when a file in
them changes (debounced 200 ms, subdirectories included), for local authoring;
a broken change is logged and the bundle that served keeps serving.

Outside --dev, every bundle must be signed (bundles.require_signature defaults
to true): a .signatures.json made with ` + "`verdict bundle sign`" + ` (or ` + "`opa sign`" + `)
and verified with a public key under bundles.keys. An unsigned bundle is
rejected with the reason and the fix; set bundles.require_signature: false in
--config to serve unsigned bundles.

Settings come from defaults, then --config FILE, then the flags given.`,
		Example: `  # development: unsigned bundles, no caller token on loopback (from the repository root)
  verdict serve --dev --bundle policies/quickstart
  verdict serve --dev --bundle ./my-policies --watch
  # production: signed bundles and callers with tokens, settings in a file
  verdict serve --config verdict.yaml --addr 0.0.0.0:8700`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("addr") {
				cfg.Server.Addr = addr
			}
			if f.Changed("bundle") {
				cfg.Bundles.Paths = paths
			}
			if f.Changed("data-dir") {
				cfg.DataDir = dataDir
			}
			if f.Changed("store") {
				cfg.Store = storeURL
			}
			if f.Changed("dev") {
				cfg.Dev = dev
			}
			if f.Changed("log-level") {
				cfg.Log.Level = level
			}
			if f.Changed("watch") {
				cfg.Bundles.Watch = watch
			}
			if cfg.Bundles.Watch && len(cfg.Bundles.Paths) == 0 {
				return errors.New("--watch needs the bundle paths to watch: --bundle DIR")
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			return serve(cmd.Context(), cfg, cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML configuration file")
	f.StringVar(&addr, "addr", "127.0.0.1:8700", "listen address host:port")
	f.StringArrayVar(&paths, "bundle", nil, "bundle directory or .tar.gz to serve (repeatable; several bundles combine deny-overrides)")
	f.StringVar(&dataDir, "data-dir", "./verdict-data", "directory for durable state")
	f.StringVar(&storeURL, "store", "", storeFlagHelp)
	f.BoolVar(&dev, "dev", false, "local developer setup (never in production)")
	f.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&watch, "watch", false, "reload the --bundle paths when a file in them changes (local authoring)")
	return cmd
}

func serve(ctx context.Context, cfg config.Config, cmd *cobra.Command) error {
	// Catch SIGHUP first: its default action would kill a server that is
	// still loading its first bundle.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := cfg.Log.Logger(cmd.ErrOrStderr())
	if cfg.Dev {
		log.Warn("!!! DEVELOPMENT MODE: --dev is for a local developer setup only; never run it in production !!!")
	}
	tp, stopTracing, err := telemetry.NewTracerProvider(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the last spans, for at most the drain time; the context
		// is done by now, so a fresh one.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("traces: flushing the last spans failed", "error", err)
		}
	}()
	if cfg.Telemetry.Traces.Exporter != telemetry.ExporterNone {
		log.Info("tracing", "exporter", cfg.Telemetry.Traces.Exporter, "sample_ratio", cfg.Telemetry.Traces.SampleRatio)
	}
	st, err := openState(ctx, cfg)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: to run a second server beside it, give this one its own --data-dir and --addr", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	// maintain ends with serve, also when serve fails to start (a busy
	// --addr), and before the store closes.
	mctx, stopMaintain := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); maintain(mctx, st, log) }()
	defer func() { stopMaintain(); <-maintained }()
	bc := cfg.BundleConfig()
	mgr := bundles.NewManager(bc, log, bundles.WithTracerProvider(tp))
	logSigning(log, bc.Signing)
	life := bundles.NewLifecycle(mgr, st.store, store.DefaultNamespace, log)
	load := func() {
		if len(cfg.Bundles.Paths) == 0 {
			restored, err := life.Restore(ctx)
			switch {
			case err != nil:
				log.Error("the stored active bundle revision was rejected: not ready, and every decision is a deny", "error", err)
				fmt.Fprintf(cmd.ErrOrStderr(), "bundle rejected:\n%v\n", err)
			case restored:
				log.Info("serving the stored active bundle revision", "revision", mgr.Active().Snapshot.Revision())
			default:
				log.Warn("no bundle given (--bundle PATH) and none pushed yet (verdict bundle push): not ready, and every decision is a deny")
			}
			return
		}
		if _, err := mgr.LoadPaths(ctx, cfg.Bundles.Paths); err != nil {
			// The manager logged it; this is the same list, one problem a line.
			fmt.Fprintf(cmd.ErrOrStderr(), "bundle rejected:\n%v\n", err)
		}
	}
	load()
	if len(cfg.Bundles.Paths) > 0 && mgr.Active() != nil {
		log.Info("serving bundles from paths; a push (POST /v1/bundles) replaces them until restart, SIGHUP or a watched change",
			"paths", cfg.Bundles.Paths)
	}
	issuer, err := authn.NewTokenIssuer(cfg.IssuerConfig(), st.keys, time.Now)
	if err != nil {
		return err
	}
	vc := cfg.VerifierConfig()
	vc.Logger = log
	revoked, mirror, err := revocationCheck(cfg, st.store)
	if err != nil {
		return err
	}
	verifier, err := authn.NewVerifier(vc, st.keys, revoked, time.Now)
	if err != nil {
		return err
	}
	defer verifier.Close()
	if cfg.Tokens.Issuer == "" && unspecifiedAddr(cfg.Server.Addr) {
		log.Warn("tokens.issuer is not set and the server listens on every address: tokens name iss "+
			cfg.IssuerConfig().Issuer+", which callers cannot reach; set tokens.issuer to the URL callers use",
			"addr", cfg.Server.Addr)
	}
	open := cfg.Dev && loopbackAddr(cfg.Server.Addr)
	switch {
	case open:
		log.Warn("!!! --dev on a loopback address: /v1/decide answers WITHOUT caller authentication !!!")
	case cfg.Dev:
		log.Warn("--dev on a non-loopback address: caller authentication stays on")
	}
	tokens, err := tokenService(cfg, st, issuer, verifier, log)
	if err != nil {
		return err
	}
	// With a shared store the replica follows the others' changes; it
	// stops (and is waited for) before the store closes.
	fctx, stopFollowing := context.WithCancel(ctx)
	shared, following, err := followStore(fctx, cfg, st.store, life, verifier, st.keys, mirror, log)
	defer func() { stopFollowing(); following() }()
	if err != nil {
		return err
	}
	forward, err := server.NewForwardAuth(cfg.ForwardAuth)
	if err != nil {
		return err
	}
	opts := append([]server.Option{server.WithVersion(version), server.WithForwardAuth(forward),
		server.WithJWKS(st.keys), server.WithStore(st.store),
		server.WithTokens(tokens, cfg.IssuerConfig().Issuer),
		server.WithAuth(verifier, open), server.WithClientAdmin(st.clients), server.WithKeyAdmin(st.keys),
		server.WithBundleAdmin(life), server.WithTracerProvider(tp)}, shared...)
	if fs, ok := revoked.(server.MirrorAnswers); ok {
		// A shared store: the revocation check is fail-static, and its
		// mirror's answers during an outage are a metric.
		opts = append(opts, server.WithMirrorAnswers(fs))
	}
	dlog, stopLog, err := startDecisionLog(ctx, cfg.DecisionLogs, log)
	if err != nil {
		return err
	}
	// Deferred before the server's Close, so it runs after Serve returned
	// (the HTTP server drained): the last decisions are written too.
	defer stopLog()
	if dlog != nil {
		opts = append(opts, server.WithDecisionLog(dlog), server.WithDecisionHistory(dlog))
	}
	srv, err := server.New(cfg.Server, mgr, log, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is in use, perhaps by another verdict serve (make run?): give this one another --addr (%w)", cfg.Server.Addr, err)
	}
	if err != nil {
		return err
	}
	if cfg.Bundles.Watch {
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() { stopWatch(); <-watched }()
		go func() {
			defer close(watched)
			if err := mgr.Watch(wctx, cfg.Bundles.Paths, bundles.DefaultDebounce); err != nil {
				log.Error("bundle watch stopped; changes are no longer picked up", "error", err)
			}
		}()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading bundles")
				load()
			}
		}
	}()
	log.Info("verdict listening", "addr", "http://"+ln.Addr().String(), "bundles", cfg.Bundles.Paths, "data_dir", cfg.DataDir, "store", storeName(cfg))
	err = srv.Serve(ctx, ln)
	log.Info("verdict stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
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
// retired keys leaving, automatic rotation) and, for a store that needs it
// (the embedded one), drops expired revocations until ctx is done. Failures are logged; the ring keeps what it had.
func maintain(ctx context.Context, st *state, log *slog.Logger) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	sweeps := 0
	sw, needsSweep := st.store.(sweeper)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before := keyStates(st.keys.List())
		if err := st.keys.Tick(ctx); err != nil && ctx.Err() == nil {
			log.Warn("signing-key maintenance failed; keys unchanged", "error", err)
		}
		for kid, state := range keyStates(st.keys.List()) {
			if before[kid] != state {
				log.Info("signing key changed state", "audit", true, "kid", kid, "from", before[kid], "to", state)
			}
		}
		if sweeps++; needsSweep && sweeps%6 == 0 {
			if _, err := sw.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("sweeping expired state failed", "error", err)
			}
		}
	}
}

// tokenService assembles the token service: client_credentials, refresh
// tokens, revocation and introspection and private_key_jwt always; token
// exchange when tokens.exchange maps at least one trusted issuer.
func tokenService(cfg config.Config, st *state, issuer *authn.TokenIssuer, verifier *authn.Verifier, log *slog.Logger) (*authn.TokenService, error) {
	ns := store.DefaultNamespace
	rc := cfg.RefreshConfig()
	rc.Logger = log
	families := refreshStore{st: st.store, ns: ns}
	revs := revocations{st: st.store, ns: ns}
	refresher, err := authn.NewRefresher(rc, issuer, families, revs, verifier, time.Now)
	if err != nil {
		return nil, err
	}
	revoker, err := authn.NewRevoker(rc, verifier, families, revs, verifier, time.Now)
	if err != nil {
		return nil, err
	}
	introspector, err := authn.NewIntrospector(rc, verifier, families, time.Now)
	if err != nil {
		return nil, err
	}
	assertions, err := authn.NewAssertionVerifier(cfg.AssertionConfig(), st.clients, oneTime{st: st.store, ns: ns}, time.Now)
	if err != nil {
		return nil, err
	}
	opts := []authn.ServiceOption{
		authn.WithRefresh(refresher), authn.WithRevocation(revoker, introspector), authn.WithAssertions(assertions),
	}
	if len(cfg.Tokens.Exchange.Mappings) > 0 {
		x, err := authn.NewExchanger(cfg.Tokens.Exchange, st.clients, verifier, issuer)
		if err != nil {
			return nil, err
		}
		opts = append(opts, authn.WithExchange(x))
	}
	return authn.NewTokenService(st.clients, issuer, time.Now, opts...), nil
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
func startDecisionLog(ctx context.Context, cfg decisionlog.Config, log *slog.Logger) (l *decisionlog.Logger, stop func(), err error) {
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
	if l, err = decisionlog.New(cfg, w, log); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(lctx)
	}()
	log.Info("decision log on", "sink", cfg.Sink, "path", cfg.Path, "history", cfg.History, "sample_ratio", cfg.SampleRatio)
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
