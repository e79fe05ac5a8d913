package bundles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	var tf testFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, engine.CompileErrors{{File: name, Message: "invalid test file: " + err.Error()}}
	}
	var out []TestCase
	var errs engine.CompileErrors
	bad := func(line int, format string, args ...any) {
		errs = append(errs, engine.CompileError{File: name, Line: line, Message: fmt.Sprintf(format, args...)})
	}
	for i := range tf.Tests {
		n := &tf.Tests[i]
		var doc testCaseDoc
		if err := celengine.KnownKeys(n, "test case", "name", "input", "expect", "now"); err != nil {
			bad(n.Line, "test %d: %v", i+1, err)
			continue
		}
		if err := n.Decode(&doc); err != nil {
			bad(n.Line, "test %d: %v", i+1, err)
			continue
		}
		tc := TestCase{File: name, Line: n.Line, Name: doc.Name}
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("%s#%d", name, i+1)
		}
		shaped, err := jsonShape(name, doc.Input)
		if err != nil {
			bad(n.Line, "test %q: %v", tc.Name, err)
			continue
		}
		m, _ := shaped.(map[string]any)
		if m == nil {
			bad(n.Line, "test %q: input is required", tc.Name)
			continue
		}
		in, err := engine.ParseInput(m, "input.")
		if err != nil {
			bad(n.Line, "test %q: %v", tc.Name, err)
			continue
		}
		if doc.Now != "" {
			t, err := time.Parse(time.RFC3339, doc.Now)
			if err != nil {
				bad(n.Line, "test %q: now must be an RFC 3339 time: %v", tc.Name, err)
				continue
			}
			in.Now = t
		}
		tc.Input = in
		if err := parseExpect(&doc.Expect, &tc); err != nil {
			bad(doc.Expect.Line, "test %q: %v", tc.Name, err)
			continue
		}
		out = append(out, tc)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
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
func RunTests(ctx context.Context, snap *engine.Snapshot, cases []TestCase) []TestResult {
	out := make([]TestResult, 0, len(cases))
	for _, tc := range cases {
		in := *tc.Input
		out = append(out, result(tc, snap.Decide(ctx, &in, false)))
	}
	return out
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
