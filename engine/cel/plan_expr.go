package cel

import (
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/parser"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
)

// The translation of one partially evaluated expression. A CEL expression
// over a resource is true, false, an error over a missing attribute (the
// rule does not apply) or another error (the module fails, which denies).
// outcome holds the conditions of the first, second and fourth; the third
// is where none holds. They follow cel-go's evaluation: && is false if any
// term is, true if all are, else the error of its first erring term (|| the
// same with true and false swapped); ! keeps an error; c ? x : y is c's
// error, or x's or y's outcome.

type outcome struct {
	t, f, e *plan.Node
}

func constant(t, f, e bool) outcome {
	return outcome{t: plan.Bool(t), f: plan.Bool(f), e: plan.Bool(e)}
}

// planner translates one rule's partially evaluated condition.
type planner struct {
	policy, rule, src string
	info              *celast.SourceInfo
	state             interface {
		Value(int64) (ref.Val, bool)
	}
}

func (pl *planner) unplannable(e celast.Expr, reason string) error {
	expr := pl.src
	if s, err := parser.Unparse(e, pl.info); err == nil {
		expr = s
	}
	return &engine.UnplannableError{Policy: pl.policy, Rule: pl.rule, Expression: expr, Reason: reason}
}

// value is e's recorded value when known (not unknown).
func (pl *planner) value(e celast.Expr) (ref.Val, bool) {
	if e.Kind() == celast.LiteralKind {
		return e.AsLiteral(), true
	}
	v, ok := pl.state.Value(e.ID())
	if !ok || types.IsUnknown(v) {
		return nil, false
	}
	return v, true
}

// knownOutcome is the outcome of a known value used as a condition.
func knownOutcome(v ref.Val) outcome {
	switch x := v.(type) {
	case types.Bool:
		return constant(bool(x), !bool(x), false)
	case *types.Err:
		return constant(false, false, !isMissing(x))
	}
	return constant(false, false, true) // not a bool: no such overload
}

// truth translates a condition.
func (pl *planner) truth(e celast.Expr) (outcome, error) {
	if v, ok := pl.value(e); ok {
		return knownOutcome(v), nil
	}
	if e.Kind() == celast.SelectKind && e.AsSelect().IsTestOnly() {
		return pl.has(e)
	}
	if path, ok := pl.attribute(e); ok && len(path) > 0 {
		// A bare attribute as a condition: a bool, else an error.
		return outcome{t: plan.Compare(plan.OpEq, path, true), f: plan.Compare(plan.OpEq, path, false),
			e: plan.Or(pl.pathFails(path), plan.And(plan.Has(path), plan.Not(plan.Compare(plan.OpType, path, plan.TypeBool))))}, nil
	}
	if e.Kind() != celast.CallKind {
		return outcome{}, pl.unplannable(e, unplannableForm)
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case operators.LogicalAnd, operators.LogicalOr:
		terms := make([]outcome, 0, len(args))
		for _, a := range args {
			v, err := pl.truth(a)
			if err != nil {
				return outcome{}, err
			}
			terms = append(terms, v)
		}
		if call.FunctionName() == operators.LogicalOr {
			// || is && with true and false swapped.
			for i := range terms {
				terms[i].t, terms[i].f = terms[i].f, terms[i].t
			}
			v := conjunction(terms)
			v.t, v.f = v.f, v.t
			return v, nil
		}
		return conjunction(terms), nil
	case operators.LogicalNot:
		v, err := pl.truth(args[0])
		v.t, v.f = v.f, v.t
		return v, err
	case operators.Conditional:
		c, err := pl.truth(args[0])
		if err != nil {
			return outcome{}, err
		}
		x, err := pl.truth(args[1])
		if err != nil {
			return outcome{}, err
		}
		y, err := pl.truth(args[2])
		if err != nil {
			return outcome{}, err
		}
		return choose(c, x, y), nil
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		return pl.compare(e, comparisons[call.FunctionName()], args[0], args[1])
	case operators.In:
		return pl.in(e, args[0], args[1])
	case "startsWith":
		if !call.IsMemberFunction() || len(args) != 1 {
			break
		}
		path, ok := pl.attribute(call.Target())
		prefix, isConst := pl.constant(args[0])
		s, isString := prefix.(string)
		if !ok || len(path) == 0 || !isConst || !isString {
			break
		}
		t := plan.Compare(plan.OpStartsWith, path, s)
		isString2 := plan.Compare(plan.OpType, path, plan.TypeString)
		return outcome{t: t, f: plan.And(isString2, plan.Not(t)),
			e: plan.Or(pl.pathFails(path), plan.And(plan.Has(path), plan.Not(isString2)))}, nil
	}
	return outcome{}, pl.unplannable(e, unplannableForm)
}

