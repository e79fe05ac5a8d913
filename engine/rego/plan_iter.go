package rego

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Iteration over a collection of the resource: a plan says whether a list
// holds a value (contains), so the iteration is planned where it amounts to
// that: X[_] = c, and v = X[_] with v used once more, in v == c. As x in X
// does, iteration visits an object's values, which contains does not see,
// so X must be known to be a list (is_array(X) before).

// countVars counts the occurrences of each variable in b and outside.
func countVars(b ast.Body, outside []*ast.Term) map[ast.Var]int {
	n := map[ast.Var]int{}
	count := func(v ast.Var) bool { n[v]++; return false }
	ast.WalkVars(b, count)
	for _, x := range outside {
		if x != nil {
			ast.WalkVars(x, count)
		}
	}
	return n
}

// iterated splits x, a reference X[k] whose last operand is a variable
// that occurs nowhere else, into X.
func (t *translator) iterated(x *ast.Term, s solution) (ast.Ref, bool) {
	r, ok := x.Value.(ast.Ref)
	if !ok || len(r) < 2 {
		return nil, false
	}
	k, ok := r[len(r)-1].Value.(ast.Var)
	if !ok {
		return nil, false
	}
	if _, bound := s.env[k]; bound || t.uses[k] != 1 {
		return nil, false
	}
	coll := r[:len(r)-1]
	if hasFree(ast.NewTerm(coll), s) {
		return nil, false
	}
	return coll, true
}

// someElement is X[_] = c: c in X.
func (t *translator) someElement(coll ast.Ref, c *ast.Term, s solution) ([]solution, error) {
	return t.withArgs(s, []*ast.Term{ast.NewTerm(coll), c}, func(vs []*value) (*plan.Node, error) {
		if vs[0].kind != vPath {
			return nil, t.fail("it iterates over a collection computed from the resource, which a plan cannot express")
		}
		return t.in(vs[1], vs[0], s.facts)
	})
}

// bindElement is v = X[_], where the only other use of v is v == c.
func (t *translator) bindElement(v ast.Var, coll ast.Ref, s solution) ([]solution, error) {
	if t.uses[v] != 2 || !t.comparedOnce(v) {
		return nil, t.fail("it iterates over a collection that depends on the resource, which a plan can only express as a test that the collection holds a value")
	}
	alts, err := t.ref(coll, s)
	if err != nil {
		return nil, err
	}
	out := make([]solution, 0, len(alts))
	for _, a := range alts {
		if a.v.kind != vPath || len(a.v.path) == 0 {
			return nil, t.fail("it iterates over a collection computed from the resource, which a plan cannot express")
		}
		if s.facts[pathKey(a.v.path)] != plan.TypeList {
			name := "input.resource." + strings.Join(a.v.path, ".")
			return nil, t.fail("iterating over %s also visits the values of an object, which a plan cannot express: test is_array(%s) first", name, name)
		}
		out = append(out, s.and(a.cond).bind(v, &value{kind: vElem, path: a.v.path}))
	}
	return out, nil
}

// comparedOnce reports whether the expression of the current body that
// uses v, other than the one being translated, is v == c (or c == v, v = c)
// with c free of v.
func (t *translator) comparedOnce(v ast.Var) bool {
	for _, e := range t.curBody {
		if e == t.cur || !e.Vars(ast.VarVisitorParams{}).Contains(v) {
			continue
		}
		terms, ok := e.Terms.([]*ast.Term)
		if e.Negated || len(e.With) > 0 || !ok || len(terms) != 3 {
			return false
		}
		op := terms[0].String()
		if op != ast.Equality.Name && op != ast.Equal.Name {
			return false
		}
		a, b := terms[1], terms[2]
		if !a.Equal(ast.VarTerm(string(v))) {
			a, b = b, a
		}
		return a.Equal(ast.VarTerm(string(v))) && !b.Vars().Contains(v)
	}
	return false
}
