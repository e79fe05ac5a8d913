package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

func newBundle() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Work with policy bundles",
	}
	cmd.AddCommand(newBundleTest(), newBundleLint())
	cmd.AddCommand(newBundlePush(), newBundleRevisions(), newBundleActivate(), newBundleShadow())
	cmd.AddCommand(newBundleSign(), newBundleBuild(), newBundleKeygen())
	cmd.AddCommand(newBundlePreview())
	return cmd
}

// localSigning is the signing configuration of the local tools (bundle
// test, decide): no signature is required, but one that is present is
// verified against the configured keys.
func localSigning(cfg app.Config) bundles.SigningConfig {
	s := cfg.BundleConfig().Signing
	s.Required = false
	return s
}

func newBundleTest() *cobra.Command {
	var (
		verbose bool
		jsonOut bool
		runExpr string
		covPath string
		cfgPath string
	)
	cmd := &cobra.Command{
		Use:   "test PATH",
		Short: "Compile a bundle, run its *_test.yaml cases and report rule coverage",
		Long: `Compile every policy of the bundle at PATH (a directory or .tar.gz) and run the
test cases of its *_test.yaml files, like go test -v: a failing case prints
--- FAIL with its file:line and what was wrong; -v also prints === RUN and
--- PASS for every case. --run REGEX (a Go regular expression, as in go test)
runs only the cases whose name it matches; when none matches the command says
so and exits 0.

After the run it prints rule coverage: how many rules some case exercised, and
every rule none did, with its file:line:

  coverage: 5/6 rules exercised
  not exercised: documents.verdict.yaml:63 rule "locked-documents"

A CEL rule is exercised when a case
made it match (it applied to the action and resource type and its condition
was true); a Rego rule of the entrypoint's package when its body succeeded
for some case (default rules are left out). --coverage-json FILE also writes
the coverage as JSON.

--json prints one JSON object per case and a summary object, one per line,
for CI. The exit status is 0 when every case passes, 1 when a case fails or
the bundle does not compile or cannot be read (with file:line:col for each
problem), 2 on bad usage (such as an invalid --run expression). --config
applies the same engine and bundle limits as serve.

A signature is not required here (this is a local tool), but when --config
configures bundles.keys, a .signatures.json the bundle carries is verified
and a bad one fails the run.`,
		Example: `  verdict bundle test policies/quickstart
  verdict bundle test -v --run 'editor|owner' policies/quickstart
  verdict bundle test --json --coverage-json coverage.json policies/rbac-rego`,
		Args: argsExactly("PATH (a bundle directory or .tar.gz)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var filter *regexp.Regexp
			if runExpr != "" {
				re, err := regexp.Compile(runExpr)
				if err != nil {
					return fmt.Errorf("invalid --run expression: %w", err)
				}
				filter = re
			}
			start := time.Now()
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			rep := &testReport{out: cmd.OutOrStdout(), bundle: args[0], verbose: verbose, json: jsonOut, start: start}
			b, err := bundles.Load(args[0], cfg.BundleLimits)
			if err != nil {
				return rep.rejected(err)
			}
			if err := bundles.Verify(b, localSigning(cfg)); err != nil {
				return rep.rejected(err)
			}
			compiled, err := bundles.CompileWith(cmd.Context(), []*bundles.Bundle{b},
				bundles.CompileOptions{Limits: cfg.Engine, SchemaMode: cfg.Bundles.Schemas})
			if err != nil {
				return rep.rejected(err)
			}
			snap := compiled.Snapshot
			cases, err := b.Tests()
			if err != nil {
				return rep.rejected(err)
			}
			total := len(cases)
			if filter != nil {
				cases = slices.DeleteFunc(cases, func(tc bundles.TestCase) bool { return !filter.MatchString(tc.Name) })
			}
			results, cov := bundles.RunTestsCovered(cmd.Context(), snap, cases)
			for _, r := range results {
				rep.result(r)
			}
			if covPath != "" && len(results) > 0 {
				if err := writeCoverage(covPath, cov); err != nil {
					return err
				}
			}
			return rep.summary(total, cov)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every case, not only failures")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object per case and a summary object, one per line")
	cmd.Flags().StringVar(&runExpr, "run", "", "run only the cases whose name matches this Go regular expression")
	cmd.Flags().StringVar(&covPath, "coverage-json", "", "also write the rule coverage as JSON to this file")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose engine and bundle limits apply (as under serve)")
	return cmd
}

// testReport prints the results of bundle test as text or JSON lines.
type testReport struct {
	out            io.Writer
	bundle         string
	verbose, json  bool
	start          time.Time
	passed, failed int
}

// testCaseJSON is one case of bundle test --json.
type testCaseJSON struct {
	Type     string   `json:"type"` // "case"
	Name     string   `json:"name"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Result   string   `json:"result"` // "pass" or "fail"
	Failure  string   `json:"failure,omitempty"`
	Decision bool     `json:"decision"`
	Reasons  []string `json:"reasons"`
	Elapsed  float64  `json:"elapsed_seconds"`
}

// testSummaryJSON is the last line of bundle test --json.
type testSummaryJSON struct {
	Type     string        `json:"type"`   // "summary"
	Result   string        `json:"result"` // "pass", "fail", "rejected" or "no-tests"
	Bundle   string        `json:"bundle"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Elapsed  float64       `json:"elapsed_seconds"`
	Coverage *coverageJSON `json:"coverage,omitempty"`
	// Errors are the problems that rejected the bundle.
	Errors []engine.CompileError `json:"errors,omitempty"`
}

// coverageJSON is the coverage of bundle test --json and --coverage-json.
type coverageJSON struct {
	Exercised int                    `json:"exercised"`
	Total     int                    `json:"total"`
	Rules     []bundles.RuleCoverage `json:"rules"`
}

func coverageOf(c *bundles.Coverage) *coverageJSON {
	rules := c.Rules
	if rules == nil {
		rules = []bundles.RuleCoverage{}
	}
	return &coverageJSON{Exercised: c.Exercised(), Total: len(c.Rules), Rules: rules}
}

func writeCoverage(path string, c *bundles.Coverage) error {
	raw, err := json.MarshalIndent(coverageOf(c), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing coverage: %w", err)
	}
	return nil
}

func (r *testReport) emit(v any) {
	raw, _ := json.Marshal(v)
	fmt.Fprintf(r.out, "%s\n", raw)
}

func (r *testReport) elapsed() float64 { return time.Since(r.start).Seconds() }

// rejected reports a bundle that could not be read, compiled or its tests
// parsed, and returns exit status 1.
func (r *testReport) rejected(err error) error {
	if r.json {
		s := testSummaryJSON{Type: "summary", Result: "rejected", Bundle: r.bundle, Elapsed: r.elapsed()}
		if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
			s.Errors = ce
		} else {
			s.Errors = []engine.CompileError{{Message: err.Error()}}
		}
		r.emit(s)
		return exitError{1}
	}
	fmt.Fprintln(r.out, err)
	fmt.Fprintf(r.out, "FAIL\t%s\t(bundle rejected)\n", r.bundle)
	return exitError{1}
}