const unplannableForm = "it depends on the resource in a way a plan cannot express (a plan compares resource attributes with values known from the request: ==, !=, <, <=, >, >=, in, has, startsWith, type, !, &&, ||, ?:)"

// conjunction is && of terms in order.
func conjunction(terms []outcome) outcome {
	var ts, fs, errs []*plan.Node
	before := plan.True() // every earlier term true
	for _, v := range terms {
		ts, fs = append(ts, v.t), append(fs, v.f)
		errs = append(errs, plan.And(before, v.e))
		before = plan.And(before, v.t)
	}
	f := plan.Or(fs...)
	return outcome{t: plan.And(ts...), f: f, e: plan.And(plan.Not(f), plan.Or(errs...))}
}

// choose is c ? x : y.
func choose(c, x, y outcome) outcome {
	return outcome{
		t: plan.Or(plan.And(c.t, x.t), plan.And(c.f, y.t)),
		f: plan.Or(plan.And(c.t, x.f), plan.And(c.f, y.f)),
		e: plan.Or(c.e, plan.And(c.t, x.e), plan.And(c.f, y.e)),
	}
}

// pathFails is where reading path fails other than as missing: a field of
// a list (cel-go: unsupported index type). A field of an absent value, or
// of a scalar, is the missing-attribute error ("no such key"): the rule
// does not apply.
func (pl *planner) pathFails(path []string) *plan.Node {
	var fails []*plan.Node
	for i := 2; i < len(path); i++ {
		fails = append(fails, plan.Compare(plan.OpType, path[:i], plan.TypeList))
	}
	return plan.Or(fails...)
}

// has is has(resource.<path>).
func (pl *planner) has(e celast.Expr) (outcome, error) {
	sel := e.AsSelect()
	parent, ok := pl.attribute(sel.Operand())
	if !ok {
		return outcome{}, pl.unplannable(e, "has() of something that is not a resource attribute")
	}
	if len(parent) == 0 {
		// has(resource.id), has(resource.properties): always there.
		return constant(true, false, false), nil
	}
	path := append(append([]string{}, parent...), sel.FieldName())
	// has() of a field of a scalar is false; of a field of something
	// absent, the missing-attribute error.
	t := plan.Has(path)
	f := plan.Not(t)
	if len(parent) > 1 {
		// A field of a list is an error (as selecting it is).
		f = plan.And(plan.Has(parent), plan.Not(plan.Compare(plan.OpType, parent, plan.TypeList)), f)
	}
	return outcome{t: t, f: f, e: pl.pathFails(path)}, nil
}

// attribute is the path of e when e reads the resource's unknown part:
// resource.id, resource.properties.a.b, resource.properties["a"]. The path
// is from the resource object (["properties", "a"]); resource itself is [].
func (pl *planner) attribute(e celast.Expr) ([]string, bool) {
	if _, known := pl.value(e); known {
		return nil, false
	}
	switch e.Kind() {
	case celast.IdentKind:
		return []string{}, e.AsIdent() == VarResource
	case celast.SelectKind:
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return nil, false
		}
		base, ok := pl.attribute(sel.Operand())
		return append(base, sel.FieldName()), ok
	case celast.CallKind:
		call := e.AsCall()
		if call.FunctionName() != operators.Index || len(call.Args()) != 2 {
			return nil, false
		}
		base, ok := pl.attribute(call.Args()[0])
		key, isConst := pl.constant(call.Args()[1])
		s, isString := key.(string)
		if !ok || !isConst || !isString {
			return nil, false
		}
		return append(base, s), true
	}
	return nil, false
}

// constant is e's known value as a JSON scalar, a list of them, or a type
// name (for type(x) == string).
func (pl *planner) constant(e celast.Expr) (any, bool) {
	v, ok := pl.value(e)
	if !ok {
		return nil, false
	}
	return native(v)
}

// typeNames maps CEL's type values to the plan's.
var typeNames = map[string]string{"string": plan.TypeString, "bool": plan.TypeBool, "int": plan.TypeInt,
	"double": plan.TypeDouble, "list": plan.TypeList, "map": plan.TypeMap}

// typeName is a type value's plan name.
type typeName string

