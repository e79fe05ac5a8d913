package rego

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Support rules, evaluated where they are referenced: a complete rule to
// the alternatives of its value, each under the condition of the body that
// gives it (checked for conflicts), a partial set to the alternatives of
// its elements, a function to those of its value for the arguments of a
// call.

// ruleSet is the support rules of one path.
type ruleSet struct {
	path  string
	rules []*ast.Rule
	def   *ast.Rule
	kind  ruleKind
}

type ruleKind int

const (
	kComplete ruleKind = iota
	kSet
	kFunction
	kOther
)

// ruleValue is the alternatives of the support rule rs referenced in s.
func (t *translator) ruleValue(rs *ruleSet, s solution) ([]alt, error) {
	switch rs.kind {
	case kSet:
		return []alt{{plan.True(), &value{kind: vSet, rule: rs.path}}}, nil
	case kComplete:
		return t.complete(rs, s.facts)
	}
	return nil, t.fail("it uses a rule (%s) whose kind a plan cannot express", rs.path)
}

// enter and leave bound the nesting of rule references.
func (t *translator) enter() error {
	t.depth++
	if t.depth > maxDepth {
		return t.fail("rules nest too deeply to plan")
	}
	return nil
}

func (t *translator) leave() { t.depth-- }

// complete is the alternatives of complete rule rs, whose bodies are
// evaluated where the reference stands (facts).
func (t *translator) complete(rs *ruleSet, facts map[string]string) ([]alt, error) {
	key := "c\x00" + rs.path + "\x00" + factsKey(facts)
	if alts, ok := t.memo[key]; ok {
		return alts, nil
	}
	alts, err := t.ruleAlts(rs, facts, func(r *ast.Rule) *ast.Term { return r.Head.Value })
	if err != nil {
		return nil, err
	}
	if err := t.unique(alts, rs.path); err != nil {
		return nil, err
	}
	alts, err = t.withDefault(alts, rs.def)
	if err != nil {
		return nil, err
	}
	t.memo[key] = alts
	return alts, nil
}

// ruleAlts is every value head(r) takes, for each rule r of rs whose body
// holds where facts do, with the condition under which it does.
func (t *translator) ruleAlts(rs *ruleSet, facts map[string]string, head func(*ast.Rule) *ast.Term) ([]alt, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	var alts []alt
	for _, r := range rs.rules {
		sols, err := t.body(r.Body, solution{cond: plan.True(), env: map[ast.Var]*value{}, facts: facts}, head(r))
		if err != nil {
			return nil, err
		}
		for _, s := range sols {
			vs, err := t.eval(head(r), s)
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				if c := plan.And(s.cond, v.cond); c.Op != plan.OpFalse {
					alts = append(alts, alt{c, v.v})
				}
			}
		}
	}
	return alts, nil
}

// withDefault adds the default rule's value where no alternative holds.
func (t *translator) withDefault(alts []alt, def *ast.Rule) ([]alt, error) {
	if def == nil {
		return alts, nil
	}
	if !ast.IsConstant(def.Head.Value.Value) {
		return nil, t.fail("its default value is not a constant")
	}
	conds := make([]*plan.Node, len(alts))
	for i, a := range alts {
		conds[i] = a.cond
	}
	if none := plan.Not(plan.Or(conds...)); none.Op != plan.OpFalse {
		alts = append(alts, alt{none, constant(def.Head.Value.Value)})
	}
	return alts, nil
}

// unique checks that no two alternatives of a rule's value with different
// values can hold together: Evaluate fails on such a conflict, and the plan
// cannot say where it happens.
func (t *translator) unique(alts []alt, rule string) error {
	if len(alts) > maxSolutions {
		return t.fail("rule %s has too many cases to plan", rule)
	}
	for i := range alts {
		for j := i + 1; j < len(alts); j++ {
			if sameValue(alts[i].v, alts[j].v) || exclusive(alts[i].cond, alts[j].cond) {
				continue
			}
			return t.fail("rule %s may have two different values for one resource (a conflict, which fails the decision) under conditions a plan cannot rule out", rule)
		}
	}
	return nil
}

func sameValue(a, b *value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case vConst:
		return a.c.Compare(b.c) == 0
	case vPath:
		return slices.Equal(a.path, b.path)
	case vSet, vCount, vSorted:
		return a.rule == b.rule
	case vBool:
		return a.cond.String() == b.cond.String()
	case vObject:
		if len(a.obj) != len(b.obj) {
			return false
		}
		for k, x := range a.obj {
			if y, ok := b.obj[k]; !ok || !sameValue(x, y) {
				return false
			}
		}
		return true
	}
	return false
}

// setElems is the alternatives of the elements of partial set rs.
func (t *translator) setElems(rs *ruleSet, facts map[string]string) ([]alt, error) {
	if rs == nil || rs.kind != kSet {
		return nil, t.fail("it uses a set a plan cannot express")
	}
	key := "s\x00" + rs.path + "\x00" + factsKey(facts)
	if alts, ok := t.memo[key]; ok {
		return alts, nil
	}
	alts, err := t.ruleAlts(rs, facts, func(r *ast.Rule) *ast.Term { return r.Head.Key })
	if err != nil {
		return nil, err
	}
	if len(alts) > maxSolutions {
		return nil, t.fail("set %s has too many cases to plan", rs.path)
	}
	t.memo[key] = alts
	return alts, nil
}

// function is the alternatives of the value of function rs called with
// args where facts hold.
func (t *translator) function(rs *ruleSet, args []*value, facts map[string]string) ([]alt, error) {
	if err := t.enter(); err != nil {
		return nil, err
	}
	defer t.leave()
	var alts []alt
	for _, r := range rs.rules {
		if len(r.Head.Args) != len(args) {
			return nil, t.fail("it calls %s with %d arguments", rs.path, len(args))
		}
		start := solution{cond: plan.True(), env: map[ast.Var]*value{}, facts: facts}
		for i, a := range r.Head.Args {
			switch x := a.Value.(type) {
			case ast.Var:
				if prev, ok := start.env[x]; ok {
					c, err := t.compare("equal", prev, args[i])
					if err != nil {
						return nil, err
					}
					start = start.and(c)
					continue
				}
				start = start.bind(x, args[i])
			default:
				if !ast.IsConstant(x) {
					return nil, t.fail("function %s takes its arguments apart, which a plan cannot express", rs.path)
				}
				c, err := t.compare("equal", args[i], constant(x))
				if err != nil {
					return nil, err
				}
				start = start.and(c)
			}
		}
		if start.cond.Op == plan.OpFalse {
			continue
		}
		sols, err := t.body(r.Body, start, append([]*ast.Term{r.Head.Value}, r.Head.Args...)...)
		if err != nil {
			return nil, err
		}
		for _, s := range sols {
			vs, err := t.eval(r.Head.Value, s)
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				if c := plan.And(s.cond, v.cond); c.Op != plan.OpFalse {
					alts = append(alts, alt{c, v.v})
				}
			}
		}
	}
	if err := t.unique(alts, rs.path); err != nil {
		return nil, err
	}
	return t.withDefault(alts, rs.def)
}
