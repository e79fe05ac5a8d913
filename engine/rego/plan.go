package rego

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
)

// Query plans (engine.Planner), from OPA's partial evaluation.
//
// The query x = <entrypoint> is partially evaluated with input.resource.id
// and input.resource.properties unknown, over a copy of the modules whose
// else chains are written as exclusive rules (plan_else.go), with shallow
// inlining: every rule that depends on the resource stays a rule (a support
// rule) and every expression that does is kept as written. Shallow inlining
// matters for exactness: the copy propagation of full inlining drops
// "s := input.resource.properties.s" in front of "not f(s)", which turns an
// absent attribute (the rule does not apply) into one for which it does.
//
// The residual (queries and support rules) is then translated to a
// plan.Node by a small symbolic evaluator (plan_eval.go): variables are
// bound to constants, to resource attributes or to the values of support
// rules, and each expression becomes a condition over the attributes. What
// it cannot express exactly, including anything that could fail with an
// error (an error fails the decision, which denies) unless it is shown
// impossible, is an *engine.UnplannableError naming the rule and the
// expression.
//
// Plan conditions read a null attribute as an absent one (package plan), and
// so do these plans; Rego does not (null != "x" holds, and a null attribute
// is defined), so a plan is exact for resources whose attributes are not
// null.

var _ engine.Planner = (*Policy)(nil)

// planner is what Compile keeps for plans and, from the first plan on, the
// prepared partial query.
type planner struct {
	modules map[string]*ast.Module // as parsed; never modified
	store   storage.Store
	caps    *ast.Capabilities
	version ast.RegoVersion
	entry   ast.Ref

	once  sync.Once
	query oparego.PreparedPartialQuery
	rules []ruleSpan // the rules of the modules by position, for messages
	err   error
}

// ruleSpan is where a rule (with its else branches) is written.
type ruleSpan struct {
	file       string
	start, end int // rows
	name       string
}

// planVar is the query variable that receives the entrypoint's value.
const planVar = ast.Var("verdict_plan_value")

// planNamespace is where partial evaluation puts support rules (under
// data); a policy with a package of that name cannot be planned.
const planNamespace = "verdict__plan"

// unknowns are the parts of the input a plan leaves open.
var unknowns = []*ast.Term{
	ast.MustParseTerm("input.resource.id"),
	ast.MustParseTerm("input.resource.properties"),
}

// prepare compiles the modules without else chains and prepares the
// partial query.
func (p *Policy) prepare() {
	pl := &p.plans
	pl.rules = ruleSpans(pl.modules)
	for _, m := range pl.modules {
		if len(m.Package.Path) > 1 && m.Package.Path[1].Equal(ast.InternedTerm(planNamespace)) {
			pl.err = &engine.UnplannableError{Policy: p.name, Reason: "package " + m.Package.Path.String() + " uses a name that plans reserve"}
			return
		}
	}
	modules, err := withoutElse(pl.modules)
	if err != nil {
		pl.err = &engine.UnplannableError{Policy: p.name, Reason: err.Error()}
		return
	}
	ctx := context.Background()
	compiler, errs, err := compileModules(ctx, pl.store, modules, pl.caps, pl.version)
	if err == nil && len(errs) > 0 {
		err = errs
	}
	if err != nil {
		pl.err = fmt.Errorf("rego plan: compile without else: %w", err)
		return
	}
	query := ast.Body{ast.Equality.Expr(ast.NewTerm(planVar), ast.NewTerm(pl.entry))}
	pl.query, err = oparego.New(
		oparego.Compiler(compiler),
		oparego.Store(pl.store),
		oparego.ParsedQuery(query),
		oparego.Capabilities(pl.caps),
		oparego.SetRegoVersion(pl.version),
		oparego.StrictBuiltinErrors(true),
		oparego.ShallowInlining(true),
		// Support rules go to a namespace no policy uses.
		oparego.PartialNamespace(planNamespace),
		oparego.ParsedUnknowns(unknowns),
	).PrepareForPartial(ctx)
	if err != nil {
		pl.err = fmt.Errorf("rego plan: prepare %s: %w", p.entrypoint, err)
	}
}

