// Package plan is the engine-neutral form of a query plan: the condition
// over a resource's attributes under which a subject may do an action on
// resources of one type, as POST /v1/plan answers it. Engines produce it
// (engine/cel from cel-go's residual ASTs, engine/rego from OPA's partial
// evaluation); applications turn it into a database filter (the client
// package's SQL translator) or evaluate it (Eval).
//
// A condition is a tree of Nodes, two-valued: every node is true or false
// for a resource. A comparison over an attribute the resource does not have
// (absent or null) is false, whatever the operator ("ne" included), as a
// policy condition that reads a missing attribute does not apply; "not" is
// classical negation of its argument.
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Kinds of plan.
const (
	// AlwaysAllowed: every resource of the type is allowed.
	AlwaysAllowed = "always_allowed"
	// AlwaysDenied: no resource of the type is allowed.
	AlwaysDenied = "always_denied"
	// Conditional: the resources for which Condition holds are allowed.
	Conditional = "conditional"
)

// Operators of a Node.
const (
	OpAnd = "and" // all of Args (true for none)
	OpOr  = "or"  // any of Args (false for none)
	OpNot = "not" // not Args[0]
	OpEq  = "eq"  // the attribute at Path equals Value
	OpNe  = "ne"  // the attribute at Path is present and differs from Value
	OpLt  = "lt"  // attribute < Value (numbers, or strings by bytes)
	OpLe  = "le"
	OpGt  = "gt"
	OpGe  = "ge"
	// OpIn: the attribute equals one of Values.
	OpIn = "in"
	// OpContains: the attribute is a list that holds Value.
	OpContains = "contains"
	// OpHas: the attribute is present (and not null).
	OpHas = "has"
	// OpStartsWith: the attribute is a string that starts with Value.
	OpStartsWith = "starts_with"
	// OpType: the attribute is of type Value, one of the Type* names.
	OpType = "type"
	// OpTrue and OpFalse are the constants.
	OpTrue  = "true"
	OpFalse = "false"
)

// Types an OpType node names. JSON numbers written without a fraction or
// exponent are ints, others doubles (as policies see them).
const (
	TypeString = "string"
	TypeBool   = "bool"
	TypeInt    = "int"
	TypeDouble = "double"
	TypeList   = "list"
	TypeMap    = "map"
)

// Node is one node of a condition. Path names a resource attribute from
// the resource object ({"type", "id", "properties"}): ["id"], or
// ["properties", "owner"], ["properties", "address", "city"]. Values are
// JSON scalars: strings, numbers (float64 once decoded), booleans.
type Node struct {
	Op     string   `json:"op"`
	Args   []*Node  `json:"args,omitempty"`
	Path   []string `json:"path,omitempty"`
	Value  any      `json:"value,omitzero"`
	Values []any    `json:"values,omitempty"`
}

// Constructors. And and Or simplify: constants fold away and nested nodes of
// the same operator are flattened.

// True is the constant true.
func True() *Node { return &Node{Op: OpTrue} }

// False is the constant false.
func False() *Node { return &Node{Op: OpFalse} }

// Bool is the constant b.
func Bool(b bool) *Node {
	if b {
		return True()
	}
	return False()
}

// And is the conjunction of args.
func And(args ...*Node) *Node { return junction(OpAnd, args) }

// Or is the disjunction of args.
func Or(args ...*Node) *Node { return junction(OpOr, args) }

func junction(op string, args []*Node) *Node {
	unit, zero := OpTrue, OpFalse // and: true is the unit, false absorbs
	if op == OpOr {
		unit, zero = OpFalse, OpTrue
	}
	var out []*Node
	for _, a := range args {
		switch {
		case a.Op == unit:
		case a.Op == zero:
			return &Node{Op: zero}
		case a.Op == op:
			out = append(out, a.Args...)
		default:
			out = append(out, a)
		}
	}
	out = prune(op, out)
	switch len(out) {
	case 0:
		return &Node{Op: unit}
	case 1:
		return out[0]
	}
	return &Node{Op: op, Args: out}
}

// prune drops the arguments of an and/or that change nothing: repeats, and
// in an and, has(p) beside a comparison of p (which holds only where p is
// there). The rest keep their order.
func prune(op string, args []*Node) []*Node {
	if len(args) < 2 {
		return args
	}
	seen := make(map[string]bool, len(args))
	compared := map[string]bool{}
	if op == OpAnd {
		for _, a := range args {
			switch a.Op {
			case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpIn, OpContains, OpStartsWith, OpType:
				compared[pathKey(a.Path)] = true
			}
		}
	}
	out := args[:0:0]
	for _, a := range args {
		k := a.String()
		if seen[k] || (a.Op == OpHas && compared[pathKey(a.Path)]) {
			continue
		}
		seen[k] = true
		out = append(out, a)
	}
	return out
}

