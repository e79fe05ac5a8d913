package cel

import (
	"context"
	"fmt"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/verdictpdp/verdict/engine"
)

// evaluation is the state of one Evaluate call, and the activation its
// programs read: each input variable is built from the request when an
// expression first names it, and each policy variable is evaluated at most
// once. One allocation, instead of a map of bindings and a closure per
// variable.
type evaluation struct {
	ctx     context.Context
	p       *Policy
	in      *engine.Input
	explain bool
	// untracked: the input is small enough for untracked programs.
	untracked bool

	subject, action, resource map[string]any
	vals                      []ref.Val // policy variables, by index; nil: not yet evaluated
	inline                    [4]ref.Val
}

var _ interpreter.Activation = (*evaluation)(nil)

func newEvaluation(ctx context.Context, p *Policy, in *engine.Input, explain bool) *evaluation {
	ev := &evaluation{ctx: ctx, p: p, in: in, explain: explain, untracked: smallInput(in)}
	if n := len(p.variables); n <= len(ev.inline) {
		ev.vals = ev.inline[:n]
	} else {
		ev.vals = make([]ref.Val, n)
	}
	return ev
}

// ResolveName implements interpreter.Activation.
func (ev *evaluation) ResolveName(name string) (any, bool) {
	switch name {
	case VarSubject:
		if ev.subject == nil {
			ev.subject = engine.EntityDoc(ev.in.Subject)
		}
		return ev.subject, true
	case VarResource:
		if ev.resource == nil {
			ev.resource = engine.EntityDoc(ev.in.Resource)
		}
		return ev.resource, true
	case VarAction:
		if ev.action == nil {
			ev.action = engine.ActionDoc(ev.in.Action)
		}
		return ev.action, true
	case VarContext:
		return orEmpty(ev.in.Context), true
	case VarToken:
		return tokenValue(ev.in.Token), true
	case VarData:
		return ev.p.data, true
	case VarNow:
		return types.Timestamp{Time: ev.in.Now}, true
	}
	i, ok := ev.p.varIndex[name]
	if !ok {
		return nil, false
	}
	if ev.vals[i] == nil {
		v := &ev.p.variables[i]
		out, err := ev.run(v.prg)
		if err != nil {
			out = types.WrapErr(fmt.Errorf("variable %s: %w", v.name, err))
		}
		ev.vals[i] = out
	}
	return ev.vals[i], true
}

// Parent implements interpreter.Activation: there is none.
func (ev *evaluation) Parent() interpreter.Activation { return nil }
