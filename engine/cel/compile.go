package cel

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
)

// Names of the variables every expression may use.
const (
	VarSubject   = "subject"
	VarAction    = "action"
	VarResource  = "resource"
	VarContext   = "context"
	VarToken     = "token"
	VarData      = "data"
	VarNow       = "now"
	varNamespace = "variables."
)

// Compiler compiles policy files against one CEL environment. It is safe for
// concurrent use.
type Compiler struct {
	env      *cel.Env
	limits   engine.Limits
	data     map[string]any
	dataSize uint64 // the largest string, list or map in data
}

// NewCompiler builds the CEL environment shared by every policy of one
// bundle: the input variables, the strings, sets, lists and math extensions,
// and the parser limits of l. data is the bundle's data document, seen by
// policies as data (nil means empty); it must not be modified afterwards. It
// fails only if l is invalid.
func NewCompiler(l engine.Limits, data map[string]any) (*Compiler, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	obj := cel.MapType(cel.StringType, cel.DynType)
	env, err := cel.NewEnv(
		cel.Variable(VarSubject, obj),
		cel.Variable(VarAction, obj),
		cel.Variable(VarResource, obj),
		cel.Variable(VarContext, obj),
		cel.Variable(VarToken, cel.DynType),
		cel.Variable(VarData, obj),
		cel.Variable(VarNow, cel.TimestampType),
		ext.Strings(),
		ext.Sets(),
		ext.Lists(),
		ext.Math(),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(l.MaxExpressionSize),
		cel.ParserRecursionLimit(l.MaxRecursionDepth),
	)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return &Compiler{env: env, limits: l, data: orEmpty(data), dataSize: largest(data)}, nil
}

// Policy is one compiled policy file. It is immutable and safe for concurrent
// use.
type Policy struct {
	name          string
	file          string
	combining     string
	variables     []compiledVar
	varIndex      map[string]int // "variables.<name>" -> index in variables
	rules         []compiledRule
	index         ruleIndex
	timeDependent bool
	cacheTD       bool
	data          map[string]any
	// env is the environment without the policy's variables, limits the
	// compiler's limits: a plan compiles the rules with their variables
	// inlined (plan.go), once, when first asked.
	env     *cel.Env
	limits  engine.Limits
	planned planOnce
}

var _ engine.Evaluator = (*Policy)(nil)

type compiledVar struct {
	name string
	prg  program
	// src is the expression's source, inlined into the rules a plan
	// evaluates partially.
	src string
}

// program is a planned expression. Only expressions with comprehensions can
// loop long enough to need the context watched (everything else is bounded
// by its size and the cost limit), so only they pay for ContextEval.
// untracked, when set, is the same plan without cost tracking, for inputs
// of at most untrackedBound (see estimate.go).
type program struct {
	cel.Program
	untracked cel.Program
	loops     bool
}

type compiledRule struct {
	id        string
	deny      bool
	actions   map[string]bool // nil: any action
	resources map[string]bool // nil: any resource type
	prg       *program        // nil: always true
	line, col int             // where the rule starts in its file
	src       string          // the condition's source ("" for none)
}