// pathKey is a path as a map key.
func pathKey(p []string) string { return strings.Join(p, "\x00") }

// Not is the negation of a: constants fold, a double negation cancels.
func Not(a *Node) *Node {
	switch a.Op {
	case OpTrue:
		return False()
	case OpFalse:
		return True()
	case OpNot:
		if len(a.Args) == 1 {
			return a.Args[0]
		}
	}
	return &Node{Op: OpNot, Args: []*Node{a}}
}

// Compare is the comparison op (eq, ne, lt, le, gt, ge, contains,
// starts_with) of the attribute at path with value.
func Compare(op string, path []string, value any) *Node {
	return &Node{Op: op, Path: slices.Clone(path), Value: value}
}

// In is the attribute at path equal to one of values (false for none).
func In(path []string, values []any) *Node {
	if len(values) == 0 {
		return False()
	}
	return &Node{Op: OpIn, Path: slices.Clone(path), Values: slices.Clone(values)}
}

// Has is the attribute at path present.
func Has(path []string) *Node { return &Node{Op: OpHas, Path: slices.Clone(path)} }

// Plan is the answer of a query plan.
type Plan struct {
	// Kind is AlwaysAllowed, AlwaysDenied or Conditional.
	Kind string `json:"kind"`
	// Condition is set when Kind is Conditional.
	Condition *Node `json:"condition,omitempty"`
}

// FromCondition is the plan of condition c: constants become the
// unconditional kinds.
func FromCondition(c *Node) Plan {
	switch c.Op {
	case OpTrue:
		return Plan{Kind: AlwaysAllowed}
	case OpFalse:
		return Plan{Kind: AlwaysDenied}
	}
	return Plan{Kind: Conditional, Condition: c}
}

// String is the condition in a compact, readable form, for messages and
// tests: (properties.owner == "alice" || properties.public == true).
func (n *Node) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

var symbols = map[string]string{OpEq: "==", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">="}

func (n *Node) write(b *strings.Builder) {
	lit := func(v any) string { out, _ := json.Marshal(v); return string(out) }
	path := strings.Join(n.Path, ".")
	switch n.Op {
	case OpTrue, OpFalse:
		b.WriteString(n.Op)
	case OpAnd, OpOr:
		sep := " && "
		if n.Op == OpOr {
			sep = " || "
		}
		b.WriteByte('(')
		for i, a := range n.Args {
			if i > 0 {
				b.WriteString(sep)
			}
			a.write(b)
		}
		b.WriteByte(')')
	case OpNot:
		if len(n.Args) != 1 {
			b.WriteString("!()")
			break
		}
		switch a := n.Args[0]; a.Op {
		case OpAnd, OpOr, OpTrue, OpFalse, OpNot, OpHas:
			b.WriteString("!")
			a.write(b)
		default:
			b.WriteString("!(")
			a.write(b)
			b.WriteByte(')')
		}
	case OpIn:
		fmt.Fprintf(b, "%s in %s", path, lit(n.Values))
	case OpContains:
		fmt.Fprintf(b, "%s contains %s", path, lit(n.Value))
	case OpHas:
		fmt.Fprintf(b, "has(%s)", path)
	case OpStartsWith:
		fmt.Fprintf(b, "%s.startsWith(%s)", path, lit(n.Value))
	case OpType:
		fmt.Fprintf(b, "type(%s) == %v", path, n.Value)
	default:
		fmt.Fprintf(b, "%s %s %s", path, symbols[n.Op], lit(n.Value))
	}
}

// maxDepth bounds the nesting Validate accepts.
const maxDepth = 64

// Validate checks a condition received from elsewhere (a decoded answer):
// known operators, the arguments and fields each needs, scalar values, and
// a bounded depth. Translators call it before they read a node.
func (n *Node) Validate() error { return n.validate(0) }

