package bundles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
	celengine "github.com/verdictpdp/verdict/engine/cel"
)

// TestCase is one case of a *_test.yaml file.
type TestCase struct {
	// File and Line locate the case.
	File string
	Line int
	Name string
	// Input is the decision input.
	Input *engine.Input
	// Want is the expected decision.
	Want bool
	// WantReasons, when non-nil, must equal the decision's reasons (as a set).
	WantReasons []string
}

type testFile struct {
	Tests []yaml.Node `yaml:"tests"`
}

type testCaseDoc struct {
	Name   string         `yaml:"name"`
	Input  map[string]any `yaml:"input"`
	Expect yaml.Node      `yaml:"expect"`
	Now    string         `yaml:"now"`
}

// Tests parses every *_test.yaml file of the bundle. Problems come back as
// engine.CompileErrors located in their file.
func (b *Bundle) Tests() ([]TestCase, error) {
	var cases []TestCase
	var errs engine.CompileErrors
	for _, name := range sortedNames(b.Files, IsTestFile) {
		cs, err := parseTests(name, b.Files[name])
		if err != nil {
			if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
				errs = append(errs, ce...)
				continue
			}
			return nil, err
		}
		cases = append(cases, cs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cases, nil
}

func parseTests(name string, raw []byte) ([]TestCase, error) {
	var out []TestCase
	var errs engine.CompileErrors
	bad := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, engine.CompileError{File: name, Line: n.Line, Col: n.Column, Message: fmt.Sprintf(format, args...)})
	}
	// badYAML reports an unknown key or a value of the wrong type where it
	// is, and anything else at n.
	badYAML := func(n *yaml.Node, prefix string, err error) {
		_, unknown := errors.AsType[*celengine.KeyError](err)
		_, mistyped := errors.AsType[*yaml.TypeError](err)
		if !unknown && !mistyped {
			bad(n, "%s%v", prefix, err)
			return
		}
		for _, e := range celengine.YAMLErrors(name, raw, err) {
			e.Message = prefix + e.Message
			errs = append(errs, e)
		}
	}
	tf, err := decodeTestFile(name, raw)
	if err != nil {
		return nil, err
	}
	for i := range tf.Tests {
		n := &tf.Tests[i]
		var doc testCaseDoc
		if err := celengine.KnownKeys(n, "test case", "name", "input", "expect", "now"); err != nil {
			badYAML(n, fmt.Sprintf("test %d: ", i+1), err)
			continue
		}
		if err := n.Decode(&doc); err != nil {
			badYAML(n, fmt.Sprintf("test %d: ", i+1), err)
			continue
		}
		tc := TestCase{File: name, Line: n.Line, Name: doc.Name}
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("%s#%d", name, i+1)
		}
		shaped, err := jsonShape(name, doc.Input)
		if err != nil {
			bad(n, "test %q: %v", tc.Name, err)
			continue
		}
		m, _ := shaped.(map[string]any)
		if m == nil {
			bad(n, "test %q: input is required", tc.Name)
			continue
		}
		in, err := engine.ParseInput(m, "input.")
		if err != nil {
			bad(n, "test %q: %v", tc.Name, err)
			continue
		}
		if doc.Now != "" {
			t, err := time.Parse(time.RFC3339, doc.Now)
			if err != nil {
				bad(n, "test %q: now must be an RFC 3339 time: %v", tc.Name, err)
				continue
			}
			in.Now = t
		}
		tc.Input = in
		if err := parseExpect(&doc.Expect, &tc); err != nil {
			at := &doc.Expect
			if at.Line == 0 { // no expect at all
				at = n
			}
			badYAML(at, fmt.Sprintf("test %q: ", tc.Name), err)
			continue
		}
		out = append(out, tc)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// decodeTestFile reads the tests list of a *_test.yaml file. Problems come
// back as engine.CompileErrors at file:line:col.
func decodeTestFile(name string, raw []byte) (*testFile, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&root); err != nil {
		ce := celengine.YAMLErrors(name, raw, err)
		if errors.Is(err, io.EOF) {
			ce[0].Message = "empty test file: it needs a list of tests"
		}
		return nil, ce
	}
	if len(root.Content) == 1 {
		if err := celengine.KnownKeys(root.Content[0], "the test file", "tests"); err != nil {
			return nil, celengine.YAMLErrors(name, raw, err)
		}
	}
	var tf testFile
	if err := root.Decode(&tf); err != nil {
		return nil, celengine.YAMLErrors(name, raw, err)
	}
	return &tf, nil
}

