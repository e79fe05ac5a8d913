package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/verdictpdp/verdict/engine/plan"
)

// SQLDialect is the SQL that PlanSQL writes. The zero SQLDialect is none:
// PlanSQL refuses it.
type SQLDialect int

// The dialects of PlanSQL.
const (
	// PostgreSQL numbers its placeholders $1, $2, ... and reads lists
	// from array columns. It needs PostgreSQL 11 or later (starts_with).
	PostgreSQL SQLDialect = iota + 1
	// SQLite writes ? placeholders and reads lists from JSON array text.
	// It needs SQLite 3.23 or later (TRUE and FALSE), with the JSON
	// functions (built in since 3.38) for List columns.
	SQLite
)

// String is "postgresql", "sqlite" or "SQLDialect(n)".
func (d SQLDialect) String() string {
	switch d {
	case PostgreSQL:
		return "postgresql"
	case SQLite:
		return "sqlite"
	}
	return "SQLDialect(" + strconv.Itoa(int(d)) + ")"
}

// Column is where a resource attribute is in the database.
type Column struct {
	// Name is the SQL expression of the column, written by the caller and
	// put into the SQL as it is: "docs.owner", `"Owner"`,
	// "json_extract(docs.attrs, '$.owner')". Never build it from input.
	// An expression other than a (qualified, possibly quoted) name is
	// parenthesised.
	Name string
	// List says the column holds a list: a PostgreSQL array, or SQLite
	// text holding a JSON array. NULL is an absent attribute. Only a List
	// column can answer "contains".
	List bool
	// Type is the type of the column's values, as the policies see them:
	// plan.TypeString, plan.TypeInt, plan.TypeDouble or plan.TypeBool;
	// for a List column, the type of its elements. The column is trusted
	// to hold only values of that type, or NULL. PlanSQL decides from it,
	// without the database, a comparison with a value of another type
	// (false; "ne" is then "present"), and the "type" operator (a column
	// of Type bool holds booleans even where SQLite stores them as 0 and
	// 1).
	//
	// PostgreSQL needs it on every column a plan reads other than with
	// "has" (a List column: for "contains" only). On SQLite it may be
	// left empty for a column or expression without affinity
	// (json_extract(...), a column declared without a type): each value
	// is then of the type its storage class says (TEXT a string, INTEGER
	// an int, REAL a double; there are no booleans, as SQLite stores them
	// as integers), and the SQL tests it with typeof(). A SQLite List
	// column needs no Type: the JSON says what each element is.
	Type string
}

// SQLOptions are what PlanSQL needs to know about the database.
type SQLOptions struct {
	// Dialect is PostgreSQL or SQLite; the zero value is refused.
	Dialect SQLDialect
	// Columns maps a resource attribute, its path joined by ".", to its
	// column: "id", "type", "properties.owner",
	// "properties.address.city" (a name with a dot in it cannot be told
	// from a nested one). An attribute a plan reads that is not here is an
	// error (ErrUnmappedAttribute), never a guess.
	Columns map[string]Column
	// FirstArg is the number of PostgreSQL's first placeholder, for a
	// WHERE clause that follows others' arguments: 0 or 1 start at $1.
	// SQLite ignores it.
	FirstArg int
}

// ErrUnmappedAttribute is wrapped by PlanSQL's error when the plan reads
// an attribute that SQLOptions.Columns does not map: the caller may map
// it, or filter in Go with PlanPredicate instead.
var ErrUnmappedAttribute = errors.New("no column for the attribute")

