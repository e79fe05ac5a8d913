package main

import (
	"encoding/json"
	"fmt"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

func newBundleLint() *cobra.Command {
	var (
		strict  bool
		failOn  string
		jsonOut bool
		cfgPath string
	)
	cmd := &cobra.Command{
		Use:   "lint PATH",
		Short: "Find unreachable rules, untested rules, conditions that can never be true and Rego strict-mode issues",
		Long: `Check the bundle at PATH (a directory or .tar.gz) without serving it. Each
finding is printed as

  file:line:col: severity: message [check-id]

Errors are problems that reject the bundle or make a rule dead: compile
errors [compile], [incompatible-types], [tests], a duplicate rule id
[duplicate-id], an empty actions or resources list [empty-list], a rule that
can never be reached under first-applicable [unreachable-rule], a condition
that is always false [constant-false]. Warnings: a rule that repeats an
earlier one [shadowed-rule], a condition that is always true
[constant-true], a rule no test case exercises [untested-rule], and what
opa check --strict reports for Rego [rego-unused-var, rego-unused-arg,
rego-unused-import, rego-duplicate-import, rego-shadowed,
rego-deprecated-builtin, rego-strict] plus Rego v1 issues [rego-v1].
docs/policies.md ("Linting") explains each check and how to fix it.

The exit status is 1 when there is an error-level finding (or any finding with
--strict or --fail-on warning), 0 otherwise, and 2 on bad usage. --json prints
one JSON object with every finding instead. --config applies the same engine
and bundle limits as serve.`,
		Example: `  verdict bundle lint policies/quickstart
  verdict bundle lint --strict policies/rbac-rego     # warnings fail too, like opa check --strict
  verdict bundle lint --json bundle.tar.gz`,
		Args: argsExactly("PATH (a bundle directory or .tar.gz)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			threshold := engine.Error
			switch failOn {
			case "error":
			case "warning":
				threshold = engine.Warning
			default:
				return fmt.Errorf("invalid --fail-on %q: must be error or warning", failOn)
			}
			if strict {
				threshold = engine.Warning
			}
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			var findings []engine.Finding
			b, err := bundles.Load(args[0], cfg.BundleLimits)
			if err != nil {
				findings = []engine.Finding{{Severity: engine.Error, Check: bundles.CheckRead, Message: err.Error()}}
			} else if findings, err = bundles.Lint(cmd.Context(), b, cfg.Engine); err != nil {
				return err
			}
			errs, warns, failed := 0, 0, false
			for _, f := range findings {
				if f.Severity == engine.Error {
					errs++
				} else {
					warns++
				}
				if f.Severity >= threshold {
					failed = true
				}
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				if findings == nil {
					findings = []engine.Finding{}
				}
				raw, err := json.Marshal(struct {
					Bundle   string           `json:"bundle"`
					Findings []engine.Finding `json:"findings"`
					Errors   int              `json:"errors"`
					Warnings int              `json:"warnings"`
					Failed   bool             `json:"failed"`
				}{args[0], findings, errs, warns, failed})
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", raw)
			} else {
				for _, f := range findings {
					fmt.Fprintln(out, f)
				}
				if len(findings) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: no problems found\n", args[0])
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s, %s\n", args[0], plural(errs, "error"), plural(warns, "warning"))
				}
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "fail on warnings too (same as --fail-on warning)")
	cmd.Flags().StringVar(&failOn, "fail-on", "error", "lowest severity that makes the exit status 1: error or warning")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object with every finding")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose engine and bundle limits apply (as under serve)")
	return cmd
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