// Compile parses, type-checks and plans every expression of the policy file at
// path. On any problem it returns engine.CompileErrors listing all of them
// with file:line:col, and no policy.
func (c *Compiler) Compile(path string, src []byte) (*Policy, error) {
	lines := splitLines(src)
	f, errs := parseFile(path, src)
	if f == nil {
		return nil, inFile(lines, errs)
	}
	p := &Policy{name: f.Name, file: path, combining: f.Combining, cacheTD: f.CacheTimeDependent, data: c.data, env: c.env, limits: c.limits}
	env := c.env
	// Variables are declared in order, so each may use only those above it:
	// no cycles, and lazy evaluation always terminates.
	if f.Variables.Kind == yaml.MappingNode {
		cont := f.Variables.Content
		for i := 0; i+1 < len(cont); i += 2 {
			name, node := cont[i].Value, cont[i+1]
			// A variable that failed (or that is no expression, which
			// parseFile reported) is still declared (as dyn), so that the
			// rules using it do not each report it again.
			typ := cel.DynType
			if isExpr(node) {
				ast, prg, ce := c.expr(env, path, lines, node, p)
				if ce != nil {
					for j := i + 2; j+1 < len(cont); j += 2 {
						if later := cont[j].Value; regexp.MustCompile(`\b` + regexp.QuoteMeta(varNamespace+later) + `\b`).MatchString(node.Value) {
							ce[0].Message += fmt.Sprintf(" (variable %s is defined below %s; a variable may use only the variables above it)", later, name)
							break
						}
					}
					errs = append(errs, ce...)
				} else {
					typ = ast.OutputType()
					p.variables = append(p.variables, compiledVar{name: name, prg: *prg, src: node.Value})
				}
			}
			var err error
			if env, err = env.Extend(cel.Variable(varNamespace+name, typ)); err != nil {
				return nil, fmt.Errorf("%s: declaring variable %s: %w", path, name, err)
			}
		}
	}
	for _, r := range f.Rules {
		cr := compiledRule{id: r.ID, deny: r.Effect == "deny", actions: set(r.Actions), resources: set(r.Resources), line: r.line, col: r.col, src: r.Condition.Value}
		if isExpr(&r.Condition) {
			ast, prg, ce := c.expr(env, path, lines, &r.Condition, p)
			if ce == nil {
				if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
					ce = engine.CompileErrors{{File: path, Line: r.Condition.Line, Col: r.Condition.Column,
						Message: fmt.Sprintf("rule %q: condition must be a bool expression, but it is %s", r.ID, t)}}
				}
			}
			if ce != nil {
				errs = append(errs, ce...)
				continue
			}
			cr.prg = prg
		}
		p.rules = append(p.rules, cr)
	}
	if len(errs) > 0 {
		return nil, inFile(lines, errs)
	}
	p.index = newRuleIndex(p.rules)
	p.varIndex = make(map[string]int, len(p.variables))
	for i, v := range p.variables {
		p.varIndex[varNamespace+v.name] = i
	}
	return p, nil
}

// expr type-checks and plans the expression held by node in env, and marks
// p time dependent if it reads now. Problems come back located in the file.
func (c *Compiler) expr(env *cel.Env, path string, lines []string, node *yaml.Node, p *Policy) (*cel.Ast, *program, engine.CompileErrors) {
	ast, iss := env.Compile(node.Value)
	if iss.Err() != nil {
		return nil, nil, celErrors(path, lines, node, iss.Errors())
	}
	prg, err := c.env.Program(ast,
		cel.CostLimit(c.limits.CostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, nil, engine.CompileErrors{{File: path, Line: node.Line, Col: node.Column, Message: err.Error()}}
	}
	if readsNow(ast) {
		p.timeDependent = true
	}
	out := &program{Program: prg, loops: hasLoop(ast)}
	est, err := env.EstimateCost(ast, boundedSizes{input: untrackedBound, data: c.dataSize})
	if err == nil && est.Max <= c.limits.CostLimit {
		if out.untracked, err = c.env.Program(ast, cel.InterruptCheckFrequency(100), cel.EvalOptions(cel.OptOptimize)); err != nil {
			return nil, nil, engine.CompileErrors{{File: path, Line: node.Line, Col: node.Column, Message: err.Error()}}
		}
	}
	return ast, out, nil
}

// isExpr reports whether n can hold an expression: parseFile reports
// every other value, which is not compiled.
func isExpr(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && strings.TrimSpace(n.Value) != ""
}

// set returns nil (match anything) for an absent list or one holding "*".
func set(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "*" {
			return nil
		}
		m[n] = true
	}
	return m
}

func hasLoop(a *cel.Ast) bool {
	found := false
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

func readsNow(ast *cel.Ast) bool {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == VarNow {
			return true
		}
	}
	return false
}

// celErrors locates CEL's issues in the policy file.
func celErrors(path string, lines []string, node *yaml.Node, issues []*common.Error) engine.CompileErrors {
	out := make(engine.CompileErrors, 0, len(issues))
	for _, e := range issues {
		line, col := position(node, lines, e.Location.Line(), e.Location.Column())
		out = append(out, engine.CompileError{File: path, Line: line, Col: col, Message: e.Message})
	}
	return out
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.name }

// File returns the path of the file the policy was compiled from.
func (p *Policy) File() string { return p.file }

// Rules lists the policy's rules in file order with where each starts, for
// test coverage and lint. It never fails.
func (p *Policy) Rules() []engine.RuleInfo {
	out := make([]engine.RuleInfo, len(p.rules))
	for i, r := range p.rules {
		out[i] = engine.RuleInfo{Policy: p.name, Rule: r.id, File: p.file, Line: r.line, Col: r.col}
	}
	return out
}