// PlanSQL is p as a boolean SQL expression for a WHERE clause, with its
// arguments: every value of the plan is an argument (a $n or ? placeholder
// in where, in order in args), never written into where. always_allowed
// is "TRUE" and always_denied "FALSE" (no arguments). Its rows are exactly
// those for which p's condition holds (plan.Node.Eval) on the resource
// whose attributes are the mapped columns, a NULL column being an absent
// attribute:
//
//	where, args, err := client.PlanSQL(p, client.SQLOptions{
//		Dialect: client.PostgreSQL,
//		Columns: map[string]client.Column{
//			"id":               {Name: "d.id", Type: plan.TypeString},
//			"properties.owner": {Name: "d.owner", Type: plan.TypeString},
//			"properties.tags":  {Name: "d.tags", List: true, Type: plan.TypeString},
//		},
//	})
//	rows, err := db.Query(ctx, "SELECT d.id FROM documents d WHERE "+where, args...)
//
// Numbers are passed as int64 when whole, else float64 (and on
// PostgreSQL cast to bigint or float8 in the SQL); strings as string,
// booleans as bool. SQL's NULL makes a comparison unknown, which WHERE
// takes as false, as the plan's semantics wants; a "not" is written
// NOT COALESCE(x, FALSE) so that the negation of an unknown is true.
//
// Exactness needs what the plan's semantics assumes: string equality and
// order by bytes. PostgreSQL orders strings with COLLATE "C" in the SQL
// (an index for lt/le/gt/ge on a string column must then be on
// (col COLLATE "C")); its equality needs a deterministic collation (the
// default; not citext). SQLite columns must keep the BINARY collation
// (the default). Numbers compare as the database compares them (exactly,
// where Eval compares float64s: they differ only beyond 2^53; and a NaN
// stored in a PostgreSQL float column equals itself and is above every
// number).
//
// It returns an error, and no SQL, when p is not valid (see
// PlanPredicate), when opts has no known Dialect, or when a node cannot be
// written: an attribute without a column (ErrUnmappedAttribute),
// "contains" on a column that is not a List, a column without the Type it
// needs. The error names the node.
func PlanSQL(p Plan, opts SQLOptions) (where string, args []any, err error) {
	if opts.Dialect != PostgreSQL && opts.Dialect != SQLite {
		return "", nil, fmt.Errorf("client: PlanSQL: unknown SQL dialect %v", opts.Dialect)
	}
	if opts.FirstArg < 0 {
		return "", nil, fmt.Errorf("client: PlanSQL: FirstArg %d is negative", opts.FirstArg)
	}
	if err := validatePlan(p); err != nil {
		return "", nil, fmt.Errorf("client: PlanSQL: %w", err)
	}
	switch p.Kind {
	case plan.AlwaysAllowed:
		return "TRUE", nil, nil
	case plan.AlwaysDenied:
		return "FALSE", nil, nil
	}
	w := &sqlWriter{opts: opts, next: max(opts.FirstArg, 1)}
	where, err = w.node(p.Condition)
	if err != nil {
		return "", nil, err
	}
	return where, w.args, nil
}

// sqlWriter writes one condition.
type sqlWriter struct {
	opts SQLOptions
	args []any
	// next is the number of the next PostgreSQL placeholder.
	next int
}

// kind is a value's type as SQL sees it: the plan's int and double are
// both numbers.
type kind int

const (
	kindString kind = iota + 1
	kindNumber
	kindBool
)

// column is a mapped attribute, ready to write.
type column struct {
	expr string
	list bool
	// typ is the Column's Type; "" is SQLite's dynamic typing.
	typ  string
	kind kind // of typ; 0 when typ is ""
}

func (w *sqlWriter) pg() bool { return w.opts.Dialect == PostgreSQL }

// arg adds v to the arguments and returns its placeholder.
// PostgreSQL casts a number, so that the server does not infer the
// column's type for it (an int4 column and a float8 argument).
func (w *sqlWriter) arg(v any) string {
	w.args = append(w.args, v)
	if !w.pg() {
		return "?"
	}
	ph := "$" + strconv.Itoa(w.next)
	w.next++
	switch v.(type) {
	case int64:
		ph += "::bigint"
	case float64:
		ph += "::float8"
	}
	return ph
}

func (w *sqlWriter) node(n *plan.Node) (string, error) {
	switch n.Op {
	case plan.OpTrue:
		return "TRUE", nil
	case plan.OpFalse:
		return "FALSE", nil
	case plan.OpAnd, plan.OpOr:
		if len(n.Args) == 0 {
			if n.Op == plan.OpAnd {
				return "TRUE", nil
			}
			return "FALSE", nil
		}
		parts := make([]string, len(n.Args))
		for i, a := range n.Args {
			s, err := w.node(a)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		if len(parts) == 1 {
			return parts[0], nil
		}
		return "(" + strings.Join(parts, " "+strings.ToUpper(n.Op)+" ") + ")", nil
	case plan.OpNot:
		s, err := w.node(n.Args[0])
		if err != nil {
			return "", err
		}
		// NOT of an unknown (a comparison with NULL) is unknown, which
		// WHERE would take as false: the plan's not is true there.
		return "NOT COALESCE(" + s + ", FALSE)", nil
	}
	return w.compare(n)
}

// nodeError is an error about n.
func nodeError(n *plan.Node, format string, a ...any) error {
	return fmt.Errorf("client: PlanSQL: %s: %s", n, fmt.Sprintf(format, a...))
}

// column is the column of n's attribute.
func (w *sqlWriter) column(n *plan.Node) (column, error) {
	key := strings.Join(n.Path, ".")
	c, ok := w.opts.Columns[key]
	if !ok {
		return column{}, fmt.Errorf("client: PlanSQL: %s: %w %s", n, ErrUnmappedAttribute, key)
	}
	if strings.TrimSpace(c.Name) == "" {
		return column{}, nodeError(n, "the column of %s has no Name", key)
	}
	out := column{expr: sqlOperand(c.Name), list: c.List, typ: c.Type}
	switch c.Type {
	case plan.TypeString:
		out.kind = kindString
	case plan.TypeInt, plan.TypeDouble:
		out.kind = kindNumber
	case plan.TypeBool:
		out.kind = kindBool
	case "":
		// Needed on PostgreSQL for a comparison with a scalar column, or
		// "contains" on a list (checked there); "has" needs no type.
		if w.pg() && !c.List && n.Op != plan.OpHas {
			return column{}, nodeError(n, "the column of %s needs a Type (string, int, double or bool) on PostgreSQL", key)
		}
	case plan.TypeList:
		return column{}, nodeError(n, "the column of %s has Type list: set List, and Type to its elements' type", key)
	default:
		return column{}, nodeError(n, "the column of %s has an unknown Type %q (want string, int, double or bool)", key, c.Type)
	}
	return out, nil
}

// sqlOperand is name, parenthesised unless it is a (qualified, possibly
// double-quoted) name, so that an expression stays one operand.
func sqlOperand(name string) string {
	name = strings.TrimSpace(name)
	if simpleName(name) {
		return name
	}
	return "(" + name + ")"
}

// simpleName reports whether s is names joined by dots, each a plain
// identifier or a double-quoted one.
func simpleName(s string) bool {
	for {
		if s == "" {
			return false
		}
		if s[0] == '"' {
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' { // "" inside quotes
						i++
						continue
					}
					break
				}
			}
			if i >= len(s) || i == 1 {
				return false
			}
			s = s[i+1:]
		} else {
			i := 0
			for ; i < len(s); i++ {
				c := s[i]
				letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
				if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '$')) {
					break
				}
			}
			if i == 0 {
				return false
			}
			s = s[i:]
		}
		if s == "" {
			return true
		}
		if s[0] != '.' {
			return false
		}
		s = s[1:]
	}
}