// Plan implements engine.Planner: the conditions over the resource's id and
// properties under which Evaluate's effect is Allow (the entrypoint's
// decision is true) and Deny (any other outcome: false, undefined or an
// error). What cannot be planned exactly is an *engine.UnplannableError; a
// passed deadline is engine.ErrTimeout.
func (p *Policy) Plan(ctx context.Context, in *engine.Input) (engine.ModulePlan, error) {
	if in == nil {
		return engine.ModulePlan{}, errors.New("rego plan: nil input")
	}
	p.plans.once.Do(p.prepare)
	if p.plans.err != nil {
		return engine.ModulePlan{}, p.plans.err
	}
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return engine.ModulePlan{}, timeoutErr(err)
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	known := *in
	known.Resource = engine.Entity{Type: in.Resource.Type}
	input, err := inputValue(&known, now)
	if err != nil {
		return engine.ModulePlan{}, fmt.Errorf("rego plan: input: %w", err)
	}
	// The resource holds its type only: id and properties are unknown.
	input.(ast.Object).Insert(ast.InternedTerm("resource"), ast.ObjectTerm(
		ast.Item(ast.InternedTerm("type"), ast.StringTerm(in.Resource.Type))))

	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()
	pq, err := p.plans.query.Partial(ctx,
		oparego.EvalParsedInput(input),
		oparego.EvalTime(now),
		oparego.EvalExternalCancel(c))
	if err != nil {
		if isCancel(err) || ctx.Err() != nil {
			return engine.ModulePlan{}, timeoutErr(firstErr(ctx.Err(), err))
		}
		return engine.ModulePlan{}, p.evalFailure(err)
	}
	tr := newTranslator(ctx, p, pq, in.Resource.Type, now)
	allow, err := tr.decision(pq.Queries)
	if err != nil {
		if ctx.Err() != nil {
			return engine.ModulePlan{}, timeoutErr(ctx.Err())
		}
		return engine.ModulePlan{}, err
	}
	allow = simplify(allow)
	return engine.ModulePlan{Allow: allow, Deny: plan.Not(allow)}, nil
}

// firstErr is a if it is not nil, else b.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// evalFailure reports an error of the partial evaluation itself: a built-in
// or conflict error over known values. Whether it happens for every
// resource cannot be told, so the plan is refused rather than guessed.
func (p *Policy) evalFailure(err error) error {
	ue := &engine.UnplannableError{Policy: p.name, Reason: "evaluation fails (" + err.Error() + ")"}
	var te *topdown.Error
	if errors.As(err, &te) && te.Location != nil {
		ue.Rule = p.plans.ruleAt(te.Location)
		ue.Expression = string(te.Location.Text)
		ue.Reason = "evaluation fails (" + te.Message + ")"
	}
	return ue
}

// ruleSpans lists the rules of modules by position.
func ruleSpans(modules map[string]*ast.Module) []ruleSpan {
	var out []ruleSpan
	for file, m := range modules {
		for _, r := range m.Rules {
			if r.Location == nil {
				continue
			}
			end := r.Location.Row + strings.Count(string(r.Location.Text), "\n")
			for e := r.Else; e != nil; e = e.Else {
				if e.Location != nil {
					end = max(end, e.Location.Row+strings.Count(string(e.Location.Text), "\n"))
				}
			}
			name := m.Package.Path.Extend(r.Head.Ref().GroundPrefix()).String()
			out = append(out, ruleSpan{file: file, start: r.Location.Row, end: end, name: name})
		}
	}
	slices.SortFunc(out, func(a, b ruleSpan) int {
		if a.file != b.file {
			return strings.Compare(a.file, b.file)
		}
		return a.start - b.start
	})
	return out
}

// ruleAt names the rule written at loc ("" when none is).
func (pl *planner) ruleAt(loc *ast.Location) string {
	if loc == nil {
		return ""
	}
	for _, r := range pl.rules {
		if r.file == loc.File && r.start <= loc.Row && loc.Row <= r.end {
			return r.name
		}
	}
	return ""
}