func native(v ref.Val) (any, bool) {
	switch x := v.(type) {
	case types.String:
		return string(x), true
	case types.Int:
		return int64(x), true
	case types.Double:
		return float64(x), true
	case types.Bool:
		return bool(x), true
	case *types.Type:
		if n, ok := typeNames[x.TypeName()]; ok {
			return typeName(n), true
		}
		return nil, false
	case traits.Lister:
		n, ok := x.Size().(types.Int)
		if !ok {
			return nil, false
		}
		out := make([]any, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			item, ok := native(x.Get(i))
			switch item.(type) {
			case []any, typeName:
				ok = false
			}
			if !ok {
				return nil, false
			}
			out = append(out, item)
		}
		return out, true
	}
	return nil, false
}

// flipped is op with its operands swapped.
var flipped = map[string]string{plan.OpEq: plan.OpEq, plan.OpNe: plan.OpNe, plan.OpLt: plan.OpGt,
	plan.OpLe: plan.OpGe, plan.OpGt: plan.OpLt, plan.OpGe: plan.OpLe}

// negated is the comparison that holds where op's does not, for values
// that compare at all.
var negated = map[string]string{plan.OpEq: plan.OpNe, plan.OpNe: plan.OpEq, plan.OpLt: plan.OpGe,
	plan.OpLe: plan.OpGt, plan.OpGt: plan.OpLe, plan.OpGe: plan.OpLt}

var comparisons = map[string]string{operators.Equals: plan.OpEq, operators.NotEquals: plan.OpNe,
	operators.Less: plan.OpLt, operators.LessEquals: plan.OpLe, operators.Greater: plan.OpGt, operators.GreaterEquals: plan.OpGe}

// compare is a comparison of a resource attribute (or type(attribute), or
// a ?: whose branches are) with a known value; op is the plan's.
func (pl *planner) compare(e celast.Expr, op string, a, b celast.Expr) (outcome, error) {
	_, aKnown := pl.value(a)
	_, bKnown := pl.value(b)
	if aKnown && bKnown {
		x, _ := pl.value(a)
		y, _ := pl.value(b)
		return knownCompare(op, x, y), nil
	}
	if !bKnown && !aKnown {
		return outcome{}, pl.unplannable(e, "it compares two values that depend on the resource")
	}
	if v, err := pl.knownError(a, b); err != nil || v != nil {
		if err != nil {
			return outcome{}, err
		}
		return *v, nil
	}
	if aKnown {
		a, b, op = b, a, flipped[op]
	}
	// (c ? x : y) op v: the comparison in each branch.
	if a.Kind() == celast.CallKind && a.AsCall().FunctionName() == operators.Conditional {
		args := a.AsCall().Args()
		c, err := pl.truth(args[0])
		if err != nil {
			return outcome{}, err
		}
		x, err := pl.compare(e, op, args[1], b)
		if err != nil {
			return outcome{}, err
		}
		y, err := pl.compare(e, op, args[2], b)
		if err != nil {
			return outcome{}, err
		}
		return choose(c, x, y), nil
	}
	value, isConst := pl.constant(b)
	if !isConst {
		return outcome{}, pl.unplannable(e, "it compares a resource attribute with a value that is not a string, number, bool or type")
	}
	// type(attribute) == string
	if a.Kind() == celast.CallKind && a.AsCall().FunctionName() == "type" && len(a.AsCall().Args()) == 1 {
		path, ok := pl.attribute(a.AsCall().Args()[0])
		tn, isType := value.(typeName)
		if !ok || len(path) == 0 || !isType || (op != plan.OpEq && op != plan.OpNe) {
			return outcome{}, pl.unplannable(e, "type() is planned only as type(attribute) == or != a type")
		}
		is := plan.Compare(plan.OpType, path, string(tn))
		isNot := plan.And(plan.Has(path), plan.Not(is))
		if op == plan.OpNe {
			is, isNot = isNot, is
		}
		return outcome{t: is, f: isNot, e: pl.pathFails(path)}, nil
	}
	path, ok := pl.attribute(a)
	if !ok || len(path) == 0 {
		return outcome{}, pl.unplannable(e, "it compares something other than a resource attribute")
	}
	var orderable *plan.Node // the attribute's types an ordering accepts
	switch v := value.(type) {
	case []any:
		return outcome{}, pl.unplannable(e, "it compares a resource attribute with a list")
	case typeName:
		return outcome{}, pl.unplannable(e, "it compares a resource attribute with a type")
	case string:
		orderable = plan.Compare(plan.OpType, path, plan.TypeString)
	case bool:
		if op != plan.OpEq && op != plan.OpNe {
			return outcome{}, pl.unplannable(e, "it orders booleans")
		}
	default:
		_ = v
		orderable = plan.Or(plan.Compare(plan.OpType, path, plan.TypeInt), plan.Compare(plan.OpType, path, plan.TypeDouble))
	}
	fails := pl.pathFails(path)
	if op != plan.OpEq && op != plan.OpNe {
		// Ordering values of other types has no overload: an error.
		fails = plan.Or(fails, plan.And(plan.Has(path), plan.Not(orderable)))
	}
	return outcome{t: plan.Compare(op, path, value), f: plan.Compare(negated[op], path, value), e: fails}, nil
}