// sqlValue is v as an argument and its kind; ok is false for a number that
// equals nothing (NaN, an invalid json.Number).
func sqlValue(v any) (arg any, k kind, ok bool) {
	switch x := v.(type) {
	case string:
		return x, kindString, true
	case bool:
		return x, kindBool, true
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, kindNumber, true
		}
		f, err := x.Float64()
		if err != nil {
			return nil, 0, false
		}
		return number(f)
	case float64:
		return number(x)
	case float32:
		return number(float64(x))
	case int:
		return int64(x), kindNumber, true
	case int64:
		return x, kindNumber, true
	case int32:
		return int64(x), kindNumber, true
	case int16:
		return int64(x), kindNumber, true
	case int8:
		return int64(x), kindNumber, true
	case uint:
		return sqlValue(uint64(x))
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), kindNumber, true
		}
		return float64(x), kindNumber, true
	case uint32:
		return int64(x), kindNumber, true
	case uint16:
		return int64(x), kindNumber, true
	case uint8:
		return int64(x), kindNumber, true
	}
	return nil, 0, false
}

// number is f as an int64 when it is whole and fits, else as a float64.
func number(f float64) (any, kind, bool) {
	if math.IsNaN(f) {
		return nil, 0, false
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), kindNumber, true
	}
	return f, kindNumber, true
}

var sqlOps = map[string]string{
	plan.OpEq: "=", plan.OpNe: "<>", plan.OpLt: "<", plan.OpLe: "<=", plan.OpGt: ">", plan.OpGe: ">=",
}

// compare writes a node that reads an attribute.
func (w *sqlWriter) compare(n *plan.Node) (string, error) {
	c, err := w.column(n)
	if err != nil {
		return "", err
	}
	switch n.Op {
	case plan.OpHas:
		return c.expr + " IS NOT NULL", nil
	case plan.OpType:
		return w.typeTest(n, c), nil
	case plan.OpContains:
		return w.contains(n, c)
	}
	if c.list {
		// A list equals no scalar, starts with nothing, has no order:
		// only "ne" holds, for any list that is there.
		return presentIfNe(n, c), nil
	}
	if c.typ == "" {
		return w.dynamic(n, c), nil
	}
	switch n.Op {
	case plan.OpIn:
		var phs []string
		for _, v := range n.Values {
			if a, k, ok := sqlValue(v); ok && k == c.kind {
				phs = append(phs, w.arg(a))
			}
		}
		if len(phs) == 0 {
			return "FALSE", nil
		}
		return c.expr + " IN (" + strings.Join(phs, ", ") + ")", nil
	case plan.OpStartsWith:
		if c.kind != kindString {
			return "FALSE", nil
		}
		return w.startsWith(c.expr, n.Value), nil
	}
	a, k, ok := sqlValue(n.Value)
	ordering := n.Op != plan.OpEq && n.Op != plan.OpNe
	if !ok || k != c.kind || ordering && k == kindBool {
		return presentIfNe(n, c), nil
	}
	lhs := c.expr
	if ordering && k == kindString && w.pg() {
		lhs += ` COLLATE "C"` // bytes, whatever the column's collation
	}
	return lhs + " " + sqlOps[n.Op] + " " + w.arg(a), nil
}

