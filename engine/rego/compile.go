package rego

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/verdictpdp/verdict/engine"
)

// DefaultEntrypoint is the rule whose value is the decision when
// Options.Entrypoint is empty.
const DefaultEntrypoint = "data.verdict.decision"

// removedBuiltins are the built-ins that reach outside the process or reveal
// the host. Policies calling them are rejected at compile time.
var removedBuiltins = []string{
	ast.HTTPSend.Name,
	ast.NetLookupIPAddr.Name,
	ast.OPARuntime.Name,
}

// Module is one .rego source file of a bundle. Path names it in compile
// errors and must be unique within a bundle.
type Module struct {
	Path   string
	Source []byte
}

// Options configures Compile. The zero value evaluates data.verdict.decision
// over an empty data document with no deadline of its own.
type Options struct {
	// Entrypoint is the rule path whose value is the decision, as
	// "verdict/decision" or "data.verdict.decision"; empty means
	// "data.verdict.decision".
	Entrypoint string
	// Data is the bundle's data document (the merged data.json/data.yaml
	// tree), seen by policies under data; nil means empty. Compile copies it,
	// so the caller may reuse the map afterwards.
	Data map[string]any
	// Limits bound evaluation: Limits.Timeout is a per-evaluation deadline
	// applied in addition to the caller's context deadline (zero or negative
	// means none of its own). The CEL-only limits are ignored.
	Limits engine.Limits
	// V0 parses modules as Rego v0 (OPA before 1.0: no required if and
	// contains), as a bundle's .manifest "rego_version": 0 asks. A v0 module
	// may still opt in to v1 with import rego.v1.
	V0 bool
}

func (o Options) regoVersion() ast.RegoVersion {
	if o.V0 {
		return ast.RegoV0
	}
	return ast.RegoV1
}

// Compile parses and compiles modules together with opts.Data and prepares the
// query on the entrypoint. Parse and compile problems (including calls to
// built-ins that are not available, such as http.send) and an entrypoint that
// no rule defines are returned as engine.CompileErrors listing every problem
// found; an invalid data document or a cancelled ctx is returned as a plain
// error. On any error the returned Policy is nil.
func Compile(ctx context.Context, modules []Module, opts Options) (*Policy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entry, err := parseEntrypoint(opts.Entrypoint)
	if err != nil {
		return nil, engine.CompileErrors{{Message: err.Error()}}
	}
	entryName := entry.String()

	caps := capabilities()

	parsed, errs := parseModules(modules, caps, opts.regoVersion())
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}

	store, err := newStore(opts.Data)
	if err != nil {
		return nil, err
	}

	compiler, errs, err := compileModules(ctx, store, parsed, caps, opts.regoVersion())
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	if err := checkEntrypoint(compiler, entry); err != nil {
		return nil, engine.CompileErrors{{Message: err.Error()}}
	}

	pq, err := oparego.New(
		oparego.Compiler(compiler),
		oparego.Store(store),
		oparego.Query(entryName),
		oparego.Capabilities(caps),
		oparego.SetRegoVersion(opts.regoVersion()),
		// A failing built-in must fail the decision: if its error only made
		// the expression undefined, "not f(x)" would succeed and could allow.
		oparego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		if ce := toCompileErrors(err, ""); len(ce) > 0 {
			return nil, sortErrors(ce)
		}
		return nil, fmt.Errorf("rego: prepare %s: %w", entryName, err)
	}

	return &Policy{
		name:          "rego:" + entryName,
		entrypoint:    entryName,
		query:         pq,
		timeout:       opts.Limits.Timeout,
		timeDependent: timeDependent(compiler.Modules, caps),
		rules:         entrypointRules(compiler.Modules, entry),
		plans:         planner{modules: parsed, store: store, caps: caps, version: opts.regoVersion(), entry: entry},
	}, nil
}

