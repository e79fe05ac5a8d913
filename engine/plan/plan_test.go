package plan

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

var (
	owner  = []string{"properties", "owner"}
	level  = []string{"properties", "level"}
	tags   = []string{"properties", "tags"}
	public = []string{"properties", "public"}
	city   = []string{"properties", "address", "city"}
)

func TestConstructors(t *testing.T) {
	a := Compare(OpEq, owner, "alice")
	b := Compare(OpGt, level, 2.0)
	c := Has(public)
	cases := []struct {
		name string
		got  *Node
		want string
	}{
		{"True", True(), "true"},
		{"False", False(), "false"},
		{"Bool(true)", Bool(true), "true"},
		{"Bool(false)", Bool(false), "false"},
		{"And()", And(), "true"},
		{"Or()", Or(), "false"},
		{"And(a)", And(a), `properties.owner == "alice"`},
		{"And(true, a, true)", And(True(), a, True()), `properties.owner == "alice"`},
		{"And(a, false, b)", And(a, False(), b), "false"},
		{"Or(a, true)", Or(a, True()), "true"},
		{"Or(false, a, false)", Or(False(), a, False()), `properties.owner == "alice"`},
		{"And flattens", And(a, And(b, c)), `(properties.owner == "alice" && properties.level > 2 && has(properties.public))`},
		{"Or flattens", Or(Or(a, b), c), `(properties.owner == "alice" || properties.level > 2 || has(properties.public))`},
		{"And keeps Or", And(a, Or(b, c)), `(properties.owner == "alice" && (properties.level > 2 || has(properties.public)))`},
		{"Not(true)", Not(True()), "false"},
		{"Not(false)", Not(False()), "true"},
		{"Not(a)", Not(a), `!(properties.owner == "alice")`},
		{"Not(Not(a))", Not(Not(a)), `properties.owner == "alice"`},
		{"In()", In(owner, nil), "false"},
		{"In", In(owner, []any{"a", "b"}), `properties.owner in ["a","b"]`},
	}
	for _, tc := range cases {
		if got := tc.got.String(); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, got, tc.want)
		}
		if err := tc.got.Validate(); err != nil {
			t.Errorf("%s does not validate: %v", tc.name, err)
		}
	}

	// A malformed "not" (no argument) is wrapped, not read past its end.
	bad := &Node{Op: OpNot}
	if got := Not(bad); len(got.Args) != 1 || got.Args[0] != bad {
		t.Errorf("Not(malformed not) = %v", got)
	}

	// The constructors copy their slices.
	path := []string{"properties", "owner"}
	vals := []any{"a"}
	n, h, in := Compare(OpEq, path, "x"), Has(path), In(path, vals)
	path[1], vals[0] = "changed", "changed"
	if n.Path[1] != "owner" || h.Path[1] != "owner" || in.Path[1] != "owner" || in.Values[0] != "a" {
		t.Errorf("a constructor kept the caller's slice: %v %v %v", n, h, in)
	}
}

func TestFromCondition(t *testing.T) {
	if p := FromCondition(True()); p.Kind != AlwaysAllowed || p.Condition != nil {
		t.Errorf("true: %+v", p)
	}
	if p := FromCondition(False()); p.Kind != AlwaysDenied || p.Condition != nil {
		t.Errorf("false: %+v", p)
	}
	c := Has(owner)
	if p := FromCondition(c); p.Kind != Conditional || p.Condition != c {
		t.Errorf("has: %+v", p)
	}
}

