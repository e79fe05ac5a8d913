package rego

import (
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Calls in residual bodies: unification, comparisons, membership and the
// few built-ins a plan expresses, each translated with Rego's semantics
// (undefined operands fail the expression; comparisons order values of
// different types; a built-in that fails makes the decision fail).

// typeTests are the type built-ins and the plan types each accepts.
var typeTests = map[string][]string{
	ast.IsString.Name:  {plan.TypeString},
	ast.IsNumber.Name:  {plan.TypeInt, plan.TypeDouble},
	ast.IsBoolean.Name: {plan.TypeBool},
	ast.IsArray.Name:   {plan.TypeList},
	ast.IsObject.Name:  {plan.TypeMap},
	ast.IsSet.Name:     {}, // JSON has no sets
}

// comparisons maps Rego's comparison built-ins to plan operators.
var comparisons = map[string]string{
	ast.Equal.Name:         plan.OpEq,
	ast.NotEqual.Name:      plan.OpNe,
	ast.LessThan.Name:      plan.OpLt,
	ast.LessThanEq.Name:    plan.OpLe,
	ast.GreaterThan.Name:   plan.OpGt,
	ast.GreaterThanEq.Name: plan.OpGe,
}

// flipped is the comparison with its operands swapped.
var flipped = map[string]string{
	ast.Equal.Name:         ast.Equal.Name,
	ast.NotEqual.Name:      ast.NotEqual.Name,
	ast.LessThan.Name:      ast.GreaterThan.Name,
	ast.LessThanEq.Name:    ast.GreaterThanEq.Name,
	ast.GreaterThan.Name:   ast.LessThan.Name,
	ast.GreaterThanEq.Name: ast.LessThanEq.Name,
}

func (t *translator) call(terms []*ast.Term, s solution) ([]solution, error) {
	op, ok := terms[0].Value.(ast.Ref)
	if !ok {
		return nil, t.fail("it calls something a plan cannot express")
	}
	name := op.String()
	args := terms[1:]
	if rs := t.rules[name]; rs != nil {
		if rs.kind != kFunction {
			return nil, t.fail("it calls %s, which is not a function", name)
		}
		return t.callFunction(rs, args, s)
	}
	if b := ast.BuiltinMap[name]; b != nil && name != ast.Equality.Name {
		if out, ok, err := t.constCall(b, args, s); ok || err != nil {
			return out, err
		}
	}
	if name == ast.Equality.Name && len(args) == 2 {
		return t.unify(args[0], args[1], s)
	}
	if (name == ast.Count.Name || name == ast.Sort.Name) && len(args) == 2 {
		return t.aggregate(name, args[0], args[1], s)
	}
	var pred func(vs []*value) (*plan.Node, error)
	arity, learns := 2, ""
	switch {
	case comparisons[name] != "":
		pred = func(vs []*value) (*plan.Node, error) { return t.compare(name, vs[0], vs[1]) }
	case name == ast.Member.Name:
		pred = func(vs []*value) (*plan.Node, error) { return t.in(vs[0], vs[1], s.facts) }
	case name == ast.StartsWith.Name:
		pred = func(vs []*value) (*plan.Node, error) { return t.startsWith(vs[0], vs[1], s.facts) }
		learns = plan.TypeString
	case typeTests[name] != nil:
		pred = func(vs []*value) (*plan.Node, error) { return t.isType(name, vs[0]) }
		arity, learns = 1, typeLearnt[name]
	default:
		return nil, t.fail("it calls %s on a value that depends on the resource, which a plan cannot express", name)
	}
	switch len(args) {
	case arity:
		out, err := t.withArgs(s, args, pred)
		if learns != "" {
			out = t.learn(out, args[0], s, learns)
		}
		return out, err
	case arity + 1:
		// The result as a value: a boolean, true where pred holds.
		combos, err := t.argAlts(args[:arity], s)
		if err != nil {
			return nil, err
		}
		var results []alt
		for _, c := range combos {
			n, err := pred(c.vals)
			if err != nil {
				return nil, err
			}
			results = append(results, alt{c.cond, &value{kind: vBool, cond: n}})
		}
		return t.results(s, results, args[arity])
	}
	return nil, t.fail("it calls %s with %d arguments", name, len(args))
}

// typeLearnt is what a type built-in that holds says of its argument, for
// the built-ins that need to know (startswith, in).
var typeLearnt = map[string]string{
	ast.IsString.Name: plan.TypeString,
	ast.IsArray.Name:  plan.TypeList,
	ast.IsObject.Name: plan.TypeMap,
}

// constCall evaluates a built-in whose arguments are all constants (partial
// evaluation leaves a few, such as count(set())), with OPA. ok is false when
// some argument is not a constant.
func (t *translator) constCall(b *ast.Builtin, args []*ast.Term, s solution) (out []solution, ok bool, err error) {
	n := len(b.Decl.FuncArgs().Args)
	var res *ast.Term
	switch len(args) {
	case n:
	case n + 1:
		args, res = args[:n], args[n]
	default:
		return nil, false, nil
	}
	for _, a := range args {
		if hasFree(a, s) {
			return nil, false, nil
		}
	}
	combos, err := t.argAlts(args, s)
	if err != nil {
		return nil, false, nil
	}
	var results []alt
	for _, c := range combos {
		terms := []*ast.Term{ast.NewTerm(b.Ref())}
		for _, v := range c.vals {
			if v.kind != vConst {
				return nil, false, nil
			}
			terms = append(terms, ast.NewTerm(v.c))
		}
		x := ast.VarTerm("verdict_plan_out")
		q := ast.Body{ast.NewExpr(append(terms, x))}
		key := q.String()
		v, done := t.consts[key]
		if !done {
			rs, err := oparego.New(oparego.ParsedQuery(q), oparego.Capabilities(t.p.plans.caps),
				oparego.StrictBuiltinErrors(true), oparego.Time(t.now)).Eval(t.ctx)
			if err != nil {
				return nil, true, t.fail("it calls %s, which fails (%v)", b.Name, err)
			}
			if len(rs) > 0 {
				if v, err = ast.InterfaceToValue(rs[0].Bindings["verdict_plan_out"]); err != nil {
					return nil, true, t.fail("it calls %s, whose value a plan cannot read (%v)", b.Name, err)
				}
			}
			t.consts[key] = v
		}
		if v == nil {
			continue // undefined
		}
		results = append(results, alt{c.cond, constant(v)})
	}
	out, err = t.results(s, results, res)
	return out, true, err
}

// learn records, in the solution out (the expression's), that the
// attribute arg is of type typ: the expression holding says so.
func (t *translator) learn(out []solution, arg *ast.Term, s solution, typ string) []solution {
	if len(out) != 1 {
		return out
	}
	alts, err := t.eval(arg, s)
	if err != nil || len(alts) != 1 || alts[0].v.kind != vPath {
		return out
	}
	return []solution{out[0].fact(alts[0].v.path, typ)}
}

// argAlt is one combination of the alternatives of a call's arguments.
type argAlt struct {
	cond *plan.Node
	vals []*value
}

func (t *translator) argAlts(args []*ast.Term, s solution) ([]argAlt, error) {
	out := []argAlt{{cond: plan.True()}}
	for _, a := range args {
		alts, err := t.eval(a, s)
		if err != nil {
			return nil, err
		}
		var next []argAlt
		for _, o := range out {
			for _, x := range alts {
				c := plan.And(o.cond, x.cond)
				if c.Op == plan.OpFalse {
					continue
				}
				vals := append(append([]*value(nil), o.vals...), x.v)
				next = append(next, argAlt{c, vals})
			}
		}
		if len(next) > maxSolutions {
			return nil, t.fail("it has too many cases to plan")
		}
		out = next
	}
	return out, nil
}

// withArgs is s under the condition that f holds for one combination of
// the arguments' alternatives.
func (t *translator) withArgs(s solution, args []*ast.Term, f func([]*value) (*plan.Node, error)) ([]solution, error) {
	combos, err := t.argAlts(args, s)
	if err != nil {
		return nil, err
	}
	conds := make([]*plan.Node, 0, len(combos))
	for _, c := range combos {
		n, err := f(c.vals)
		if err != nil {
			return nil, err
		}
		conds = append(conds, plan.And(c.cond, n))
	}
	return []solution{s.and(plan.Or(conds...))}, nil
}

// free reports whether x is a variable s has not bound.
func free(x *ast.Term, s solution) (ast.Var, bool) {
	v, ok := x.Value.(ast.Var)
	if !ok {
		return "", false
	}
	_, bound := s.env[v]
	return v, !bound
}

// hasFree reports whether x holds a variable s has not bound (other than
// the roots of references).
func hasFree(x *ast.Term, s solution) bool {
	found := false
	ast.WalkVars(x, func(v ast.Var) bool {
		if v.Equal(ast.InputRootDocument.Value) || v.Equal(ast.DefaultRootDocument.Value) {
			return false
		}
		if _, bound := s.env[v]; !bound {
			found = true
		}
		return found
	})
	return found
}

// unify translates a = b: it binds a variable, or compares.
func (t *translator) unify(a, b *ast.Term, s solution) ([]solution, error) {
	va, fa := free(a, s)
	vb, fb := free(b, s)
	switch {
	case fa && fb:
		return nil, t.fail("it unifies two unknown variables")
	case fa:
		return t.bindTo(va, b, s)
	case fb:
		return t.bindTo(vb, a, s)
	}
	if coll, ok := t.iterated(a, s); ok && !hasFree(b, s) {
		return t.someElement(coll, b, s)
	}
	if coll, ok := t.iterated(b, s); ok && !hasFree(a, s) {
		return t.someElement(coll, a, s)
	}
	if hasFree(a, s) || hasFree(b, s) {
		return nil, t.fail("it takes a value apart by unification, which a plan cannot express")
	}
	return t.withArgs(s, []*ast.Term{a, b}, func(vs []*value) (*plan.Node, error) {
		return t.compare(ast.Equal.Name, vs[0], vs[1])
	})
}

// bindTo binds v to each alternative of x.
func (t *translator) bindTo(v ast.Var, x *ast.Term, s solution) ([]solution, error) {
	if coll, ok := t.iterated(x, s); ok {
		return t.bindElement(v, coll, s)
	}
	if hasFree(x, s) {
		if r, ok := x.Value.(ast.Ref); ok && r.HasPrefix(ast.InputRootRef) {
			return nil, t.fail("it iterates over a collection that depends on the resource")
		}
		return nil, t.fail("it takes a value apart by unification, which a plan cannot express")
	}
	alts, err := t.eval(x, s)
	if err != nil {
		return nil, err
	}
	out := make([]solution, 0, len(alts))
	for _, a := range alts {
		out = append(out, s.and(a.cond).bind(v, a.v))
	}
	return out, nil
}

// callFunction translates a call of a support function, with or without
// an output argument.
func (t *translator) callFunction(rs *ruleSet, args []*ast.Term, s solution) ([]solution, error) {
	n := -1
	if len(rs.rules) > 0 {
		n = len(rs.rules[0].Head.Args)
	} else if rs.def != nil {
		n = len(rs.def.Head.Args)
	}
	var out *ast.Term
	switch len(args) {
	case n:
	case n + 1:
		out, args = args[n], args[:n]
	default:
		return nil, t.fail("it calls %s with %d arguments", rs.path, len(args))
	}
	combos, err := t.argAlts(args, s)
	if err != nil {
		return nil, err
	}
	var results []alt
	for _, c := range combos {
		vs, err := t.function(rs, c.vals, s.facts)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			results = append(results, alt{plan.And(c.cond, v.cond), v.v})
		}
	}
	return t.results(s, results, out)
}

