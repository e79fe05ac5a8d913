package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/config"
)

func newBundle() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Work with policy bundles",
	}
	cmd.AddCommand(newBundleTest(), newBundlePreview())
	return cmd
}

func newBundleTest() *cobra.Command {
	var (
		verbose bool
		cfgPath string
	)
	cmd := &cobra.Command{
		Use:   "test PATH",
		Short: "Compile a bundle and run its *_test.yaml cases",
		Long: `Compile every policy of the bundle at PATH (a directory or .tar.gz) and run the
test cases of its *_test.yaml files. Prints a go test-like summary; the exit
status is 0 when every case passes, 1 when a case fails or the bundle does not
compile or cannot be read (with file:line:col for each problem), 2 on bad
usage. --config applies the same engine and bundle limits as serve.`,
		Example: "  verdict bundle test policies/quickstart",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			start := time.Now()
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			fail := func(err error) error {
				fmt.Fprintln(out, err)
				fmt.Fprintf(out, "FAIL\t%s\t(bundle rejected)\n", args[0])
				return exitError{1}
			}
			b, err := bundles.Load(args[0], cfg.BundleLimits)
			if err != nil {
				return fail(err)
			}
			compiled, err := bundles.CompileWith(cmd.Context(), []*bundles.Bundle{b},
				bundles.CompileOptions{Limits: cfg.Engine, SchemaMode: cfg.Bundles.Schemas})
			if err != nil {
				return fail(err)
			}
			snap := compiled.Snapshot
			cases, err := b.Tests()
			if err != nil {
				return fail(err)
			}
			passed, failed := 0, 0
			for _, r := range bundles.RunTests(cmd.Context(), snap, cases) {
				if verbose {
					fmt.Fprintf(out, "=== RUN   %s\n", r.Case.Name)
				}
				if r.Passed() {
					passed++
					if verbose {
						fmt.Fprintf(out, "--- PASS: %s\n", r.Case.Name)
					}
					continue
				}
				failed++
				fmt.Fprintf(out, "--- FAIL: %s\n    %s:%d: %s\n", r.Case.Name, r.Case.File, r.Case.Line, r.Failure)
			}
			elapsed := time.Since(start).Seconds()
			if failed > 0 {
				fmt.Fprintln(out, "FAIL")
				fmt.Fprintf(out, "FAIL\t%s\t%.3fs\t%d passed, %d failed\n", args[0], elapsed, passed, failed)
				return exitError{1}
			}
			if passed == 0 {
				fmt.Fprintf(out, "ok  \t%s\t%.3fs\t[no test cases: add *_test.yaml files]\n", args[0], elapsed)
				return nil
			}
			fmt.Fprintln(out, "PASS")
			fmt.Fprintf(out, "ok  \t%s\t%.3fs\t%d passed, %d failed\n", args[0], elapsed, passed, failed)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every case, not only failures")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose engine and bundle limits apply (as under serve)")
	return cmd
}