func TestString(t *testing.T) {
	cases := []struct {
		n    *Node
		want string
	}{
		{Compare(OpEq, owner, "a"), `properties.owner == "a"`},
		{Compare(OpNe, owner, "a"), `properties.owner != "a"`},
		{Compare(OpLt, level, 1), `properties.level < 1`},
		{Compare(OpLe, level, 1.5), `properties.level <= 1.5`},
		{Compare(OpGt, level, json.Number("2")), `properties.level > 2`},
		{Compare(OpGe, level, -1), `properties.level >= -1`},
		{Compare(OpContains, tags, "x"), `properties.tags contains "x"`},
		{Compare(OpStartsWith, owner, "al"), `properties.owner.startsWith("al")`},
		{&Node{Op: OpType, Path: owner, Value: TypeString}, `type(properties.owner) == string`},
		{Has(city), `has(properties.address.city)`},
		{In([]string{"id"}, []any{"1", 2, true}), `id in ["1",2,true]`},
		{Not(Or(Compare(OpEq, public, true), Compare(OpEq, public, false))), `!(properties.public == true || properties.public == false)`},
	}
	for _, tc := range cases {
		if got := tc.n.String(); got != tc.want {
			t.Errorf("String = %s, want %s", got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	deep := Has(owner)
	for range maxDepth + 1 {
		deep = &Node{Op: OpNot, Args: []*Node{deep}}
	}
	okDeep := Has(owner)
	for range maxDepth {
		okDeep = &Node{Op: OpNot, Args: []*Node{okDeep}}
	}
	cases := []struct {
		name string
		n    *Node
		err  string // "" for valid
	}{
		{"nil", nil, "nil node"},
		{"true", True(), ""},
		{"empty and", &Node{Op: OpAnd}, ""},
		{"empty or", &Node{Op: OpOr}, ""},
		{"eq", Compare(OpEq, owner, "a"), ""},
		{"eq false", Compare(OpEq, public, false), ""},
		{"eq zero", Compare(OpEq, level, 0), ""},
		{"eq every number type", And(
			Compare(OpEq, level, int8(1)), Compare(OpEq, level, int16(1)), Compare(OpEq, level, int32(1)),
			Compare(OpEq, level, int64(1)), Compare(OpEq, level, uint(1)), Compare(OpEq, level, uint8(1)),
			Compare(OpEq, level, uint16(1)), Compare(OpEq, level, uint32(1)), Compare(OpEq, level, uint64(1)),
			Compare(OpEq, level, float32(1)), Compare(OpEq, level, json.Number("1"))), ""},
		{"in", In(owner, []any{"a", 1.0, true}), ""},
		{"empty in", &Node{Op: OpIn, Path: owner}, ""},
		{"has", Has(owner), ""},
		{"type", &Node{Op: OpType, Path: owner, Value: TypeMap}, ""},
		{"starts_with", Compare(OpStartsWith, owner, ""), ""},
		{"deep enough", okDeep, ""},
		{"unknown op", &Node{Op: "like", Path: owner, Value: "a"}, `unknown operator "like"`},
		{"empty op", &Node{}, `unknown operator ""`},
		{"not without arg", &Node{Op: OpNot}, "not takes one argument"},
		{"not with two", &Node{Op: OpNot, Args: []*Node{True(), True()}}, "not takes one argument"},
		{"nil arg", &Node{Op: OpAnd, Args: []*Node{True(), nil}}, "nil node"},
		{"bad arg deep", And(Has(owner), Or(Has(level), &Node{Op: "x"})), `unknown operator "x"`},
		{"too deep", deep, "nests deeper than 64"},
		{"no path", &Node{Op: OpEq, Value: "a"}, "eq needs a path"},
		{"empty segment", &Node{Op: OpHas, Path: []string{"properties", ""}}, "has needs a path of non-empty names"},
		{"eq without value", &Node{Op: OpEq, Path: owner}, "eq properties.owner: the value must be"},
		{"eq list", Compare(OpEq, owner, []any{"a"}), "the value must be"},
		{"eq map", Compare(OpNe, owner, map[string]any{}), "the value must be"},
		{"contains list", Compare(OpContains, tags, []any{"a"}), "the value must be"},
		{"lt without value", &Node{Op: OpLt, Path: level}, "lt properties.level"},
		{"in with a list", In(owner, []any{"a", []any{"b"}}), "in properties.owner: values must be"},
		{"in with null", In(owner, []any{nil}), "values must be"},
		{"starts_with number", Compare(OpStartsWith, owner, 1), "starts_with properties.owner: the value must be a string"},
		{"type unknown", &Node{Op: OpType, Path: owner, Value: "number"}, "unknown type number"},
		{"type not a string", &Node{Op: OpType, Path: owner, Value: 1}, "unknown type 1"},
	}
	for _, tc := range cases {
		err := tc.n.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.err)
		}
	}
}

func TestEval(t *testing.T) {
	res := map[string]any{
		"type": "document",
		"id":   "42",
		"properties": map[string]any{
			"owner":   "alice",
			"level":   json.Number("3"),
			"score":   2.5,
			"count":   int64(7),
			"small":   uint8(4),
			"public":  false,
			"nothing": nil,
			"tags":    []any{"red", json.Number("1"), true, []any{"x"}},
			"empty":   []any{},
			"address": map[string]any{"city": "Paris"},
			"path":    "/a/b_c%d",
			"upper":   "Alice",
			"intlike": json.Number("1.0"),
			"exp":     json.Number("1e3"),
		},
	}
	p := func(names ...string) []string { return append([]string{"properties"}, names...) }
	cases := []struct {
		n    *Node
		want bool
	}{
		// constants and connectives
		{True(), true},
		{False(), false},
		{&Node{Op: OpAnd}, true},
		{&Node{Op: OpOr}, false},
		{&Node{Op: OpAnd, Args: []*Node{True(), False()}}, false},
		{&Node{Op: OpOr, Args: []*Node{False(), True()}}, true},
		// not is classical negation: of a comparison on a missing attribute too
		{&Node{Op: OpNot, Args: []*Node{Compare(OpEq, p("missing"), "x")}}, true},
		{&Node{Op: OpNot, Args: []*Node{Compare(OpNe, p("missing"), "x")}}, true},
		{&Node{Op: OpNot, Args: []*Node{Compare(OpEq, p("owner"), "alice")}}, false},

		// eq / ne
		{Compare(OpEq, []string{"id"}, "42"), true},
		{Compare(OpEq, []string{"type"}, "document"), true},
		{Compare(OpEq, p("owner"), "alice"), true},
		{Compare(OpEq, p("owner"), "Alice"), false},
		{Compare(OpEq, p("upper"), "Alice"), true},
		{Compare(OpNe, p("owner"), "bob"), true},
		{Compare(OpNe, p("owner"), "alice"), false},
		{Compare(OpNe, p("owner"), 3), true}, // present, and a string is no number
		{Compare(OpEq, p("level"), 3), true},
		{Compare(OpEq, p("level"), 3.0), true},
		{Compare(OpEq, p("level"), "3"), false},
		{Compare(OpEq, p("count"), json.Number("7")), true},
		{Compare(OpEq, p("small"), 4), true},
		{Compare(OpEq, p("score"), 2.5), true},
		{Compare(OpEq, p("public"), false), true},
		{Compare(OpEq, p("public"), 0), false},
		{Compare(OpNe, p("public"), true), true},
		{Compare(OpEq, p("tags"), "red"), false}, // a list equals no scalar
		{Compare(OpNe, p("tags"), "red"), true},
		{Compare(OpEq, p("address"), "Paris"), false},
		{Compare(OpEq, p("address", "city"), "Paris"), true},
		{Compare(OpEq, p("owner", "city"), "alice"), false}, // a path through a scalar
		// absent and null: every comparison is false, ne included
		{Compare(OpEq, p("missing"), "x"), false},
		{Compare(OpNe, p("missing"), "x"), false},
		{Compare(OpNe, p("nothing"), "x"), false},
		{Compare(OpLt, p("nothing"), 1), false},
		{Has(p("nothing")), false},
		{Has(p("missing")), false},
		{Has(p("owner")), true},
		{Has(p("empty")), true},
		{&Node{Op: OpType, Path: p("nothing"), Value: TypeString}, false},

		// ordering: numbers by value, strings by bytes, nothing else
		{Compare(OpLt, p("level"), 4), true},
		{Compare(OpLt, p("level"), 3), false},
		{Compare(OpLe, p("level"), 3), true},
		{Compare(OpGt, p("score"), 2), true},
		{Compare(OpGe, p("score"), 2.5), true},
		{Compare(OpGe, p("count"), uint64(8)), false},
		{Compare(OpLt, p("level"), "4"), false},
		{Compare(OpGt, p("owner"), 1), false},
		{Compare(OpLt, p("upper"), "alice"), true}, // 'A' < 'a' in bytes
		{Compare(OpGt, p("owner"), "alic"), true},
		{Compare(OpLt, p("owner"), "alice"), false},
		{Compare(OpLe, p("owner"), "alice"), true},
		{Compare(OpLt, p("public"), true), false}, // booleans have no order
		{Compare(OpGt, p("tags"), 0), false},
		{Compare(OpLt, p("score"), math.NaN()), false},
		{Compare(OpGe, p("score"), math.NaN()), false},
		{Compare(OpEq, p("score"), math.NaN()), false},
		{Compare(OpNe, p("score"), math.NaN()), true},
		{Compare(OpLt, p("score"), math.Inf(1)), true},

		// in
		{In(p("owner"), []any{"bob", "alice"}), true},
		{In(p("owner"), []any{"bob"}), false},
		{&Node{Op: OpIn, Path: p("owner")}, false},
		{In(p("level"), []any{"3", 3.0}), true},
		{In(p("level"), []any{"3"}), false},
		{In(p("missing"), []any{"x"}), false},

		// contains: lists only, elements by Equal
		{Compare(OpContains, p("tags"), "red"), true},
		{Compare(OpContains, p("tags"), 1), true},
		{Compare(OpContains, p("tags"), "1"), false},
		{Compare(OpContains, p("tags"), true), true},
		{Compare(OpContains, p("tags"), "x"), false}, // not inside a nested list
		{Compare(OpContains, p("empty"), "red"), false},
		{Compare(OpContains, p("owner"), "alice"), false}, // a string is no list
		{Compare(OpContains, p("missing"), "red"), false},

		// starts_with: strings only, case-sensitive, no wildcards
		{Compare(OpStartsWith, p("owner"), "al"), true},
		{Compare(OpStartsWith, p("owner"), ""), true},
		{Compare(OpStartsWith, p("owner"), "Al"), false},
		{Compare(OpStartsWith, p("upper"), "Al"), true},
		{Compare(OpStartsWith, p("path"), "/a/b_c%"), true},
		{Compare(OpStartsWith, p("path"), "/a/b%"), false},
		{Compare(OpStartsWith, p("path"), "/a/_"), false},
		{Compare(OpStartsWith, p("level"), "3"), false},
		{Compare(OpStartsWith, p("tags"), "red"), false},

		// type
		{&Node{Op: OpType, Path: p("owner"), Value: TypeString}, true},
		{&Node{Op: OpType, Path: p("owner"), Value: TypeInt}, false},
		{&Node{Op: OpType, Path: p("level"), Value: TypeInt}, true},
		{&Node{Op: OpType, Path: p("level"), Value: TypeDouble}, false},
		{&Node{Op: OpType, Path: p("intlike"), Value: TypeDouble}, true},
		{&Node{Op: OpType, Path: p("exp"), Value: TypeDouble}, true},
		{&Node{Op: OpType, Path: p("count"), Value: TypeInt}, true},
		{&Node{Op: OpType, Path: p("small"), Value: TypeInt}, true},
		{&Node{Op: OpType, Path: p("score"), Value: TypeDouble}, true},
		{&Node{Op: OpType, Path: p("public"), Value: TypeBool}, true},
		{&Node{Op: OpType, Path: p("tags"), Value: TypeList}, true},
		{&Node{Op: OpType, Path: p("address"), Value: TypeMap}, true},
		{&Node{Op: OpType, Path: p("address"), Value: TypeList}, false},

		// a node that does not validate is false, not a panic
		{nil, false},
		{&Node{Op: OpNot}, false},
		{&Node{Op: "like", Path: p("owner"), Value: "a"}, false},
		{Compare(OpEq, p("tags"), []any{"red"}), false},
	}
	for _, tc := range cases {
		if got := tc.n.Eval(res); got != tc.want {
			t.Errorf("%v = %v, want %v", tc.n, got, tc.want)
		}
	}
	if Compare(OpEq, []string{"id"}, "42").Eval(nil) {
		t.Error("a comparison is true on a nil resource")
	}
}

// A condition survives JSON both ways: false and 0 values are kept, and a
// decoder with UseNumber gives values that Validate and Eval as before.
func TestJSONRoundTrip(t *testing.T) {
	c := And(
		Compare(OpEq, public, false),
		Compare(OpGe, level, 0),
		Not(In(owner, []any{"a", 2.5, true})),
		&Node{Op: OpType, Path: level, Value: TypeInt},
	)
	b, err := json.Marshal(FromCondition(c))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"conditional","condition":{"op":"and","args":[` +
		`{"op":"eq","path":["properties","public"],"value":false},` +
		`{"op":"ge","path":["properties","level"],"value":0},` +
		`{"op":"not","args":[{"op":"in","path":["properties","owner"],"values":["a",2.5,true]}]},` +
		`{"op":"type","path":["properties","level"],"value":"int"}]}}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if err := p.Condition.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Condition.String() != c.String() {
		t.Errorf("decoded %s, want %s", p.Condition, c)
	}
	res := map[string]any{"properties": map[string]any{"public": false, "level": json.Number("1"), "owner": "b"}}
	if !p.Condition.Eval(res) || !c.Eval(res) {
		t.Errorf("the decoded condition is false for %v", res)
	}
	res["properties"].(map[string]any)["owner"] = "a"
	if p.Condition.Eval(res) || c.Eval(res) {
		t.Errorf("the decoded condition is true for %v", res)
	}

	b, _ = json.Marshal(Plan{Kind: AlwaysDenied})
	if string(b) != `{"kind":"always_denied"}` {
		t.Errorf("always_denied = %s", b)
	}
}

