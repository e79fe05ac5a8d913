package bundles

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/engine"
	celengine "github.com/verdictpdp/verdict/engine/cel"
	regoengine "github.com/verdictpdp/verdict/engine/rego"
)

// Check ids of the bundle-level lint checks; the engine checks have their
// own (celengine.Check*, regoengine.Check*).
const (
	// CheckRead is a bundle that cannot be read (missing, over a limit,
	// unsafe).
	CheckRead = "read"
	// CheckCompile is a problem that rejects the bundle when it is loaded.
	CheckCompile = "compile"
	// CheckTests is a test file that does not parse.
	CheckTests = "tests"
	// CheckUntestedRule is a rule no test case exercises.
	CheckUntestedRule = "untested-rule"
)

// Lint checks bundle b as it would be served with limits: every compile
// problem is an error finding, then come the CEL checks of each policy file
// (celengine.Compiler.Lint), the Rego checks of opa check --strict
// (regoengine.Lint), and, when the bundle compiles and its tests parse, a
// warning for every rule no test case exercises (the coverage of
// RunTestsCovered; failing cases still count, bundle test reports them),
// unless a finding already says the rule can never match (unreachable-rule,
// constant-false).
// A compile problem at the place of a more specific finding (a duplicate
// rule id, say) is reported once, under the specific check, as an error.
// Findings come back sorted by file, line and column. The error is for what
// is not a problem of the policies (a cancelled ctx, invalid limits).
func Lint(ctx context.Context, b *Bundle, limits engine.Limits) ([]engine.Finding, error) {
	var found []engine.Finding
	data, err := b.Data()
	if err != nil {
		if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
			return sortFindings(compileFindings(ce)), nil
		}
		return nil, err
	}
	comp, err := celengine.NewCompiler(limits, data)
	if err != nil {
		return nil, err
	}
	for _, name := range sortedNames(b.Files, IsPolicyFile) {
		found = append(found, comp.Lint(name, b.Files[name])...)
	}
	var mods []regoengine.Module
	for _, name := range sortedNames(b.Files, func(n string) bool { return strings.HasSuffix(n, ".rego") }) {
		mods = append(mods, regoengine.Module{Path: name, Source: b.Files[name]})
	}
	if len(mods) > 0 {
		v0 := b.Manifest.RegoVersion != nil && *b.Manifest.RegoVersion == 0
		found = append(found, regoengine.Lint(mods, regoengine.Options{V0: v0})...)
	}

	snap, err := Compile(ctx, []*Bundle{b}, limits)
	if err != nil {
		ce, ok := errors.AsType[engine.CompileErrors](err)
		if !ok {
			return nil, err
		}
		return sortFindings(mergeCompile(found, compileFindings(ce))), nil
	}
	cases, err := b.Tests()
	if err != nil {
		ce, ok := errors.AsType[engine.CompileErrors](err)
		if !ok {
			return nil, err
		}
		for _, f := range compileFindings(ce) {
			f.Check = CheckTests
			found = append(found, f)
		}
		return sortFindings(found), nil
	}
	_, cov := RunTestsCovered(ctx, snap, cases)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A rule already reported as dead (unreachable, never true) needs no
	// test but a fix.
	dead := map[[2]string]bool{}
	for _, f := range found {
		if f.Rule != "" && (f.Check == celengine.CheckUnreachableRule || f.Check == celengine.CheckConstantFalse) {
			dead[[2]string{f.File, f.Rule}] = true
		}
	}
	for _, r := range cov.NotExercised() {
		if dead[[2]string{r.File, r.Rule}] {
			continue
		}
		msg := fmt.Sprintf("rule %q is not exercised by any test case: add a case to a *_test.yaml file that makes it match", r.Rule)
		if len(cases) == 0 {
			msg = fmt.Sprintf("rule %q has no test: the bundle has no *_test.yaml cases", r.Rule)
		}
		found = append(found, engine.Finding{File: r.File, Line: r.Line, Col: r.Col, Severity: engine.Warning, Check: CheckUntestedRule, Message: msg})
	}
	return sortFindings(found), nil
}

// compileFindings turns compile problems into error findings. A failed
// comparison of incompatible types gets the check of its own.
func compileFindings(ce engine.CompileErrors) []engine.Finding {
	out := make([]engine.Finding, len(ce))
	for i, e := range ce {
		check := CheckCompile
		if strings.Contains(e.Message, "found no matching overload for '_==_'") ||
			strings.Contains(e.Message, "found no matching overload for '_!=_'") ||
			strings.Contains(e.Message, "found no matching overload for '@in'") {
			check = celengine.CheckIncompatibleTypes
		}
		out[i] = engine.Finding{File: e.File, Line: e.Line, Col: e.Col, Severity: engine.Error, Check: check, Message: e.Message}
	}
	return out
}

// mergeCompile adds the compile findings to the lint findings, reporting
// each problem once. A CEL finding at the line of a compile error (a
// duplicate rule id) explains it better: it stays, as an error since the
// bundle does not load, and the compile error goes. A Rego finding with the
// compile error's message stays under its specific check (rego-shadowed),
// as an error; a generic rego-strict one gives way to the compile error.
func mergeCompile(lint, compile []engine.Finding) []engine.Finding {
	drop := make([]bool, len(lint))
	var out []engine.Finding
	for _, c := range compile {
		kept := false
		for i, l := range lint {
			if c.Line == 0 || l.File != c.File || l.Line != c.Line || !sameProblem(l, c) {
				continue
			}
			if l.Check == regoengine.CheckStrict {
				drop[i] = true
				continue
			}
			lint[i].Severity = engine.Error
			kept = true
		}
		if !kept {
			out = append(out, c)
		}
	}
	for i, l := range lint {
		if !drop[i] {
			out = append(out, l)
		}
	}
	return out
}

func sameProblem(l, c engine.Finding) bool {
	if IsPolicyFile(c.File) {
		return true
	}
	_, msg, _ := strings.Cut(c.Message, ": ") // Rego messages start with OPA's error code
	return l.Message == c.Message || l.Message == msg
}

func sortFindings(fs []engine.Finding) []engine.Finding {
	slices.SortStableFunc(fs, func(a, b engine.Finding) int {
		switch {
		case a.File != b.File:
			return strings.Compare(a.File, b.File)
		case a.Line != b.Line:
			return a.Line - b.Line
		case a.Col != b.Col:
			return a.Col - b.Col
		default:
			return strings.Compare(a.Check, b.Check)
		}
	})
	return fs
}
