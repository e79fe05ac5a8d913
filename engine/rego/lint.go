package rego

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/engine"
)

// Check ids of the Rego lint checks.
const (
	CheckUnusedVar         = "rego-unused-var"
	CheckUnusedArg         = "rego-unused-arg"
	CheckUnusedImport      = "rego-unused-import"
	CheckDuplicateImport   = "rego-duplicate-import"
	CheckShadowed          = "rego-shadowed"
	CheckDeprecatedBuiltin = "rego-deprecated-builtin"
	CheckStrict            = "rego-strict"
	CheckRegoV1            = "rego-v1"
)

// Lint reports what opa check --strict reports beyond a plain compile:
// unused local variables and function arguments, unused and duplicate
// imports, shadowed or redeclared names and calls of deprecated built-ins;
// and Rego v1 issues: in a v0 bundle (opts.V0) whatever would not compile as
// v1, in a v1 bundle an import of rego.v1 or future.keywords, which do
// nothing there. Every finding is a warning. Modules that do not parse give
// no findings: Compile reports them. Lint never fails otherwise.
func Lint(modules []Module, opts Options) []engine.Finding {
	caps := capabilities()
	parsed, errs := parseModules(modules, caps, opts.regoVersion())
	if len(errs) > 0 {
		return nil
	}
	var out []engine.Finding
	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(opts.regoVersion()).
		WithEnablePrintStatements(false).
		WithStrict(true)
	c.Compile(parsed)
	strictSeen := map[engine.Finding]bool{}
	for _, e := range c.Errors {
		f := finding(e.Location, "", strictCheck(e.Message), e.Message)
		out = append(out, f)
		f.Check = ""
		strictSeen[f] = true
	}
	for _, m := range modules {
		if !opts.V0 {
			for _, imp := range parsed[m.Path].Imports {
				if p := imp.Path.String(); p == "rego.v1" || strings.HasPrefix(p, "future.keywords") {
					out = append(out, finding(imp.Location, m.Path, CheckRegoV1, "import "+p+" is redundant: the bundle is Rego v1 (remove it)"))
				}
			}
			continue
		}
		// A v0 module that does not parse as v1 needs work before the
		// bundle can drop "rego_version": 0.
		_, err := ast.ParseModuleWithOpts(m.Path, string(m.Source), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: caps})
		var list ast.Errors
		if e, ok := err.(ast.Errors); ok {
			list = e
		}
		for _, e := range append(list, ast.CheckRegoV1(parsed[m.Path])...) {
			f := finding(e.Location, m.Path, "", e.Message)
			if strictSeen[f] {
				continue // reported above under its own check
			}
			f.Check, f.Message = CheckRegoV1, "not Rego v1 compatible: "+e.Message
			out = append(out, f)
		}
	}
	return dedupe(out)
}

// strictCheck names the check of a strict-mode compile error from its
// message: OPA gives them all the same code.
func strictCheck(msg string) string {
	switch {
	case strings.Contains(msg, "var ") && strings.HasSuffix(msg, " unused"):
		return CheckUnusedVar
	case strings.HasPrefix(msg, "unused argument"):
		return CheckUnusedArg
	case strings.HasPrefix(msg, "import ") && strings.HasSuffix(msg, " unused"):
		return CheckUnusedImport
	case strings.HasPrefix(msg, "import must not shadow"):
		return CheckDuplicateImport
	case strings.Contains(msg, "shadow") || strings.Contains(msg, "redeclared"):
		return CheckShadowed
	case strings.Contains(msg, "deprecated built-in"):
		return CheckDeprecatedBuiltin
	default:
		return CheckStrict
	}
}

func finding(loc *ast.Location, file, check, msg string) engine.Finding {
	f := engine.Finding{File: file, Severity: engine.Warning, Check: check, Message: msg}
	if loc != nil {
		if loc.File != "" {
			f.File = loc.File
		}
		f.Line, f.Col = loc.Row, loc.Col
	}
	return f
}

// dedupe drops findings repeated at the same place with the same message
// (a v1 parse error and the v1 check can say the same thing).
func dedupe(fs []engine.Finding) []engine.Finding {
	seen := map[engine.Finding]bool{}
	out := fs[:0]
	for _, f := range fs {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
