package cel

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
)

// Query plans (engine.Planner). Each rule's condition, with the policy's
// variables inlined, is evaluated partially by cel-go with resource.id and
// resource.properties unknown (OptPartialEval, OptTrackState); the plan is
// then read off the checked AST and the value the evaluation recorded for
// each node: a node with a known value is a constant, one whose value is
// unknown is translated by its form (comparisons of a resource attribute
// with a constant, has, in, startsWith, type, !, &&, ||, ?:). Anything else
// that depends on the resource is an *engine.UnplannableError naming the
// rule and the expression.
//
// A condition matches when it evaluates to true; false, and the error of a
// missing attribute, do not match (a rule over an absent attribute does not
// apply). So each expression is translated twice: to the condition under
// which it is true (T) and the one under which it is false (F); neither
// holds where it is an error. !e is true where e is false, and a && b is
// false where either is, as CEL's commutative logic has it.

var _ engine.Planner = (*Policy)(nil)

// planOnce holds the rules' partial-evaluation programs, made at the first
// plan.
type planOnce struct {
	once  sync.Once
	rules []planRule
	err   error
}

type planRule struct {
	ast *cel.Ast
	prg cel.Program // nil: the rule has no condition
	src string      // the condition with its variables inlined
}

// Plan implements engine.Planner.
func (p *Policy) Plan(ctx context.Context, in *engine.Input) (engine.ModulePlan, error) {
	p.planned.once.Do(func() { p.planned.rules, p.planned.err = p.planPrograms() })
	if p.planned.err != nil {
		return engine.ModulePlan{}, p.planned.err
	}
	act, err := cel.PartialVars(map[string]any{
		VarSubject:  engine.EntityDoc(in.Subject),
		VarAction:   engine.ActionDoc(in.Action),
		VarResource: map[string]any{"type": in.Resource.Type},
		VarContext:  orEmpty(in.Context),
		VarToken:    tokenValue(in.Token),
		VarData:     p.data,
		VarNow:      types.Timestamp{Time: in.Now},
	}, cel.AttributePattern(VarResource).QualString("id"), cel.AttributePattern(VarResource).QualString("properties"))
	if err != nil {
		return engine.ModulePlan{}, fmt.Errorf("cel plan: %w", err)
	}
	// What the rules conclude, combined as Evaluate combines them: a rule
	// whose condition fails (other than over a missing attribute) fails the
	// module, which denies.
	allow, deny, fails := plan.False(), plan.False(), plan.False()
	prefix := plan.True() // first-applicable: no earlier rule matched or failed
	for i := range p.rules {
		r := &p.rules[i]
		if !r.applies(in) {
			continue
		}
		v, err := p.planRule(ctx, r, &p.planned.rules[i], act)
		if err != nil {
			return engine.ModulePlan{}, err
		}
		switch {
		case p.combining == FirstApplicable:
			hit := plan.And(prefix, v.t)
			if r.deny {
				deny = plan.Or(deny, hit)
			} else {
				allow = plan.Or(allow, hit)
			}
			fails = plan.Or(fails, plan.And(prefix, v.e))
			prefix = plan.And(prefix, plan.Not(v.t), plan.Not(v.e))
		case r.deny:
			deny = plan.Or(deny, v.t)
			fails = plan.Or(fails, v.e)
		default:
			allow = plan.Or(allow, v.t)
			fails = plan.Or(fails, v.e)
		}
	}
	switch p.combining {
	case DenyOverrides:
		allow = plan.And(allow, plan.Not(deny))
	case PermitOverrides:
		deny = plan.And(deny, plan.Not(allow))
	}
	return engine.ModulePlan{Allow: plan.And(allow, plan.Not(fails)), Deny: plan.Or(deny, fails)}, nil
}

// planRule is where rule r's condition is true, false and an error other
// than a missing attribute.
func (p *Policy) planRule(ctx context.Context, r *compiledRule, pr *planRule, act cel.PartialActivation) (outcome, error) {
	if pr.prg == nil {
		return outcome{t: plan.True(), f: plan.False(), e: plan.False()}, nil
	}
	if err := ctx.Err(); err != nil {
		return outcome{}, engine.ErrTimeout
	}
	_, det, err := pr.prg.ContextEval(ctx, act)
	if det == nil {
		return outcome{}, fmt.Errorf("cel plan: rule %s: %v", r.id, err)
	}
	if ctx.Err() != nil {
		return outcome{}, engine.ErrTimeout
	}
	pl := &planner{policy: p.name, rule: r.id, src: pr.src, info: pr.ast.NativeRep().SourceInfo(), state: det.State()}
	v, err := pl.truth(pr.ast.NativeRep().Expr())
	if err != nil {
		return outcome{}, err
	}
	return v, nil
}

// planPrograms compiles every rule's condition with the policy's variables
// inlined (each variable may use only those above it, so inlining ends),
// for partial evaluation.
func (p *Policy) planPrograms() ([]planRule, error) {
	out := make([]planRule, len(p.rules))
	for i, r := range p.rules {
		if r.src == "" || r.prg == nil {
			continue
		}
		src := p.inline(r.src)
		ast, iss := p.env.Compile(src)
		if iss.Err() != nil {
			return nil, &engine.UnplannableError{Policy: p.name, Rule: r.id, Expression: r.src,
				Reason: "its condition does not compile with its variables inlined (" + iss.Err().Error() + ")"}
		}
		prg, err := p.env.Program(ast, cel.EvalOptions(cel.OptPartialEval, cel.OptTrackState, cel.OptExhaustiveEval),
			cel.CostLimit(p.limits.CostLimit), cel.InterruptCheckFrequency(100))
		if err != nil {
			return nil, fmt.Errorf("cel plan: rule %s: %w", r.id, err)
		}
		out[i] = planRule{ast: ast, prg: prg, src: src}
	}
	return out, nil
}

// inline replaces every variables.<name> in src by the variable's source,
// innermost last.
func (p *Policy) inline(src string) string {
	for i := len(p.variables) - 1; i >= 0; i-- {
		v := p.variables[i]
		re := regexp.MustCompile(`\b` + regexp.QuoteMeta(varNamespace+v.name) + `\b`)
		src = re.ReplaceAllLiteralString(src, "("+strings.TrimSpace(v.src)+")")
	}
	return src
}