// results is s where a call with the alternatives results holds: its value
// is not false, or, with an output argument, binds or equals out.
func (t *translator) results(s solution, results []alt, out *ast.Term) ([]solution, error) {
	if out == nil {
		return t.merge(s, results, func(a alt) (*plan.Node, error) { return truthy(a.v), nil })
	}
	if v, ok := free(out, s); ok {
		sols := make([]solution, 0, len(results))
		for _, r := range results {
			sols = append(sols, s.and(r.cond).bind(v, r.v))
		}
		return sols, nil
	}
	outs, err := t.eval(out, s)
	if err != nil {
		return nil, err
	}
	return t.merge(s, results, func(a alt) (*plan.Node, error) {
		var conds []*plan.Node
		for _, o := range outs {
			c, err := t.compare(ast.Equal.Name, a.v, o.v)
			if err != nil {
				return nil, err
			}
			conds = append(conds, plan.And(o.cond, c))
		}
		return plan.Or(conds...), nil
	})
}

// aggregate translates count(x, out) and sort(x, out) of a support set.
func (t *translator) aggregate(name string, x, out *ast.Term, s solution) ([]solution, error) {
	v, ok := free(out, s)
	if !ok {
		return nil, t.fail("it compares the result of %s, which a plan cannot express", name)
	}
	alts, err := t.eval(x, s)
	if err != nil {
		return nil, err
	}
	var sols []solution
	for _, a := range alts {
		if a.v.kind != vSet {
			return nil, t.fail("it calls %s on a value that depends on the resource, which a plan cannot express", name)
		}
		kind := vCount
		if name == ast.Sort.Name {
			kind = vSorted
		}
		sols = append(sols, s.and(a.cond).bind(v, &value{kind: kind, rule: a.v.rule}))
	}
	return sols, nil
}

