package cel

import (
	"math"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"github.com/verdictpdp/verdict/engine"
)

// Cost tracking is what keeps a CEL expression from running away, and it
// costs: on the RBAC example about a third of an evaluation's time and 30
// of its 86 allocations. Most conditions cannot run away: compared with
// inputs of a known size, their worst case stays below the cost limit. For
// those, Compile also plans an untracked program, used only for an input
// whose SizeBound is known and within untrackedBound; everything else (an
// unknown size, an expression whose worst case is over the limit or cannot
// be bounded) keeps the tracked one.

// untrackedBound is the input size for which untracked programs are
// planned: the default body limit of the decision routes.
const untrackedBound = 1 << 20

// smallInput reports whether in is known to be small enough for the
// untracked programs.
func smallInput(in *engine.Input) bool {
	return in.SizeBound > 0 && in.SizeBound <= untrackedBound
}

// boundedSizes is cel-go's cost estimator told how large values can be:
// anything reached from the input is at most input long (a string in
// bytes, a list or map in members), anything reached from data at most
// data long; everything else (variables, results of functions) is left to
// cel-go, which takes it as unbounded unless the expression itself says.
type boundedSizes struct {
	input, data uint64
}

func (b boundedSizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	var root string
	if p := n.Path(); len(p) > 0 {
		root = p[0]
	} else if e := n.Expr(); e != nil {
		root = rootIdent(e)
	}
	var max uint64
	switch root {
	case VarSubject, VarAction, VarResource, VarContext, VarToken:
		max = b.input
	case VarData:
		max = b.data
	default:
		return nil
	}
	return &cost.SizeEstimate{Min: 0, Max: max}
}

func (boundedSizes) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// rootIdent returns the variable a chain of field selections and indexes
// starts from ("resource" for resource.properties["owner"]), or "" when
// the chain starts from anything else (a call, a literal).
func rootIdent(e ast.Expr) string {
	for {
		switch e.Kind() {
		case ast.IdentKind:
			return e.AsIdent()
		case ast.SelectKind:
			e = e.AsSelect().Operand()
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != "_[_]" || len(c.Args()) != 2 {
				return ""
			}
			e = c.Args()[0]
		default:
			return ""
		}
	}
}

// largest returns the length of the longest string and the member count of
// the largest list or map in v, a JSON-shaped document; a value of any
// other shape makes it unbounded.
func largest(v any) uint64 {
	var n uint64
	switch v := v.(type) {
	case nil, bool, float64, int64, uint64, int:
	case string:
		n = uint64(len(v))
	case []any:
		n = uint64(len(v))
		for _, e := range v {
			n = max(n, largest(e))
		}
	case map[string]any:
		n = uint64(len(v))
		for k, e := range v {
			n = max(n, uint64(len(k)), largest(e))
		}
	default:
		return math.MaxUint64
	}
	return n
}