func TestEqualAndTypeOf(t *testing.T) {
	if Equal([]any{"a"}, []any{"a"}) || Equal(map[string]any{}, map[string]any{}) {
		t.Error("lists or maps compare equal")
	}
	if !Equal(int8(3), json.Number("3.0")) || !Equal(uint(3), 3.0) || Equal("3", 3) || Equal(true, 1) {
		t.Error("Equal on scalars")
	}
	types := map[string]any{
		TypeString: "s", TypeBool: true, TypeInt: uint16(1), TypeDouble: float32(1),
		TypeList: []any{}, TypeMap: map[string]any{}, "": nil,
	}
	for want, v := range types {
		if got := TypeOf(v); got != want {
			t.Errorf("TypeOf(%#v) = %q, want %q", v, got, want)
		}
	}
	if got := TypeOf(json.Number("-0")); got != TypeInt {
		t.Errorf("TypeOf(-0) = %q", got)
	}
	if got, ok := Lookup(map[string]any{"a": map[string]any{"b": nil}}, []string{"a", "b"}); !ok || got != nil {
		t.Errorf("Lookup of a null = %v, %v", got, ok)
	}
	if _, ok := Lookup(map[string]any{"a": "x"}, []string{"a", "b"}); ok {
		t.Error("Lookup through a string")
	}
	if got, ok := Lookup(map[string]any{"a": 1}, nil); !ok || !reflect.DeepEqual(got, map[string]any{"a": 1}) {
		t.Errorf("Lookup of the empty path = %v, %v", got, ok)
	}
}

