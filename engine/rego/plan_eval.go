package rego

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
)

// The symbolic evaluator of partial-evaluation residuals. A body evaluates
// to solutions: a condition over the resource and the bindings of its
// variables, each to a value. A value is a constant, a resource attribute
// (defined: the condition that brought it says so), a support partial set,
// its count or its sorted elements, or an object some of whose members are
// such values (a decision). Support rules are evaluated where referenced:
// a complete rule to the alternatives of its value, each under the
// condition of the body that gives it; a function with the arguments of the
// call.

// Bounds on the translation, beyond which a plan is refused.
const (
	maxSolutions = 256    // solutions of one body, alternatives of one value
	maxDepth     = 32     // nested rule references
	maxSteps     = 200000 // expressions evaluated for one plan
)

type valueKind int

const (
	vConst  valueKind = iota // c
	vPath                    // the attribute at path (nil: the resource object)
	vSet                     // the partial set rule
	vCount                   // count(rule)
	vSorted                  // sort(rule)
	vObject                  // an object with members that are not all constant
	vBool                    // a boolean: true where cond holds, else false
	vElem                    // some element of the list at path (plan_iter.go)
)

type value struct {
	kind valueKind
	c    ast.Value
	path []string
	rule string
	obj  map[string]*value
	cond *plan.Node
}

func constant(v ast.Value) *value { return &value{kind: vConst, c: v} }

// alt is one alternative of a value: v, where cond holds.
type alt struct {
	cond *plan.Node
	v    *value
}

type solution struct {
	cond *plan.Node
	env  map[ast.Var]*value
	// facts are the attributes known to be of a type (by path key) where
	// the evaluation stands: tested by an earlier expression.
	facts map[string]string
}

func (s solution) and(c *plan.Node) solution {
	s.cond = plan.And(s.cond, c)
	return s
}

func (s solution) bind(v ast.Var, x *value) solution {
	env := make(map[ast.Var]*value, len(s.env)+1)
	maps.Copy(env, s.env)
	env[v] = x
	s.env = env
	return s
}

func (s solution) fact(path []string, typ string) solution {
	facts := make(map[string]string, len(s.facts)+1)
	maps.Copy(facts, s.facts)
	facts[pathKey(path)] = typ
	s.facts = facts
	return s
}

func pathKey(path []string) string { return strings.Join(path, "\x00") }

func factsKey(facts map[string]string) string {
	keys := slices.Sorted(maps.Keys(facts))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\x01" + facts[k] + "\x02")
	}
	return b.String()
}

type translator struct {
	ctx     context.Context
	p       *Policy
	resType string
	now     time.Time
	rules   map[string]*ruleSet
	memo    map[string][]alt
	consts  map[string]ast.Value // results of built-ins on constants (nil: undefined)
	cur     *ast.Expr            // the expression being translated, for messages
	curBody ast.Body             // the body being translated
	uses    map[ast.Var]int      // the occurrences of variables in curBody and its rule's head
	depth   int
	steps   int
}

func newTranslator(ctx context.Context, p *Policy, pq *oparego.PartialQueries, resType string, now time.Time) *translator {
	t := &translator{ctx: ctx, p: p, resType: resType, now: now, rules: map[string]*ruleSet{}, memo: map[string][]alt{}, consts: map[string]ast.Value{}}
	for _, m := range pq.Support {
		for _, r := range m.Rules {
			path := m.Package.Path.Extend(r.Head.Ref().GroundPrefix())
			k := path.String()
			rs := t.rules[k]
			if rs == nil {
				rs = &ruleSet{path: k}
				switch {
				case len(r.Head.Args) > 0:
					rs.kind = kFunction
				case r.Head.RuleKind() == ast.MultiValue && len(r.Head.Ref()) == len(r.Head.Ref().GroundPrefix()):
					rs.kind = kSet
				case r.Head.RuleKind() == ast.SingleValue && r.Head.Ref().IsGround():
					rs.kind = kComplete
				default:
					rs.kind = kOther
				}
				t.rules[k] = rs
			}
			if r.Default {
				rs.def = r
			} else {
				rs.rules = append(rs.rules, r)
			}
		}
	}
	return t
}