func (n *Node) validate(depth int) error {
	if n == nil {
		return errors.New("plan: nil node")
	}
	if depth > maxDepth {
		return fmt.Errorf("plan: the condition nests deeper than %d", maxDepth)
	}
	switch n.Op {
	case OpTrue, OpFalse:
		return nil
	case OpAnd, OpOr, OpNot:
		if n.Op == OpNot && len(n.Args) != 1 {
			return errors.New("plan: not takes one argument")
		}
		for _, a := range n.Args {
			if err := a.validate(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpContains, OpStartsWith, OpIn, OpHas, OpType:
	default:
		return fmt.Errorf("plan: unknown operator %q", n.Op)
	}
	if len(n.Path) == 0 || slices.Contains(n.Path, "") {
		return fmt.Errorf("plan: %s needs a path of non-empty names", n.Op)
	}
	switch n.Op {
	case OpHas:
		return nil
	case OpIn:
		for _, v := range n.Values {
			if !scalar(v) {
				return fmt.Errorf("plan: in %s: values must be strings, numbers or booleans", strings.Join(n.Path, "."))
			}
		}
		return nil
	case OpStartsWith:
		if _, ok := n.Value.(string); !ok {
			return fmt.Errorf("plan: starts_with %s: the value must be a string", strings.Join(n.Path, "."))
		}
		return nil
	case OpType:
		if t, _ := n.Value.(string); !slices.Contains([]string{TypeString, TypeBool, TypeInt, TypeDouble, TypeList, TypeMap}, t) {
			return fmt.Errorf("plan: type %s: unknown type %v", strings.Join(n.Path, "."), n.Value)
		}
		return nil
	}
	if !scalar(n.Value) {
		return fmt.Errorf("plan: %s %s: the value must be a string, a number or a boolean", n.Op, strings.Join(n.Path, "."))
	}
	return nil
}

func scalar(v any) bool {
	switch v.(type) {
	case string, bool, float64, float32, int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8, json.Number:
		return true
	}
	return false
}

// Eval reports whether the condition holds for resource (the resource
// object: {"type", "id", "properties": {...}}), with the semantics of the
// package documentation. It is the generic Go predicate. Numbers may be of
// any Go numeric type or json.Number (decode with UseNumber to keep ints
// apart from doubles: a float64 is a double). A node that does not
// Validate is false (a nil node, a "not" without its argument) rather
// than a panic.
func (n *Node) Eval(resource map[string]any) bool {
	if n == nil {
		return false
	}
	switch n.Op {
	case OpTrue:
		return true
	case OpFalse:
		return false
	case OpAnd:
		for _, a := range n.Args {
			if !a.Eval(resource) {
				return false
			}
		}
		return true
	case OpOr:
		for _, a := range n.Args {
			if a.Eval(resource) {
				return true
			}
		}
		return false
	case OpNot:
		return len(n.Args) == 1 && !n.Args[0].Eval(resource)
	}
	v, ok := Lookup(resource, n.Path)
	if !ok || v == nil {
		return false
	}
	switch n.Op {
	case OpHas:
		return true
	case OpEq:
		return Equal(v, n.Value)
	case OpNe:
		return !Equal(v, n.Value)
	case OpIn:
		return slices.ContainsFunc(n.Values, func(w any) bool { return Equal(v, w) })
	case OpContains:
		l, ok := v.([]any)
		return ok && slices.ContainsFunc(l, func(w any) bool { return Equal(w, n.Value) })
	case OpStartsWith:
		s, ok := v.(string)
		p, _ := n.Value.(string)
		return ok && strings.HasPrefix(s, p)
	case OpType:
		return TypeOf(v) == n.Value
	}
	c, ok := compare(v, n.Value)
	if !ok {
		return false
	}
	switch n.Op {
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	}
	return false
}

// Lookup is the value at path in resource.
func Lookup(resource map[string]any, path []string) (any, bool) {
	var cur any = resource
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Equal is equality of JSON scalars: numbers by value whatever their Go
// type (compared as float64), others by type and value. A list or a map
// equals nothing.
func Equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a.(type) {
	case []any, map[string]any: // == would panic on two of them
		return false
	}
	return a == b
}

// compare orders two numbers or two strings.
func compare(a, b any) (int, bool) {
	if x, ok := number(a); ok {
		y, ok := number(b)
		if !ok || math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	s, ok1 := a.(string)
	t, ok2 := b.(string)
	if !ok1 || !ok2 {
		return 0, false
	}
	return strings.Compare(s, t), true
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// TypeOf is the Type* name of a JSON value ("" for null and others).
func TypeOf(v any) string {
	switch x := v.(type) {
	case string:
		return TypeString
	case bool:
		return TypeBool
	case int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8:
		return TypeInt
	case float64, float32:
		return TypeDouble
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return TypeDouble
		}
		return TypeInt
	case []any:
		return TypeList
	case map[string]any:
		return TypeMap
	}
	return ""
}