// capabilities are those of this OPA version without the built-ins that do
// I/O, and with no host allowed for network access.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	// CapabilitiesForThisVersion hands out a fresh slice of shared *Builtin
	// values: filter the slice, never the values.
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool {
		return slices.Contains(removedBuiltins, b.Name)
	})
	caps.AllowNet = []string{}
	return caps
}

// parseEntrypoint turns "a/b" or "data.a.b" into the ground ref data.a.b.
func parseEntrypoint(s string) (ast.Ref, error) {
	if s == "" {
		s = DefaultEntrypoint
	}
	if s == "data" || strings.HasPrefix(s, "data.") || strings.HasPrefix(s, "data[") {
		ref, err := ast.ParseRef(s)
		if err != nil {
			return nil, fmt.Errorf("invalid entrypoint %q: %v", s, err)
		}
		if len(ref) < 2 || !ref[0].Equal(ast.DefaultRootDocument) || !ref.IsGround() {
			return nil, fmt.Errorf("invalid entrypoint %q: must name a rule under data", s)
		}
		return ref, nil
	}
	segs := strings.Split(strings.Trim(s, "/"), "/")
	ref := ast.Ref{ast.DefaultRootDocument}
	for _, seg := range segs {
		if seg == "" {
			return nil, fmt.Errorf("invalid entrypoint %q: empty path segment", s)
		}
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref, nil
}

// parseModules parses every module as Rego v1 and returns every problem of
// every module.
func parseModules(modules []Module, caps *ast.Capabilities, v ast.RegoVersion) (map[string]*ast.Module, engine.CompileErrors) {
	parsed := make(map[string]*ast.Module, len(modules))
	var errs engine.CompileErrors
	popts := ast.ParserOptions{RegoVersion: v, Capabilities: caps}
	for _, m := range modules {
		if _, dup := parsed[m.Path]; dup {
			errs = append(errs, engine.CompileError{File: m.Path, Message: "duplicate module path"})
			continue
		}
		mod, err := ast.ParseModuleWithOpts(m.Path, string(m.Source), popts)
		if err != nil {
			errs = append(errs, toCompileErrors(err, m.Path)...)
			parsed[m.Path] = nil
			continue
		}
		if mod == nil {
			// ParseModule returns no module and no error for a file holding
			// only comments; OPA requires a package clause.
			errs = append(errs, engine.CompileError{File: m.Path, Message: "module has no package declaration"})
			parsed[m.Path] = nil
			continue
		}
		parsed[m.Path] = mod
	}
	return parsed, errs
}

// newStore copies data into an in-memory store that hands out AST values, so
// evaluation never converts data again. Converting first also turns data that
// is not JSON-shaped into an error where inmem.NewFromObject would panic.
func newStore(data map[string]any) (storage.Store, error) {
	if data == nil {
		data = map[string]any{}
	}
	v, err := ast.InterfaceToValue(data)
	if err != nil {
		return nil, fmt.Errorf("rego: invalid data document: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("rego: invalid data document: got %T, want an object", v)
	}
	return inmem.NewFromASTObject(obj), nil
}

// compileModules compiles the parsed modules together. Problems in the
// policies come back as CompileErrors; the plain error is for the store.
func compileModules(ctx context.Context, store storage.Store, parsed map[string]*ast.Module, caps *ast.Capabilities, v ast.RegoVersion) (*ast.Compiler, engine.CompileErrors, error) {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("rego: open store: %w", err)
	}
	defer store.Abort(ctx, txn)

	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(v).
		WithEnablePrintStatements(false).
		// Reject rules that would shadow or be shadowed by the data document.
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	c.Compile(parsed)
	if c.Failed() {
		return nil, toCompileErrors(c.Errors, ""), nil
	}
	return c, nil, nil
}

// checkEntrypoint makes sure some rule produces the entrypoint's value (or a
// value beneath it, for rules with ref heads), and that it is not a function.
func checkEntrypoint(c *ast.Compiler, entry ast.Ref) error {
	node := c.RuleTree
	for _, t := range entry {
		if node = node.Child(t.Value); node == nil {
			break
		}
	}
	if node == nil || (len(node.Values) == 0 && len(node.Children) == 0) {
		return fmt.Errorf("entrypoint %s is not defined by any module", entry)
	}
	for _, r := range node.Values {
		if len(r.Head.Args) > 0 {
			return fmt.Errorf("entrypoint %s is a function; it must be a rule", entry)
		}
	}
	return nil
}

// toCompileErrors converts OPA's located errors. fallbackFile names the file
// of errors that carry no location of their own. It returns nil when err is
// not an OPA AST error.
func toCompileErrors(err error, fallbackFile string) engine.CompileErrors {
	var list ast.Errors
	if !errors.As(err, &list) {
		var one *ast.Error
		if !errors.As(err, &one) {
			if fallbackFile == "" {
				return nil
			}
			return engine.CompileErrors{{File: fallbackFile, Message: err.Error()}}
		}
		list = ast.Errors{one}
	}
	out := make(engine.CompileErrors, 0, len(list))
	for _, e := range list {
		ce := engine.CompileError{File: fallbackFile, Message: e.Message}
		if e.Code != "" {
			ce.Message = e.Code + ": " + e.Message
		}
		if loc := e.Location; loc != nil {
			if loc.File != "" {
				ce.File = loc.File
			}
			ce.Line, ce.Col = loc.Row, loc.Col
		}
		out = append(out, ce)
	}
	return out
}

// sortErrors orders errors by position, those without a file (such as OPA's
// "too many errors") last, so that reports are stable.
func sortErrors(errs engine.CompileErrors) engine.CompileErrors {
	slices.SortStableFunc(errs, func(a, b engine.CompileError) int {
		switch {
		case a.File == "" && b.File != "":
			return 1
		case a.File != "" && b.File == "":
			return -1
		case a.File != b.File:
			return strings.Compare(a.File, b.File)
		case a.Line != b.Line:
			return a.Line - b.Line
		default:
			return a.Col - b.Col
		}
	})
	return errs
}

// timeDependent reports whether any module may read the evaluation time or
// otherwise answer differently for the same input: it references input.now
// (or the whole input, or input[x] with x unknown, either of which may reach
// now), or calls a built-in OPA marks nondeterministic (time.now_ns,
// io.jwt.decode_verify, which checks exp against the clock, rand.intn, ...).
// It errs on the side of true, which only costs caching.
func timeDependent(modules map[string]*ast.Module, caps *ast.Capabilities) bool {
	nondet := make(map[string]bool)
	for _, b := range caps.Builtins {
		if b.Nondeterministic || b.Name == ast.NowNanos.Name {
			nondet[b.Name] = true
		}
	}
	found := false
	var visit func(t *ast.Term) bool
	visit = func(t *ast.Term) bool {
		if found {
			return true
		}
		switch v := t.Value.(type) {
		case ast.Var:
			if v.Equal(ast.InputRootDocument.Value) {
				found = true // the whole input document, now included
			}
			return true
		case ast.Ref:
			if refReadsNow(v) || (len(v) > 1 && nondet[v.String()]) {
				found = true
				return true
			}
			// Walk the ref's operands (data.x[input.now]) but not its head
			// variable, which would look like a use of the whole input.
			if _, isVar := v[0].Value.(ast.Var); !isVar {
				ast.WalkTerms(v[0], visit)
			}
			for _, op := range v[1:] {
				ast.WalkTerms(op, visit)
			}
			return true
		}
		return false
	}
	for _, m := range modules {
		ast.WalkTerms(m, visit)
		if found {
			return true
		}
	}
	return false
}

// refReadsNow reports whether ref is input.now, beneath it, or input (or
// input[x] with x unknown), which may reach it.
func refReadsNow(ref ast.Ref) bool {
	if !ref[0].Equal(ast.InputRootDocument) {
		return false
	}
	if len(ref) == 1 {
		return true
	}
	switch k := ref[1].Value.(type) {
	case ast.String:
		return k == "now"
	case ast.Var:
		return true
	default:
		return false
	}
}
