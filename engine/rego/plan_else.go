package rego

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// OPA's partial evaluation does not evaluate rules with else branches whose
// bodies depend on an unknown: it leaves the reference to the original rule
// in its result. Plans therefore compile a copy of the modules in which each
// else chain is written as separate, mutually exclusive definitions:
//
//	r := a if { B0 } else := b if { B1 } else := c
//
// becomes
//
//	r := a if { B0 }
//	r := b if { not h0; B1 }
//	r := c if { not h0; not h1 }
//	h0 if { B0 }
//	h1 if { B1 }
//
// (functions pass their arguments to the helpers). An else branch is taken
// when every earlier body has no solution, which is what the negated helpers
// say; the bodies are evaluated in the same order, so a body that fails with
// an error still fails the rule.

// elsePrefix starts the names of the helper rules; a module that uses it
// itself cannot be planned.
const elsePrefix = "verdict__else"

// isElseHelper reports whether name is one of the helpers' names.
func isElseHelper(name string) bool { return strings.HasPrefix(name, elsePrefix) }

// withoutElse returns copies of modules with every else chain rewritten.
// modules are not modified.
func withoutElse(modules map[string]*ast.Module) (map[string]*ast.Module, error) {
	out := make(map[string]*ast.Module, len(modules))
	n := 0
	for path, m := range modules {
		var clash error
		ast.WalkRules(m, func(r *ast.Rule) bool {
			if name := headVar(r); isElseHelper(name) {
				clash = fmt.Errorf("rule %s uses the name prefix %s that plans reserve", name, elsePrefix)
			}
			return false
		})
		if clash != nil {
			return nil, clash
		}
		c := m.Copy()
		var rules []*ast.Rule
		for _, r := range c.Rules {
			if r.Else == nil {
				rules = append(rules, r)
				continue
			}
			rules = append(rules, splitElse(c, r, &n)...)
		}
		c.Rules = rules
		out[path] = c
	}
	return out, nil
}

// headVar is the first segment of a rule's name.
func headVar(r *ast.Rule) string {
	if r.Head.Name != "" {
		return string(r.Head.Name)
	}
	if len(r.Head.Reference) > 0 {
		if v, ok := r.Head.Reference[0].Value.(ast.Var); ok {
			return string(v)
		}
	}
	return ""
}

// splitElse turns the chain starting at r into separate rules and helpers.
func splitElse(m *ast.Module, r *ast.Rule, n *int) []*ast.Rule {
	var chain []*ast.Rule
	for c := r; c != nil; c = c.Else {
		chain = append(chain, c)
	}
	var out, helpers []*ast.Rule
	var negs []*ast.Term // the helpers, as call or ref terms, for the following branches
	for i, c := range chain {
		head := c.Head.Copy()
		head.Args = namedArgs(head.Args, *n, i)
		body := ast.NewBody()
		for _, h := range negs {
			e := ast.NewExpr(h) // not h
			if len(head.Args) > 0 {
				e = ast.NewExpr(append([]*ast.Term{h}, argTerms(head.Args)...)) // not h(args...), a call
			}
			e = e.Complement()
			e.Location = c.Location
			body.Append(e)
		}
		for _, e := range c.Body {
			body.Append(e.Copy())
		}
		out = append(out, &ast.Rule{Head: head, Body: body, Location: c.Location, Module: m})
		if i == len(chain)-1 {
			break
		}
		name := ast.Var(elsePrefix + strconv.Itoa(*n) + "_" + strconv.Itoa(i))
		hhead := &ast.Head{Name: name, Reference: ast.Ref{ast.VarTerm(string(name))}, Value: ast.BooleanTerm(true), Location: c.Location}
		hhead.Args = namedArgs(c.Head.Copy().Args, *n, i)
		helpers = append(helpers, &ast.Rule{Head: hhead, Body: c.Body.Copy(), Location: c.Location, Module: m})
		negs = append(negs, ast.RefTerm(ast.VarTerm(string(name))))
	}
	*n++
	return append(out, helpers...)
}

// namedArgs replaces wildcard arguments by named variables, so that the
// helpers can be called with them.
func namedArgs(args ast.Args, n, i int) ast.Args {
	out := make(ast.Args, len(args))
	for j, a := range args {
		if v, ok := a.Value.(ast.Var); ok && v.IsWildcard() {
			out[j] = ast.VarTerm(fmt.Sprintf("%sarg%d_%d_%d", elsePrefix, n, i, j))
			continue
		}
		out[j] = a
	}
	return out
}

func argTerms(args ast.Args) []*ast.Term {
	out := make([]*ast.Term, len(args))
	for i, a := range args {
		out[i] = a.Copy()
	}
	return out
}