func parseExpect(n *yaml.Node, tc *TestCase) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Decode(&tc.Want)
	case yaml.MappingNode:
		var e struct {
			Decision *bool    `yaml:"decision"`
			Reasons  []string `yaml:"reasons"`
		}
		if err := celengine.KnownKeys(n, "expect", "decision", "reasons"); err != nil {
			return err
		}
		if err := n.Decode(&e); err != nil {
			return err
		}
		if e.Decision == nil {
			return errors.New("expect needs a decision")
		}
		tc.Want = *e.Decision
		if e.Reasons != nil {
			tc.WantReasons = e.Reasons
		} else {
			tc.WantReasons = nil
		}
		return nil
	default:
		return errors.New("expect must be true, false or {decision, reasons}")
	}
}

// TestResult is the outcome of one test case.
type TestResult struct {
	Case     TestCase
	Decision engine.Decision
	// Failure says what was wrong, empty when the case passed.
	Failure string
}

// Passed reports whether the case passed.
func (r TestResult) Passed() bool { return r.Failure == "" }

// RunTests evaluates every case against snap. A case fails when the decision
// or (if given) the set of reasons differs, or when evaluation failed (an
// error, a timeout, an undefined Rego result) and the case did not list that
// failure's reason code (such as verdict:error) among its expected reasons:
// a deny that comes from a broken policy is not a passing test.
//
// A case that fails only because it passed the engine's deadline is run
// again, up to timeoutAttempts times in all: on a busy machine a deadline
// can pass once for a fast policy, and a bundle refused for that on one
// replica but not on another would split the replicas. A policy too slow
// for the deadline still fails every attempt.
func RunTests(ctx context.Context, snap *engine.Snapshot, cases []TestCase) []TestResult {
	out := make([]TestResult, 0, len(cases))
	for _, tc := range cases {
		out = append(out, runCase(ctx, tc, func() engine.Decision {
			in := *tc.Input
			return snap.Decide(ctx, &in, false)
		}))
	}
	return out
}

// timeoutAttempts is how many times a test case that times out is run
// before it fails.
const timeoutAttempts = 3

// runCase judges the decision decide makes for tc, deciding again when it
// failed by a timeout (see RunTests) and ctx is not done.
func runCase(ctx context.Context, tc TestCase, decide func() engine.Decision) TestResult {
	var r TestResult
	for range timeoutAttempts {
		r = result(tc, decide())
		timedOut := r.Decision.Err != nil && engine.ClassifyErr(r.Decision.Err) == engine.ReasonTimeout
		if r.Passed() || !timedOut || ctx.Err() != nil {
			break
		}
	}
	return r
}

// result judges decision d against what tc expects.
func result(tc TestCase, d engine.Decision) TestResult {
	r := TestResult{Case: tc, Decision: d}
	switch {
	case d.Allow != tc.Want:
		r.Failure = fmt.Sprintf("decision = %v, want %v (reasons %v)", d.Allow, tc.Want, d.Reasons)
		if d.Err != nil {
			r.Failure += ": " + d.Err.Error()
		}
	case d.Err != nil && !slices.Contains(tc.WantReasons, engine.ClassifyErr(d.Err)):
		r.Failure = fmt.Sprintf("denied because evaluation failed: %v (if that is intended, expect {decision: false, reasons: [%s]})",
			d.Err, engine.ClassifyErr(d.Err))
	case tc.WantReasons != nil && !sameSet(d.Reasons, tc.WantReasons):
		r.Failure = fmt.Sprintf("reasons = %v, want %v", d.Reasons, tc.WantReasons)
	}
	return r
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// TestFailures is returned when a bundle's own tests fail; it lists them.
type TestFailures []TestResult

// Error lists the failing cases, one per line, as file:line: name: failure.
func (f TestFailures) Error() string { return strings.Join(f.Lines(), "\n") }

// Lines returns one line per failing case, as file:line: name: failure.
func (f TestFailures) Lines() []string {
	lines := make([]string, len(f))
	for i, r := range f {
		lines[i] = fmt.Sprintf("%s:%d: test %q failed: %s", r.Case.File, r.Case.Line, r.Case.Name, r.Failure)
	}
	return lines
}