// compare is the condition under which x op y holds, op a comparison
// built-in.
func (t *translator) compare(op string, x, y *value) (*plan.Node, error) {
	if x.kind == vConst && y.kind == vConst {
		return plan.Bool(compareConst(op, x.c, y.c)), nil
	}
	if x.kind == vConst {
		x, y, op = y, x, flipped[op]
	}
	if y.kind != vConst {
		return nil, t.fail("it compares two values that depend on the resource, which a plan cannot express")
	}
	switch x.kind {
	case vPath:
		return t.comparePath(op, x.path, y.c)
	case vCount:
		return t.compareCount(op, x.rule, y.c)
	case vElem:
		if v, ok := scalar(y.c); ok && op == ast.Equal.Name {
			return plan.Compare(plan.OpContains, x.path, v), nil
		}
		return nil, t.fail("it compares an element of a list of the resource with %v, which a plan cannot express", y.c)
	case vBool:
		ifTrue, ifFalse := compareConst(op, ast.Boolean(true), y.c), compareConst(op, ast.Boolean(false), y.c)
		return plan.Or(plan.And(x.cond, plan.Bool(ifTrue)), plan.And(plan.Not(x.cond), plan.Bool(ifFalse))), nil
	}
	return nil, t.fail("it compares a value computed from the resource, which a plan cannot express")
}