// knownError is the outcome of a binary operation (==, <, in...) of a and
// b, one of them known to be an error: cel-go evaluates the left operand
// first and answers its error, so an error on the right counts only where
// the left one (a resource attribute) is there. Nil when neither is an
// error.
func (pl *planner) knownError(a, b celast.Expr) (*outcome, error) {
	if v, ok := pl.value(a); ok {
		if err, isErr := v.(*types.Err); isErr {
			o := constant(false, false, !isMissing(err))
			return &o, nil
		}
	}
	v, ok := pl.value(b)
	err, isErr := v.(*types.Err)
	if !ok || !isErr {
		return nil, nil
	}
	if isMissing(err) {
		o := constant(false, false, false)
		return &o, nil
	}
	path, isAttr := pl.attribute(a)
	if !isAttr || len(path) == 0 {
		return nil, pl.unplannable(a, "it depends on the resource in a way a plan cannot express")
	}
	o := outcome{t: plan.False(), f: plan.False(), e: plan.Has(path)}
	return &o, nil
}

// knownCompare evaluates a comparison of two known values.
func knownCompare(op string, a, b ref.Val) outcome {
	for _, v := range []ref.Val{a, b} {
		if err, isErr := v.(*types.Err); isErr {
			return constant(false, false, !isMissing(err))
		}
	}
	x, ok1 := native(a)
	y, ok2 := native(b)
	if !ok1 || !ok2 {
		return constant(false, false, true)
	}
	holds := plan.Compare(op, []string{"v"}, y).Eval(map[string]any{"v": x})
	fails := plan.Compare(negated[op], []string{"v"}, y).Eval(map[string]any{"v": x})
	return constant(holds, fails, false)
}

// in is a in b, one side a resource attribute.
func (pl *planner) in(e, a, b celast.Expr) (outcome, error) {
	if v, err := pl.knownError(a, b); err != nil || v != nil {
		if err != nil {
			return outcome{}, err
		}
		return *v, nil
	}
	if path, ok := pl.attribute(a); ok && len(path) > 0 {
		values, isConst := pl.constant(b)
		list, isList := values.([]any)
		if !isConst || !isList {
			return outcome{}, pl.unplannable(e, "a resource attribute is planned only as in a list known from the request")
		}
		t := plan.In(path, list)
		return outcome{t: t, f: plan.And(plan.Has(path), plan.Not(t)), e: pl.pathFails(path)}, nil
	}
	if path, ok := pl.attribute(b); ok && len(path) > 0 {
		value, isConst := pl.constant(a)
		if !isConst {
			return outcome{}, pl.unplannable(e, "it tests membership of a value that depends on the resource")
		}
		switch value.(type) {
		case []any, typeName:
			return outcome{}, pl.unplannable(e, "it tests membership of a list or a type")
		}
		isList := plan.Compare(plan.OpType, path, plan.TypeList)
		isMap := plan.Compare(plan.OpType, path, plan.TypeMap)
		t := plan.Compare(plan.OpContains, path, value)
		f := plan.And(isList, plan.Not(t))
		if key, isString := value.(string); isString {
			// in a map: one of its keys.
			keyed := append(append([]string{}, path...), key)
			t = plan.Or(t, plan.And(isMap, plan.Has(keyed)))
			f = plan.Or(f, plan.And(isMap, plan.Not(plan.Has(keyed))))
		} else {
			f = plan.Or(f, isMap)
		}
		return outcome{t: t, f: f, e: plan.Or(pl.pathFails(path), plan.And(plan.Has(path), plan.Not(isList), plan.Not(isMap)))}, nil
	}
	return outcome{}, pl.unplannable(e, "it tests membership with both sides depending on the resource")
}