// simplify tidies a condition: in a conjunction, has(p) goes when another
// test of p implies it, a negated conjunct that the others imply makes it
// false, and duplicates go.
func simplify(n *plan.Node) *plan.Node {
	switch n.Op {
	case plan.OpNot:
		return plan.Not(simplify(n.Args[0]))
	case plan.OpOr:
		var args []*plan.Node
		seen := map[string]bool{}
		for _, a := range n.Args {
			a = simplify(a)
			if k := a.String(); !seen[k] {
				seen[k] = true
				args = append(args, a)
			}
		}
		return plan.Or(args...)
	case plan.OpAnd:
		var args []*plan.Node
		for _, a := range n.Args {
			args = append(args, simplify(a))
		}
		and := plan.And(args...)
		if and.Op != plan.OpAnd {
			return and
		}
		if contradictory(and.Args) {
			return plan.False()
		}
		var out []*plan.Node
		seen := map[string]bool{}
		for _, a := range and.Args {
			if a.Op == plan.OpHas && slices.ContainsFunc(and.Args, func(b *plan.Node) bool { return b.Op != plan.OpHas && impliesHas(b, a.Path) }) {
				continue
			}
			if k := a.String(); !seen[k] {
				seen[k] = true
				out = append(out, a)
			}
		}
		return plan.And(out...)
	}
	return n
}

// impliesHas reports whether n holds only where the attribute at path is
// present: every test of an attribute is false where it is absent.
func impliesHas(n *plan.Node, path []string) bool {
	switch n.Op {
	case plan.OpAnd:
		return slices.ContainsFunc(n.Args, func(a *plan.Node) bool { return impliesHas(a, path) })
	case plan.OpOr:
		return len(n.Args) > 0 && !slices.ContainsFunc(n.Args, func(a *plan.Node) bool { return !impliesHas(a, path) })
	case plan.OpNot, plan.OpTrue, plan.OpFalse:
		return false
	}
	return slices.Equal(n.Path, path)
}

// contradictory reports whether the conjunction of args is false because a
// negated conjunct is entailed by the others (a sufficient test only).
func contradictory(args []*plan.Node) bool {
	for i, a := range args {
		if a.Op != plan.OpNot {
			continue
		}
		others := slices.Delete(slices.Clone(args), i, i+1)
		if entails(others, a.Args[0], 2) {
			return true
		}
	}
	return false
}

// entails reports whether goal holds wherever all of prem hold, by
// syntax: a premise is the goal, or the goal is a conjunction or
// disjunction of entailed nodes, or it follows in every case of a
// disjunctive premise (splitting up to depth times).
func entails(prem []*plan.Node, goal *plan.Node, depth int) bool {
	var flat []*plan.Node
	var add func(*plan.Node)
	add = func(n *plan.Node) {
		if n.Op == plan.OpAnd {
			for _, a := range n.Args {
				add(a)
			}
			return
		}
		flat = append(flat, n)
	}
	for _, p := range prem {
		add(p)
	}
	return entailsFlat(flat, goal, depth)
}

func entailsFlat(prem []*plan.Node, goal *plan.Node, depth int) bool {
	g := goal.String()
	for _, p := range prem {
		if p.Op == plan.OpFalse || p.String() == g {
			return true
		}
	}
	switch goal.Op {
	case plan.OpTrue:
		return true
	case plan.OpAnd:
		if !slices.ContainsFunc(goal.Args, func(a *plan.Node) bool { return !entailsFlat(prem, a, depth) }) {
			return true
		}
	case plan.OpOr:
		if slices.ContainsFunc(goal.Args, func(a *plan.Node) bool { return entailsFlat(prem, a, depth) }) {
			return true
		}
	}
	if depth == 0 {
		return false
	}
	for i, p := range prem {
		if p.Op != plan.OpOr {
			continue
		}
		rest := slices.Delete(slices.Clone(prem), i, i+1)
		if !slices.ContainsFunc(p.Args, func(d *plan.Node) bool { return !entails(append(slices.Clone(rest), d), goal, depth-1) }) {
			return true
		}
	}
	return false
}

// exclusive reports whether a and b provably never hold together.
func exclusive(a, b *plan.Node) bool {
	and := plan.And(a, b)
	switch and.Op {
	case plan.OpFalse:
		return true
	case plan.OpAnd:
		if contradictory(and.Args) || conflictingEqs(and.Args) {
			return true
		}
	}
	sat, decided := satisfiable(and)
	return decided && !sat
}

// conflictingEqs reports whether args test one attribute for equality with
// two different values.
func conflictingEqs(args []*plan.Node) bool {
	eq := map[string]any{}
	for _, a := range args {
		if a.Op != plan.OpEq {
			continue
		}
		k := strings.Join(a.Path, "\x00")
		if v, ok := eq[k]; ok && !plan.Equal(v, a.Value) {
			return true
		}
		eq[k] = a.Value
	}
	return false
}