// TestPrune: an and drops repeats and has(p) beside a comparison of p; an
// or drops repeats only; the meaning is kept.
func TestPrune(t *testing.T) {
	owner := []string{"properties", "owner"}
	eq := Compare(OpEq, owner, "alice")
	locked := Compare(OpEq, []string{"properties", "locked"}, true)
	for _, tc := range []struct {
		got  *Node
		want string
	}{
		{And(Has(owner), eq, Not(locked), Not(locked)), `(properties.owner == "alice" && !(properties.locked == true))`},
		{And(Has(owner), locked), `(has(properties.owner) && properties.locked == true)`},
		{Or(Has(owner), eq, eq), `(has(properties.owner) || properties.owner == "alice")`},
		{And(eq, eq), `properties.owner == "alice"`},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%s, want %s", s, tc.want)
		}
	}
	// Pruning keeps the meaning on every resource.
	for _, props := range []map[string]any{{}, {"owner": "alice"}, {"owner": "bob", "locked": true}, {"owner": "alice", "locked": true}} {
		r := map[string]any{"type": "doc", "id": "1", "properties": props}
		full := &Node{Op: OpAnd, Args: []*Node{Has(owner), eq, Not(locked), Not(locked)}}
		if full.Eval(r) != And(Has(owner), eq, Not(locked), Not(locked)).Eval(r) {
			t.Errorf("pruning changed the answer on %v", props)
		}
	}
}
