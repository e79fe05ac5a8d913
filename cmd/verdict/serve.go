package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/internal/app"
)

func newServe() *cobra.Command {
	var (
		cfgPath  string
		addr     string
		grpcAddr string
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
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("addr") {
				cfg.Server.Addr = addr
			}
			if f.Changed("grpc-addr") {
				cfg.Server.GRPCAddr = grpcAddr
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
			if err := cfg.ValidateServe(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			return serve(cmd.Context(), cfg, cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML configuration file")
	f.StringVar(&addr, "addr", "127.0.0.1:8700", "listen address host:port")
	f.StringVar(&grpcAddr, "grpc-addr", "", "gRPC listen address host:port (Envoy ext_authz, verdict.access.v1.Access); off when empty")
	f.StringArrayVar(&paths, "bundle", nil, "bundle directory or .tar.gz to serve (repeatable; several bundles combine deny-overrides)")
	f.StringVar(&dataDir, "data-dir", "./verdict-data", "directory for durable state")
	f.StringVar(&storeURL, "store", "", storeFlagHelp)
	f.BoolVar(&dev, "dev", false, "local developer setup (never in production)")
	f.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&watch, "watch", false, "reload the --bundle paths when a file in them changes (local authoring)")
	return cmd
}

// serve runs the app until ctx is done; SIGHUP reloads the bundles.
func serve(ctx context.Context, cfg app.Config, cmd *cobra.Command) error {
	// Catch SIGHUP first: its default action would kill a server that is
	// still loading its first bundle.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := app.New(cfg, app.Options{Version: version, Stderr: cmd.ErrOrStderr()})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return a.Close()
		case <-a.Done():
			return a.Close()
		case <-hup:
			cfg.Log.Logger(cmd.ErrOrStderr()).Info("SIGHUP: reloading bundles")
			a.Reload()
		}
	}
}