func compareConst(op string, a, b ast.Value) bool {
	c := a.Compare(b)
	switch op {
	case ast.Equal.Name:
		return c == 0
	case ast.NotEqual.Name:
		return c != 0
	case ast.LessThan.Name:
		return c < 0
	case ast.LessThanEq.Name:
		return c <= 0
	case ast.GreaterThan.Name:
		return c > 0
	}
	return c >= 0
}

// scalar is a constant as a plan value: a string, number or boolean.
func scalar(c ast.Value) (any, bool) {
	switch v := c.(type) {
	case ast.String:
		return string(v), true
	case ast.Boolean:
		return bool(v), true
	case ast.Number:
		if i, ok := v.Int64(); ok {
			return i, true
		}
		if f, ok := v.Float64(); ok {
			return f, true
		}
	}
	return nil, false
}

// comparePath is attribute op c. Rego orders values of different types
// (null < booleans < numbers < strings < arrays < objects), so an ordering
// with a number or a string also holds for the attributes of the types on
// the right side of it; plan orderings hold only within a type.
func (t *translator) comparePath(op string, path []string, c ast.Value) (*plan.Node, error) {
	if len(path) == 0 {
		return nil, t.fail("it compares the whole resource, which a plan cannot express")
	}
	v, ok := scalar(c)
	if !ok {
		return nil, t.fail("it compares a value of the resource with %v, which a plan cannot express (only strings, numbers and booleans)", c)
	}
	switch op {
	case ast.Equal.Name, ast.NotEqual.Name:
		return plan.Compare(comparisons[op], path, v), nil
	}
	var below, above []string
	switch c.(type) {
	case ast.Number:
		below, above = []string{plan.TypeBool}, []string{plan.TypeString, plan.TypeList, plan.TypeMap}
	case ast.String:
		below, above = []string{plan.TypeBool, plan.TypeInt, plan.TypeDouble}, []string{plan.TypeList, plan.TypeMap}
	default:
		return nil, t.fail("it orders a value of the resource against %v, which a plan cannot express (only numbers and strings)", c)
	}
	others := above
	if op == ast.LessThan.Name || op == ast.LessThanEq.Name {
		others = below
	}
	args := []*plan.Node{plan.Compare(comparisons[op], path, v)}
	for _, typ := range others {
		args = append(args, plan.Compare(plan.OpType, path, typ))
	}
	return plan.Or(args...), nil
}

