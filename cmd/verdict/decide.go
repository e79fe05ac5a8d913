package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

func newDecide() *cobra.Command {
	var (
		paths     []string
		input     string
		explain   bool
		cfgPath   string
		skipTests bool
	)
	cmd := &cobra.Command{
		Use:   "decide --bundle PATH [--input FILE|-]",
		Short: "Evaluate a request against a bundle locally and print the decision JSON",
		Long: `Evaluate a request locally, without a server, and print the decision as
POST /v1/decide would answer it. The input is the /v1/decide request body
(a single request or a batch with "evaluations"), read from --input or stdin.

As under serve, a bundle whose own test cases fail is rejected; --skip-tests
decides anyway, to debug a failing case.

No signature is required; with --config giving bundles.keys, a
.signatures.json the bundle carries is verified.`,
		Example: `  echo '{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}' \
    | verdict decide --bundle policies/quickstart`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(paths) == 0 {
				return missingFlag(cmd, "--bundle PATH (a bundle directory or .tar.gz to decide with; repeatable)")
			}
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			var r io.Reader = cmd.InOrStdin()
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			def := cfg.Server
			body, err := io.ReadAll(io.LimitReader(r, int64(def.BodyLimit)+1))
			if err != nil {
				return err
			}
			if len(body) > def.BodyLimit {
				return fmt.Errorf("input is over the %d-byte limit", def.BodyLimit)
			}
			// The server's decision service, without a cache, with every
			// explanation allowed and the detailed cause of a failure in
			// the answer: this is the policy author's own tool.
			dc := def.Decisions()
			dc.Cache.MaxCost = 0
			dc.AllowExplain, dc.DetailedErrors = true, true
			dc.SignAll = false // no key signs here: server.sign_decisions is the server's
			req, err := pdp.Parse(cmd.Context(), body, dc.Limits, pdp.ParseOptions{}, nil)
			if err != nil {
				return fmt.Errorf("input: %w", err)
			}
			req.Explain = req.Explain || explain
			bc := cfg.BundleConfig()
			bc.SkipTests = bc.SkipTests || skipTests
			bc.Signing = localSigning(cfg)
			mgr := bundles.NewManager(bc, nil)
			active, err := mgr.LoadPaths(cmd.Context(), paths)
			if err != nil {
				return fmt.Errorf("bundle rejected:\n%w", err)
			}
			svc, err := pdp.New(dc, staticBundles{active})
			if err != nil {
				return err
			}
			defer svc.Close()
			res, err := svc.Decide(cmd.Context(), req, pdp.Meta{Endpoint: pdp.EndpointDecide})
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(res.Body())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&paths, "bundle", nil, "bundle directory or .tar.gz (repeatable)")
	f.StringVar(&input, "input", "-", "file with the request JSON, or - for stdin")
	f.BoolVar(&explain, "explain", false, "include a trace of every rule evaluated")
	f.StringVar(&cfgPath, "config", "", "configuration file whose engine and bundle limits apply (as under serve)")
	f.BoolVar(&skipTests, "skip-tests", false, "decide even if the bundle's own test cases fail")
	return cmd
}

// staticBundles serves one active bundle set that never changes.
type staticBundles struct{ a *bundles.Active }

func (s staticBundles) Active() *bundles.Active { return s.a }