// Actions returns the action names the policy's rules list, sorted and
// without repeats ("*" and rules that match any action add none). AuthZEN
// action search offers them as candidates. It never fails; a policy whose
// rules list no action returns nil.
func (p *Policy) Actions() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range p.rules {
		for a := range r.actions {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TimeDependent reports whether an expression reads now and the policy did
// not allow caching anyway (cacheTimeDependent: true).
func (p *Policy) TimeDependent() bool { return p.timeDependent && !p.cacheTD }

// Evaluate matches every rule against in and combines the matches with the
// policy's combining algorithm. A condition that reads a key, attribute or
// list index the input does not have is false: the rule does not apply, as a
// Rego rule over an undefined reference does not. Any other failure (a type
// error, the cost limit, the deadline) ends evaluation with Outcome.Err set,
// which the snapshot turns into a deny.
func (p *Policy) Evaluate(ctx context.Context, in *engine.Input, explain bool) engine.Outcome {
	ev := newEvaluation(ctx, p, in, explain)
	out := engine.Outcome{Policy: p.name}
	var allows, denies []string
	for it := p.index.candidates(in); ; {
		i, ok := it.next()
		if !ok {
			break
		}
		r := &p.rules[i]
		if !r.applies(in) {
			continue
		}
		matched, err := ev.match(r)
		var undefined error
		if errors.Is(err, errMissing) {
			undefined, err = err, nil
		}
		if explain {
			t := engine.RuleTrace{Policy: p.name, Rule: r.id, Effect: effectName(r.deny), Matched: matched}
			if err != nil {
				t.Error = err.Error()
			} else if undefined != nil {
				t.Error = undefined.Error() + " (the rule does not apply)"
			}
			out.Trace = append(out.Trace, t)
		}
		if err != nil {
			out.Err = engine.ModuleError(fmt.Sprintf("policy %s rule %s", p.name, r.id), err)
			out.Effect = engine.Deny
			out.Rules = nil
			return out
		}
		if !matched {
			continue
		}
		if p.combining == FirstApplicable {
			out.Effect, out.Rules = effectOf(r.deny), []string{r.id}
			if !explain {
				return out
			}
			break
		}
		if r.deny {
			denies = append(denies, r.id)
		} else {
			allows = append(allows, r.id)
		}
	}
	if p.combining == FirstApplicable {
		return out
	}
	denyWins := p.combining == DenyOverrides
	switch {
	case len(denies) > 0 && (denyWins || len(allows) == 0):
		out.Effect, out.Rules = engine.Deny, denies
	case len(allows) > 0:
		out.Effect, out.Rules = engine.Allow, allows
	}
	return out
}

func (r *compiledRule) applies(in *engine.Input) bool {
	if r.actions != nil && !r.actions[in.Action.Name] {
		return false
	}
	if r.resources != nil && !r.resources[in.Resource.Type] {
		return false
	}
	return true
}

func (ev *evaluation) match(r *compiledRule) (bool, error) {
	if r.prg == nil {
		return true, nil
	}
	out, err := ev.run(*r.prg)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not a bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// run evaluates prg and maps CEL's cancellation errors to engine sentinels.
func (ev *evaluation) run(prg program) (ref.Val, error) {
	if err := ev.ctx.Err(); err != nil {
		return nil, engine.ErrTimeout
	}
	var (
		out ref.Val
		err error
	)
	run := prg.Program
	if ev.untracked && prg.untracked != nil {
		run = prg.untracked
	}
	if prg.loops {
		out, _, err = run.ContextEval(ev.ctx, ev)
	} else {
		out, _, err = run.Eval(ev)
	}
	if err == nil {
		return out, nil
	}
	var cancelled interpreter.EvalCancelledError
	switch {
	case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
		return nil, fmt.Errorf("%w: %s", engine.ErrCostLimit, cancelled.Message)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &cancelled), ev.ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %v", engine.ErrTimeout, err)
	case errors.Is(err, errMissing):
		return nil, err
	case isMissing(err):
		return nil, fmt.Errorf("%w: %v", errMissing, err)
	}
	return nil, err
}

// errMissing marks an expression that read a key, attribute or index the
// input does not have. Like a Rego reference to an undefined document, it
// makes the condition false (the rule does not apply) rather than failing
// the decision.
var errMissing = errors.New("undefined")

// isMissing recognises cel-go's errors for absent map keys, attributes and
// list indexes; cel-go does not export their type, only their messages.
func isMissing(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "no such key:") || strings.HasPrefix(msg, "no such attribute") ||
		strings.HasPrefix(msg, "index out of bounds:")
}

func effectName(deny bool) string {
	return effectOf(deny).String()
}

func effectOf(deny bool) engine.Effect {
	if deny {
		return engine.Deny
	}
	return engine.Allow
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func tokenValue(t map[string]any) any {
	if t == nil {
		return types.NullValue
	}
	return t
}