// compareCount is count(set) op c. A plan tells an empty set from a
// non-empty one, so the comparison must have the same result for every
// non-zero count.
func (t *translator) compareCount(op, rule string, c ast.Value) (*plan.Node, error) {
	if _, ok := c.(ast.Number); !ok {
		return nil, t.fail("it compares a count with %v, which a plan cannot express", c)
	}
	elems, err := t.setElems(t.rules[rule], nil)
	if err != nil {
		return nil, err
	}
	conds := make([]*plan.Node, len(elems))
	for i, e := range elems {
		conds[i] = e.cond
	}
	nonEmpty := plan.Or(conds...)
	at := func(n int) bool { return compareConst(op, ast.Number(strconv.Itoa(n)), c) }
	zero, one := at(0), at(1)
	for n := 2; n <= len(elems); n++ {
		if at(n) != one {
			return nil, t.fail("it compares a count with %v, which a plan cannot express (only with 0 or 1)", c)
		}
	}
	return plan.Or(plan.And(plan.Not(nonEmpty), plan.Bool(zero)), plan.And(nonEmpty, plan.Bool(one))), nil
}

// in is x in y (internal.member_2): y's elements, or an object's values.
func (t *translator) in(x, y *value, facts map[string]string) (*plan.Node, error) {
	switch {
	case x.kind == vConst && y.kind == vConst:
		return plan.Bool(memberConst(x.c, y.c)), nil
	case x.kind == vPath && y.kind == vConst:
		if len(x.path) == 0 {
			return nil, t.fail("it looks the whole resource up in a collection, which a plan cannot express")
		}
		var vals []any
		var bad ast.Value
		collect := func(e *ast.Term) {
			if v, ok := scalar(e.Value); ok {
				vals = append(vals, v)
			} else if bad == nil {
				bad = e.Value
			}
		}
		switch c := y.c.(type) {
		case ast.Set:
			c.Foreach(collect)
		case *ast.Array:
			c.Foreach(collect)
		case ast.Object:
			c.Foreach(func(_, v *ast.Term) { collect(v) })
		default:
			return plan.False(), nil
		}
		if bad != nil {
			return nil, t.fail("it looks a value of the resource up in a collection holding %v, which a plan cannot express (only strings, numbers and booleans)", bad)
		}
		return plan.In(x.path, vals), nil
	case x.kind == vConst && y.kind == vPath:
		v, ok := scalar(x.c)
		if !ok {
			return nil, t.fail("it looks %v up in a value of the resource, which a plan cannot express (only strings, numbers and booleans)", x.c)
		}
		if len(y.path) == 0 || facts[pathKey(y.path)] != plan.TypeList {
			name := "input.resource." + strings.Join(y.path, ".")
			return nil, t.fail("%v in %s also holds when %s is an object with that value, which a plan cannot express: test is_array(%s) first", x.c, name, name, name)
		}
		return plan.Compare(plan.OpContains, y.path, v), nil
	case y.kind == vSet:
		elems, err := t.setElems(t.rules[y.rule], nil)
		if err != nil {
			return nil, err
		}
		var conds []*plan.Node
		for _, e := range elems {
			c, err := t.compare(ast.Equal.Name, e.v, x)
			if err != nil {
				return nil, err
			}
			conds = append(conds, plan.And(e.cond, c))
		}
		return plan.Or(conds...), nil
	}
	return nil, t.fail("it looks a value up in a collection in a way that depends on the resource, which a plan cannot express")
}