// presentIfNe is a comparison that no value of the column can make true:
// false, except "ne", which holds wherever the attribute is present.
func presentIfNe(n *plan.Node, c column) string {
	if n.Op == plan.OpNe {
		return c.expr + " IS NOT NULL"
	}
	return "FALSE"
}

// startsWith is expr starting with the string s, byte for byte: no LIKE,
// whose % and _ are wildcards and which SQLite compares ignoring case.
func (w *sqlWriter) startsWith(expr string, s any) string {
	if w.pg() {
		return "starts_with(" + expr + ", " + w.arg(s) + ")"
	}
	// instr is the position of the first occurrence: 1 only for a prefix.
	return "instr(" + expr + ", " + w.arg(s) + ") = 1"
}

// dynamic writes a comparison with a SQLite column without Type: each
// value is as typeof() says, and a comparison holds only for values of
// the plan value's kind.
func (w *sqlWriter) dynamic(n *plan.Node, c column) string {
	guard := func(k kind) string {
		if k == kindString {
			return "typeof(" + c.expr + ") = 'text'"
		}
		return "typeof(" + c.expr + ") IN ('integer', 'real')"
	}
	switch n.Op {
	case plan.OpIn:
		var parts []string
		for _, k := range []kind{kindString, kindNumber} {
			var phs []string
			for _, v := range n.Values {
				if a, vk, ok := sqlValue(v); ok && vk == k {
					phs = append(phs, w.arg(a))
				}
			}
			if len(phs) > 0 {
				parts = append(parts, "("+guard(k)+" AND "+c.expr+" IN ("+strings.Join(phs, ", ")+"))")
			}
		}
		switch len(parts) {
		case 0:
			return "FALSE"
		case 1:
			return parts[0]
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	case plan.OpStartsWith:
		return "(" + guard(kindString) + " AND " + w.startsWith(c.expr, n.Value) + ")"
	}
	a, k, ok := sqlValue(n.Value)
	if !ok || k == kindBool { // no stored value is a boolean
		return presentIfNe(n, c)
	}
	if n.Op == plan.OpNe {
		notKind := "typeof(" + c.expr + ") <> 'text'"
		if k == kindNumber {
			notKind = "typeof(" + c.expr + ") NOT IN ('integer', 'real')"
		}
		return "(" + c.expr + " IS NOT NULL AND (" + notKind + " OR " + c.expr + " <> " + w.arg(a) + "))"
	}
	return "(" + guard(k) + " AND " + c.expr + " " + sqlOps[n.Op] + " " + w.arg(a) + ")"
}

// typeTest writes the "type" operator: from the column's Type where there
// is one, else (SQLite) from the stored value's.
func (w *sqlWriter) typeTest(n *plan.Node, c column) string {
	t, _ := n.Value.(string)
	if c.list {
		switch {
		case t != plan.TypeList:
			return "FALSE"
		case w.pg():
			return c.expr + " IS NOT NULL"
		}
		return "json_type(" + c.expr + ") = 'array'"
	}
	if c.typ == "" { // SQLite's dynamic typing
		class := map[string]string{plan.TypeString: "text", plan.TypeInt: "integer", plan.TypeDouble: "real"}[t]
		if class == "" {
			return "FALSE"
		}
		return "typeof(" + c.expr + ") = '" + class + "'"
	}
	if t == c.typ {
		return c.expr + " IS NOT NULL"
	}
	return "FALSE"
}

// contains writes "the list holds the value".
func (w *sqlWriter) contains(n *plan.Node, c column) (string, error) {
	if !c.list {
		return "", nodeError(n, "contains needs a List column, and the column of %s is not one", strings.Join(n.Path, "."))
	}
	a, k, ok := sqlValue(n.Value)
	if w.pg() {
		if c.typ == "" {
			return "", nodeError(n, "the List column of %s needs the Type of its elements on PostgreSQL", strings.Join(n.Path, "."))
		}
		if !ok || k != c.kind {
			return "FALSE", nil
		}
		return w.arg(a) + " = ANY(" + c.expr + ")", nil
	}
	if !ok {
		return "FALSE", nil
	}
	// The JSON says each element's type: true and false are integers to
	// SQL, and strings never equal numbers.
	guard := map[kind]string{
		kindString: "json_each.type = 'text'",
		kindNumber: "json_each.type IN ('integer', 'real')",
		kindBool:   "json_each.type IN ('true', 'false')",
	}[k]
	return "EXISTS (SELECT 1 FROM json_each(" + c.expr + ") WHERE " + guard + " AND json_each.value = " + w.arg(a) + ")", nil
}