func (r *testReport) result(c bundles.CaseResult) {
	tc := c.Case
	if c.Passed() {
		r.passed++
	} else {
		r.failed++
	}
	if r.json {
		j := testCaseJSON{Type: "case", Name: tc.Name, File: tc.File, Line: tc.Line, Result: "pass", Failure: c.Failure,
			Decision: c.Decision.Allow, Reasons: c.Decision.Reasons, Elapsed: c.Elapsed.Seconds()}
		if !c.Passed() {
			j.Result = "fail"
		}
		if j.Reasons == nil {
			j.Reasons = []string{}
		}
		r.emit(j)
		return
	}
	if r.verbose {
		fmt.Fprintf(r.out, "=== RUN   %s\n", tc.Name)
	}
	switch {
	case !c.Passed():
		fmt.Fprintf(r.out, "--- FAIL: %s (%.2fs)\n    %s:%d: %s\n", tc.Name, c.Elapsed.Seconds(), tc.File, tc.Line, c.Failure)
	case r.verbose:
		fmt.Fprintf(r.out, "--- PASS: %s (%.2fs)\n", tc.Name, c.Elapsed.Seconds())
	}
}

// summary prints the end of the run: the verdict, the coverage and the
// counts. total is the number of cases before --run filtered them.
func (r *testReport) summary(total int, cov *bundles.Coverage) error {
	ran := r.passed + r.failed
	result := "pass"
	switch {
	case r.failed > 0:
		result = "fail"
	case ran == 0:
		result = "no-tests"
	}
	if r.json {
		s := testSummaryJSON{Type: "summary", Result: result, Bundle: r.bundle, Passed: r.passed, Failed: r.failed, Elapsed: r.elapsed()}
		if ran > 0 {
			s.Coverage = coverageOf(cov)
		}
		r.emit(s)
		if r.failed > 0 {
			return exitError{1}
		}
		return nil
	}
	if ran == 0 {
		if total == 0 {
			fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\t[no test cases: add *_test.yaml files]\n", r.bundle, r.elapsed())
			return nil
		}
		fmt.Fprintln(r.out, "testing: warning: no tests to run (no case name matches --run)")
		fmt.Fprintln(r.out, "PASS")
		fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\t[no tests to run]\n", r.bundle, r.elapsed())
		return nil
	}
	verdict := "PASS"
	if r.failed > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintln(r.out, verdict)
	if len(cov.Rules) > 0 {
		fmt.Fprintf(r.out, "coverage: %d/%d rules exercised\n", cov.Exercised(), len(cov.Rules))
		for _, rc := range cov.NotExercised() {
			fmt.Fprintf(r.out, "not exercised: %s:%d rule %q\n", rc.File, rc.Line, rc.Rule)
		}
	}
	status := "ok  "
	if r.failed > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(r.out, "%s\t%s\t%.3fs\t%d passed, %d failed\n", status, r.bundle, r.elapsed(), r.passed, r.failed)
	if r.failed > 0 {
		return exitError{1}
	}
	return nil
}