// memberConst is Rego's x in y for constants.
func memberConst(x, y ast.Value) bool {
	t := ast.NewTerm(x)
	switch c := y.(type) {
	case ast.Set:
		return c.Contains(t)
	case *ast.Array:
		return c.Until(t.Equal)
	case ast.Object:
		return c.Until(func(_, v *ast.Term) bool { return t.Equal(v) })
	}
	return false
}

// startsWith is startswith(x, y). The built-in fails (and with it the
// decision) on a value that is not a string, which a plan cannot say, so
// the attribute must be known to be a string where it is called.
func (t *translator) startsWith(x, y *value, facts map[string]string) (*plan.Node, error) {
	prefix, ok := y.c.(ast.String)
	if y.kind != vConst || !ok {
		return nil, t.fail("startswith takes a prefix that is not a constant string, which a plan cannot express")
	}
	switch x.kind {
	case vConst:
		s, ok := x.c.(ast.String)
		if !ok {
			return nil, t.fail("startswith fails on %v, which is not a string", x.c)
		}
		return plan.Bool(strings.HasPrefix(string(s), string(prefix))), nil
	case vPath:
		if len(x.path) == 0 {
			break
		}
		if !(len(x.path) == 1 && x.path[0] == "id") && facts[pathKey(x.path)] != plan.TypeString {
			name := "input.resource." + strings.Join(x.path, ".")
			return nil, t.fail("startswith fails (an error, which denies) when %s is not a string, which a plan cannot express: test is_string(%s) first", name, name)
		}
		return plan.Compare(plan.OpStartsWith, x.path, string(prefix)), nil
	}
	return nil, t.fail("startswith of a value computed from the resource cannot be planned")
}

// isType is is_<type>(x) for the type built-in name.
func (t *translator) isType(name string, x *value) (*plan.Node, error) {
	var regoType string // what ast.ValueName calls the values name accepts
	switch x.kind {
	case vConst:
		regoType = ast.ValueName(x.c)
	case vSet:
		regoType = ast.ValueName(ast.NewSet())
	case vCount:
		regoType = ast.ValueName(ast.Number("0"))
	case vSorted:
		regoType = ast.ValueName(ast.NewArray())
	case vObject:
		regoType = ast.ValueName(ast.NewObject())
	case vBool:
		regoType = ast.ValueName(ast.Boolean(true))
	case vElem:
		return nil, t.fail("it tests the type of an element of a collection of the resource, which a plan cannot express")
	case vPath:
		switch {
		case len(x.path) == 1 && x.path[0] == "id":
			regoType = ast.ValueName(ast.String(""))
		case alwaysDefined(x.path):
			regoType = ast.ValueName(ast.NewObject())
		default:
			types := typeTests[name]
			args := make([]*plan.Node, len(types))
			for i, typ := range types {
				args[i] = plan.Compare(plan.OpType, x.path, typ)
			}
			return plan.Or(args...), nil
		}
	}
	return plan.Bool(typeBuiltin[regoType] == name), nil
}

// typeBuiltin is the type built-in that holds for values of each type.
var typeBuiltin = map[string]string{
	ast.ValueName(ast.String("")):    ast.IsString.Name,
	ast.ValueName(ast.Number("0")):   ast.IsNumber.Name,
	ast.ValueName(ast.Boolean(true)): ast.IsBoolean.Name,
	ast.ValueName(ast.NewArray()):    ast.IsArray.Name,
	ast.ValueName(ast.NewObject()):   ast.IsObject.Name,
	ast.ValueName(ast.NewSet()):      ast.IsSet.Name,
}