// fail is the error for the expression being translated.
func (t *translator) fail(format string, args ...any) error {
	ue := &engine.UnplannableError{Policy: t.p.name, Reason: fmt.Sprintf(format, args...)}
	if e := t.cur; e != nil {
		ue.Rule = t.p.plans.ruleAt(e.Location)
		if e.Location != nil && len(e.Location.Text) > 0 {
			ue.Expression = string(e.Location.Text)
		} else {
			ue.Expression = e.String()
		}
	}
	if ue.Rule == "" {
		ue.Rule = t.p.entrypoint
	}
	return ue
}

func (t *translator) tick() error {
	t.steps++
	if t.steps > maxSteps {
		return t.fail("the policy is too large to plan")
	}
	if t.steps%256 == 0 {
		if err := t.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// decision is the condition under which the entrypoint's value allows.
func (t *translator) decision(queries []ast.Body) (*plan.Node, error) {
	var alts []alt
	for _, q := range queries {
		sols, err := t.body(q, solution{cond: plan.True()}, ast.NewTerm(planVar))
		if err != nil {
			return nil, err
		}
		for _, s := range sols {
			v, ok := s.env[planVar]
			if !ok {
				return nil, t.fail("the value of %s depends on the resource in a way a plan cannot express", t.p.entrypoint)
			}
			alts = append(alts, alt{s.cond, v})
		}
	}
	t.cur = nil
	if err := t.unique(alts, t.p.entrypoint); err != nil {
		return nil, err
	}
	var allow []*plan.Node
	for _, a := range alts {
		c, err := t.allows(a.v)
		if err != nil {
			return nil, err
		}
		allow = append(allow, plan.And(a.cond, c))
	}
	return plan.Or(allow...), nil
}

// allows is the condition under which the entrypoint's value v makes the
// effect Allow (interpret).
func (t *translator) allows(v *value) (*plan.Node, error) {
	switch v.kind {
	case vConst:
		x, err := ast.JSON(v.c)
		if err != nil {
			return plan.False(), nil
		}
		effect, _, err := t.p.interpret(x)
		return plan.Bool(err == nil && effect == engine.Allow), nil
	case vObject:
		d := v.obj["decision"]
		if d == nil {
			return plan.False(), nil
		}
		var decided *plan.Node
		switch d.kind {
		case vBool:
			decided = d.cond
		case vConst:
			decided = plan.Bool(d.c.Compare(ast.Boolean(true)) == 0)
		case vPath, vElem:
			return nil, t.fail("the decision is a value of the resource, not a condition over it")
		default:
			return plan.False(), nil // not a boolean: interpret fails
		}
		if decided.Op == plan.OpFalse {
			return decided, nil
		}
		ok, err := t.validReasons(v.obj["reasons"])
		if err != nil {
			return nil, err
		}
		return plan.And(decided, plan.Bool(ok)), nil
	case vBool:
		return v.cond, nil
	case vPath:
		return nil, t.fail("the decision is a value of the resource, not a condition over it")
	}
	return plan.False(), nil // a set, a number or a list is not a decision
}

// validReasons reports whether r, the reasons of a decision, are a list of
// strings (or absent), as interpret requires.
func (t *translator) validReasons(r *value) (bool, error) {
	switch {
	case r == nil:
		return true, nil
	case r.kind == vConst:
		x, _ := ast.JSON(ast.NewObject(ast.Item(ast.StringTerm("decision"), ast.BooleanTerm(true)), ast.Item(ast.StringTerm("reasons"), ast.NewTerm(r.c))))
		effect, _, err := t.p.interpret(x)
		return err == nil && effect == engine.Allow, nil
	case r.kind == vSet || r.kind == vSorted:
		elems, err := t.setElems(t.rules[r.rule], nil)
		if err != nil {
			return false, err
		}
		for _, e := range elems {
			if e.v.kind != vConst {
				return false, t.fail("the reasons hold a value of the resource, which may not be a string")
			}
			if _, ok := e.v.c.(ast.String); !ok {
				return false, t.fail("the reasons may hold %v, which is not a string", e.v.c)
			}
		}
		return true, nil
	}
	return false, t.fail("the reasons depend on the resource's value")
}

// body evaluates b from start; outside are the terms beyond b (a rule's
// head) whose variables b binds.
func (t *translator) body(b ast.Body, start solution, outside ...*ast.Term) ([]solution, error) {
	prevBody, prevUses := t.curBody, t.uses
	t.curBody, t.uses = b, countVars(b, outside)
	defer func() { t.curBody, t.uses = prevBody, prevUses }()
	sols := []solution{start}
	for _, e := range b {
		var next []solution
		for _, s := range sols {
			out, err := t.expr(e, s)
			if err != nil {
				return nil, err
			}
			for _, o := range out {
				if o.cond.Op != plan.OpFalse {
					next = append(next, o)
				}
			}
		}
		sols = next
		if len(sols) == 0 {
			return nil, nil
		}
		if len(sols) > maxSolutions {
			prev := t.cur
			t.cur = e
			err := t.fail("it has too many cases to plan")
			t.cur = prev
			return nil, err
		}
	}
	return sols, nil
}

// holds is the condition under which b has a solution from start.
func (t *translator) holds(sols []solution) *plan.Node {
	conds := make([]*plan.Node, len(sols))
	for i, s := range sols {
		conds[i] = s.cond
	}
	return plan.Or(conds...)
}

func (t *translator) expr(e *ast.Expr, s solution) ([]solution, error) {
	prev := t.cur
	t.cur = e
	defer func() { t.cur = prev }()
	if err := t.tick(); err != nil {
		return nil, err
	}
	if len(e.With) > 0 {
		return nil, t.fail("with depends on the resource")
	}
	if e.Negated {
		inner := e.Complement()
		sols, err := t.expr(inner, solution{cond: plan.True(), env: s.env, facts: s.facts})
		if err != nil {
			return nil, err
		}
		return []solution{s.and(plan.Not(t.holds(sols)))}, nil
	}
	switch x := e.Terms.(type) {
	case *ast.Term:
		alts, err := t.eval(x, s)
		if err != nil {
			return nil, err
		}
		return t.merge(s, alts, func(a alt) (*plan.Node, error) { return truthy(a.v), nil })
	case []*ast.Term:
		return t.call(x, s)
	case *ast.SomeDecl:
		return []solution{s}, nil
	}
	return nil, t.fail("it depends on the resource in a way a plan cannot express")
}

// merge is s under the condition that one of alts holds together with f of
// it: one solution, as no variable is bound.
func (t *translator) merge(s solution, alts []alt, f func(alt) (*plan.Node, error)) ([]solution, error) {
	conds := make([]*plan.Node, 0, len(alts))
	for _, a := range alts {
		c, err := f(a)
		if err != nil {
			return nil, err
		}
		conds = append(conds, plan.And(a.cond, c))
	}
	return []solution{s.and(plan.Or(conds...))}, nil
}

// truthy is the condition under which defined value v makes an expression
// true: it is not false.
func truthy(v *value) *plan.Node {
	switch v.kind {
	case vConst:
		return plan.Bool(v.c.Compare(ast.Boolean(false)) != 0)
	case vBool:
		return v.cond
	case vPath:
		if alwaysDefined(v.path) {
			return plan.True()
		}
		return plan.Not(plan.Compare(plan.OpEq, v.path, false))
	}
	return plan.True()
}

// alwaysDefined reports whether the attribute at path is in every
// resource: the resource itself, its id (a string) and its properties (an
// object).
func alwaysDefined(path []string) bool {
	return len(path) == 0 || len(path) == 1 && (path[0] == "id" || path[0] == "properties")
}

// eval is the alternatives of term x in s.
func (t *translator) eval(x *ast.Term, s solution) ([]alt, error) {
	switch v := x.Value.(type) {
	case ast.Var:
		if b, ok := s.env[v]; ok {
			return []alt{{plan.True(), b}}, nil
		}
		return nil, t.fail("it uses a variable that depends on the resource in a way a plan cannot express")
	case ast.Ref:
		return t.ref(v, s)
	case ast.Null, ast.Boolean, ast.Number, ast.String:
		return []alt{{plan.True(), constant(v)}}, nil
	case *ast.Array, ast.Object, ast.Set:
		if ast.IsConstant(v) {
			return []alt{{plan.True(), constant(v)}}, nil
		}
		c, err := t.composite(v, s)
		if err != nil {
			return nil, err
		}
		return []alt{{plan.True(), c}}, nil
	}
	return nil, t.fail("it computes a value from the resource that a plan cannot express")
}

// composite is a collection term whose members are bound variables.
func (t *translator) composite(x ast.Value, s solution) (*value, error) {
	one := func(m *ast.Term) (*value, error) {
		alts, err := t.eval(m, s)
		if err != nil {
			return nil, err
		}
		if len(alts) != 1 || alts[0].cond.Op != plan.OpTrue {
			return nil, t.fail("it builds a collection from values that depend on the resource")
		}
		return alts[0].v, nil
	}
	switch c := x.(type) {
	case ast.Object:
		obj := map[string]*value{}
		consts := ast.NewObject()
		allConst := true
		err := c.Iter(func(k, m *ast.Term) error {
			kv, err := one(k)
			if err != nil {
				return err
			}
			key, ok := kv.c.(ast.String)
			if kv.kind != vConst || !ok {
				return t.fail("it builds an object with keys that depend on the resource")
			}
			mv, err := one(m)
			if err != nil {
				return err
			}
			obj[string(key)] = mv
			if mv.kind == vConst {
				consts.Insert(ast.NewTerm(key), ast.NewTerm(mv.c))
			} else {
				allConst = false
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if allConst {
			return constant(consts), nil
		}
		return &value{kind: vObject, obj: obj}, nil
	case *ast.Array:
		var elems []*ast.Term
		for i := range c.Len() {
			ev, err := one(c.Elem(i))
			if err != nil {
				return nil, err
			}
			if ev.kind != vConst {
				return nil, t.fail("it builds a list from values that depend on the resource")
			}
			elems = append(elems, ast.NewTerm(ev.c))
		}
		return constant(ast.NewArray(elems...)), nil
	case ast.Set:
		var elems []*ast.Term
		for _, m := range c.Slice() {
			ev, err := one(m)
			if err != nil {
				return nil, err
			}
			if ev.kind != vConst {
				return nil, t.fail("it builds a set from values that depend on the resource")
			}
			elems = append(elems, ast.NewTerm(ev.c))
		}
		return constant(ast.NewSet(elems...)), nil
	}
	return nil, t.fail("it computes a value from the resource that a plan cannot express")
}

// ref is the alternatives of reference r.
func (t *translator) ref(r ast.Ref, s solution) ([]alt, error) {
	head, ok := r[0].Value.(ast.Var)
	if !ok {
		return nil, t.fail("it computes a value from the resource that a plan cannot express")
	}
	switch {
	case head.Equal(ast.InputRootDocument.Value):
		if len(r) < 2 || !r[1].Equal(ast.InternedTerm("resource")) {
			return nil, t.fail("it reads the whole input, which depends on the resource")
		}
		return t.index([]alt{{plan.True(), &value{kind: vPath}}}, r[2:], s)
	case head.Equal(ast.DefaultRootDocument.Value):
		for i := len(r); i >= 2; i-- {
			if !r[:i].IsGround() {
				continue
			}
			if rs := t.rules[r[:i].String()]; rs != nil {
				base, err := t.ruleValue(rs, s)
				if err != nil {
					return nil, err
				}
				return t.index(base, r[i:], s)
			}
		}
		return nil, t.fail("it looks data up by a value that depends on the resource")
	}
	b, ok := s.env[head]
	if !ok {
		return nil, t.fail("it uses a variable that depends on the resource in a way a plan cannot express")
	}
	return t.index([]alt{{plan.True(), b}}, r[1:], s)
}

// index applies the operands ops to each of alts.
func (t *translator) index(alts []alt, ops []*ast.Term, s solution) ([]alt, error) {
	for _, op := range ops {
		if v, ok := op.Value.(ast.Var); ok {
			if _, bound := s.env[v]; !bound {
				return nil, t.fail("it iterates over a collection that depends on the resource")
			}
		}
		keys, err := t.eval(op, s)
		if err != nil {
			return nil, err
		}
		var next []alt
		for _, k := range keys {
			if k.v.kind != vConst {
				return nil, t.fail("it looks a value up by a key that depends on the resource")
			}
			for _, a := range alts {
				out, err := t.member(a.v, k.v.c)
				if err != nil {
					return nil, err
				}
				for _, o := range out {
					if c := plan.And(a.cond, k.cond, o.cond); c.Op != plan.OpFalse {
						next = append(next, alt{c, o.v})
					}
				}
			}
		}
		if len(next) > maxSolutions {
			return nil, t.fail("it has too many cases to plan")
		}
		alts = next
	}
	return alts, nil
}

// member is v[k].
func (t *translator) member(v *value, k ast.Value) ([]alt, error) {
	switch v.kind {
	case vConst:
		switch c := v.c.(type) {
		case ast.Object:
			if x := c.Get(ast.NewTerm(k)); x != nil {
				return []alt{{plan.True(), constant(x.Value)}}, nil
			}
		case *ast.Array:
			if n, ok := k.(ast.Number); ok {
				if i, ok := n.Int(); ok && i >= 0 && i < c.Len() {
					return []alt{{plan.True(), constant(c.Elem(i).Value)}}, nil
				}
			}
		case ast.Set:
			if c.Contains(ast.NewTerm(k)) {
				return []alt{{plan.True(), constant(k)}}, nil
			}
		}
		return nil, nil
	case vPath:
		key, ok := k.(ast.String)
		if !ok {
			return nil, t.fail("it indexes a value of the resource by a number, which a plan cannot express")
		}
		if key == "" {
			return nil, t.fail("it reads an attribute with an empty name, which a plan cannot express")
		}
		if len(v.path) == 0 {
			switch key {
			case "type":
				return []alt{{plan.True(), constant(ast.String(t.resType))}}, nil
			case "id", "properties":
				return []alt{{plan.True(), &value{kind: vPath, path: []string{string(key)}}}}, nil
			}
			return nil, nil
		}
		path := append(slices.Clone(v.path), string(key))
		return []alt{{plan.Has(path), &value{kind: vPath, path: path}}}, nil
	case vBool, vCount:
		return nil, nil // scalars have no members
	case vObject:
		if key, ok := k.(ast.String); ok {
			if m := v.obj[string(key)]; m != nil {
				return []alt{{plan.True(), m}}, nil
			}
		}
		return nil, nil
	case vSet:
		elems, err := t.setElems(t.rules[v.rule], nil)
		if err != nil {
			return nil, err
		}
		var conds []*plan.Node
		for _, e := range elems {
			c, err := t.compare("equal", e.v, constant(k))
			if err != nil {
				return nil, err
			}
			conds = append(conds, plan.And(e.cond, c))
		}
		return []alt{{plan.Or(conds...), constant(k)}}, nil
	}
	return nil, t.fail("it looks into a value computed from the resource")
}
