package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/engine/plan"
)

// sqlColumns are the mapping of the unit tests: typed columns, a list, and
// (for SQLite) an expression without a type.
func sqlColumns() map[string]client.Column {
	return map[string]client.Column{
		"id":                {Name: "d.id", Type: plan.TypeString},
		"properties.owner":  {Name: "d.owner", Type: plan.TypeString},
		"properties.level":  {Name: "d.level", Type: plan.TypeInt},
		"properties.score":  {Name: "d.score", Type: plan.TypeDouble},
		"properties.public": {Name: "d.public", Type: plan.TypeBool},
		"properties.tags":   {Name: "d.tags", List: true, Type: plan.TypeString},
		"properties.attr":   {Name: "json_extract(d.attrs, '$.attr')"},
	}
}

func conditional(c *plan.Node) client.Plan { return client.Plan{Kind: plan.Conditional, Condition: c} }

var (
	pOwner  = []string{"properties", "owner"}
	pLevel  = []string{"properties", "level"}
	pScore  = []string{"properties", "score"}
	pPublic = []string{"properties", "public"}
	pTags   = []string{"properties", "tags"}
	pAttr   = []string{"properties", "attr"}
)

// TestPlanSQLOperators is the SQL of every operator in both dialects.
func TestPlanSQLOperators(t *testing.T) {
	typ := func(path []string, t string) *plan.Node { return &plan.Node{Op: plan.OpType, Path: path, Value: t} }
	cases := []struct {
		n                *plan.Node
		pg               string
		pgArgs           []any
		sqlite           string
		sqliteArgs       []any
		pgErr, sqliteErr string // the error instead, when set
	}{
		{n: plan.True(), pg: "TRUE", sqlite: "TRUE"},
		{n: plan.False(), pg: "FALSE", sqlite: "FALSE"},
		{n: &plan.Node{Op: plan.OpAnd}, pg: "TRUE", sqlite: "TRUE"},
		{n: &plan.Node{Op: plan.OpOr}, pg: "FALSE", sqlite: "FALSE"},
		{n: &plan.Node{Op: plan.OpAnd, Args: []*plan.Node{plan.Has(pOwner)}}, pg: "d.owner IS NOT NULL", sqlite: "d.owner IS NOT NULL"},

		// eq, ne and the orderings, on each column type
		{n: plan.Compare(plan.OpEq, []string{"id"}, "42"),
			pg: "d.id = $1", pgArgs: []any{"42"}, sqlite: "d.id = ?", sqliteArgs: []any{"42"}},
		{n: plan.Compare(plan.OpNe, pOwner, "alice"),
			pg: "d.owner <> $1", pgArgs: []any{"alice"}, sqlite: "d.owner <> ?", sqliteArgs: []any{"alice"}},
		{n: plan.Compare(plan.OpLt, pOwner, "m"),
			pg: `d.owner COLLATE "C" < $1`, pgArgs: []any{"m"}, sqlite: "d.owner < ?", sqliteArgs: []any{"m"}},
		{n: plan.Compare(plan.OpGe, pOwner, "m"),
			pg: `d.owner COLLATE "C" >= $1`, pgArgs: []any{"m"}, sqlite: "d.owner >= ?", sqliteArgs: []any{"m"}},
		{n: plan.Compare(plan.OpLe, pLevel, 3.0),
			pg: "d.level <= $1::bigint", pgArgs: []any{int64(3)}, sqlite: "d.level <= ?", sqliteArgs: []any{int64(3)}},
		{n: plan.Compare(plan.OpGt, pLevel, json.Number("2.5")),
			pg: "d.level > $1::float8", pgArgs: []any{2.5}, sqlite: "d.level > ?", sqliteArgs: []any{2.5}},
		{n: plan.Compare(plan.OpEq, pScore, 2),
			pg: "d.score = $1::bigint", pgArgs: []any{int64(2)}, sqlite: "d.score = ?", sqliteArgs: []any{int64(2)}},
		{n: plan.Compare(plan.OpEq, pPublic, true),
			pg: "d.public = $1", pgArgs: []any{true}, sqlite: "d.public = ?", sqliteArgs: []any{true}},
		// a value of another type than the column's: decided here
		{n: plan.Compare(plan.OpEq, pLevel, "3"), pg: "FALSE", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpNe, pLevel, "3"), pg: "d.level IS NOT NULL", sqlite: "d.level IS NOT NULL"},
		{n: plan.Compare(plan.OpEq, pPublic, 1), pg: "FALSE", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpLt, pPublic, true), pg: "FALSE", sqlite: "FALSE"}, // booleans have no order
		{n: plan.Compare(plan.OpEq, pScore, math.NaN()), pg: "FALSE", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpNe, pScore, math.NaN()), pg: "d.score IS NOT NULL", sqlite: "d.score IS NOT NULL"},
		// a list column is no scalar
		{n: plan.Compare(plan.OpEq, pTags, "red"), pg: "FALSE", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpNe, pTags, "red"), pg: "d.tags IS NOT NULL", sqlite: "d.tags IS NOT NULL"},

		// in: the values of the column's type
		{n: plan.In(pOwner, []any{"a", "b", 3, true}),
			pg: "d.owner IN ($1, $2)", pgArgs: []any{"a", "b"}, sqlite: "d.owner IN (?, ?)", sqliteArgs: []any{"a", "b"}},
		{n: plan.In(pLevel, []any{1, 2.5, "3"}),
			pg: "d.level IN ($1::bigint, $2::float8)", pgArgs: []any{int64(1), 2.5}, sqlite: "d.level IN (?, ?)", sqliteArgs: []any{int64(1), 2.5}},
		{n: plan.In(pLevel, []any{"1"}), pg: "FALSE", sqlite: "FALSE"},
		{n: &plan.Node{Op: plan.OpIn, Path: pLevel}, pg: "FALSE", sqlite: "FALSE"},

		// has
		{n: plan.Has(pTags), pg: "d.tags IS NOT NULL", sqlite: "d.tags IS NOT NULL"},

		// starts_with: case-sensitive, % and _ as themselves
		{n: plan.Compare(plan.OpStartsWith, pOwner, "a_%"),
			pg: "starts_with(d.owner, $1)", pgArgs: []any{"a_%"}, sqlite: "instr(d.owner, ?) = 1", sqliteArgs: []any{"a_%"}},
		{n: plan.Compare(plan.OpStartsWith, pLevel, "1"), pg: "FALSE", sqlite: "FALSE"},

		// contains: lists only
		{n: plan.Compare(plan.OpContains, pTags, "red"),
			pg: "$1 = ANY(d.tags)", pgArgs: []any{"red"},
			sqlite: "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.type = 'text' AND json_each.value = ?)", sqliteArgs: []any{"red"}},
		{n: plan.Compare(plan.OpContains, pTags, 3),
			pg:     "FALSE",
			sqlite: "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.type IN ('integer', 'real') AND json_each.value = ?)", sqliteArgs: []any{int64(3)}},
		{n: plan.Compare(plan.OpContains, pTags, false),
			pg:     "FALSE",
			sqlite: "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.type IN ('true', 'false') AND json_each.value = ?)", sqliteArgs: []any{false}},
		{n: plan.Compare(plan.OpContains, pOwner, "a"),
			pgErr:     `properties.owner contains "a": contains needs a List column`,
			sqliteErr: `properties.owner contains "a": contains needs a List column`},

		// type
		{n: typ(pOwner, plan.TypeString), pg: "d.owner IS NOT NULL", sqlite: "d.owner IS NOT NULL"},
		{n: typ(pOwner, plan.TypeInt), pg: "FALSE", sqlite: "FALSE"},
		{n: typ(pScore, plan.TypeDouble), pg: "d.score IS NOT NULL", sqlite: "d.score IS NOT NULL"},
		{n: typ(pScore, plan.TypeInt), pg: "FALSE", sqlite: "FALSE"},
		{n: typ(pPublic, plan.TypeBool), pg: "d.public IS NOT NULL", sqlite: "d.public IS NOT NULL"},
		{n: typ(pTags, plan.TypeList), pg: "d.tags IS NOT NULL", sqlite: "json_type(d.tags) = 'array'"},
		{n: typ(pTags, plan.TypeString), pg: "FALSE", sqlite: "FALSE"},
		{n: typ(pOwner, plan.TypeMap), pg: "FALSE", sqlite: "FALSE"},

		// not, and, or
		{n: plan.Not(plan.Compare(plan.OpEq, pOwner, "a")),
			pg: "NOT COALESCE(d.owner = $1, FALSE)", pgArgs: []any{"a"}, sqlite: "NOT COALESCE(d.owner = ?, FALSE)", sqliteArgs: []any{"a"}},
		{n: plan.Or(plan.Compare(plan.OpEq, pOwner, "a"), plan.And(plan.Compare(plan.OpEq, pPublic, true), plan.Not(plan.In(pLevel, []any{1, 2})))),
			pg:     "(d.owner = $1 OR (d.public = $2 AND NOT COALESCE(d.level IN ($3::bigint, $4::bigint), FALSE)))",
			pgArgs: []any{"a", true, int64(1), int64(2)},
			sqlite: "(d.owner = ? OR (d.public = ? AND NOT COALESCE(d.level IN (?, ?), FALSE)))", sqliteArgs: []any{"a", true, int64(1), int64(2)}},

		// a column without a Type: SQLite reads each value's storage class
		{n: plan.Compare(plan.OpEq, pAttr, "x"),
			pgErr:  "needs a Type (string, int, double or bool) on PostgreSQL",
			sqlite: "(typeof((json_extract(d.attrs, '$.attr'))) = 'text' AND (json_extract(d.attrs, '$.attr')) = ?)", sqliteArgs: []any{"x"}},
		{n: plan.Compare(plan.OpNe, pAttr, 3),
			pgErr:  "needs a Type",
			sqlite: "((json_extract(d.attrs, '$.attr')) IS NOT NULL AND (typeof((json_extract(d.attrs, '$.attr'))) NOT IN ('integer', 'real') OR (json_extract(d.attrs, '$.attr')) <> ?))", sqliteArgs: []any{int64(3)}},
		{n: plan.Compare(plan.OpLt, pAttr, 2.5),
			pgErr:  "needs a Type",
			sqlite: "(typeof((json_extract(d.attrs, '$.attr'))) IN ('integer', 'real') AND (json_extract(d.attrs, '$.attr')) < ?)", sqliteArgs: []any{2.5}},
		{n: plan.Compare(plan.OpEq, pAttr, true), pgErr: "needs a Type", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpNe, pAttr, true), pgErr: "needs a Type", sqlite: "(json_extract(d.attrs, '$.attr')) IS NOT NULL"},
		{n: plan.In(pAttr, []any{"a", 1, true, "b"}),
			pgErr:  "needs a Type",
			sqlite: "((typeof((json_extract(d.attrs, '$.attr'))) = 'text' AND (json_extract(d.attrs, '$.attr')) IN (?, ?)) OR (typeof((json_extract(d.attrs, '$.attr'))) IN ('integer', 'real') AND (json_extract(d.attrs, '$.attr')) IN (?)))", sqliteArgs: []any{"a", "b", int64(1)}},
		{n: plan.In(pAttr, []any{true}), pgErr: "needs a Type", sqlite: "FALSE"},
		{n: plan.Compare(plan.OpStartsWith, pAttr, "x"),
			pgErr:  "needs a Type",
			sqlite: "(typeof((json_extract(d.attrs, '$.attr'))) = 'text' AND instr((json_extract(d.attrs, '$.attr')), ?) = 1)", sqliteArgs: []any{"x"}},
		{n: typ(pAttr, plan.TypeDouble), pgErr: "needs a Type", sqlite: "typeof((json_extract(d.attrs, '$.attr'))) = 'real'"},
		{n: typ(pAttr, plan.TypeBool), pgErr: "needs a Type", sqlite: "FALSE"},
		{n: plan.Has(pAttr), pg: "(json_extract(d.attrs, '$.attr')) IS NOT NULL", sqlite: "(json_extract(d.attrs, '$.attr')) IS NOT NULL"},
	}
	for _, tc := range cases {
		for _, d := range []struct {
			dialect client.SQLDialect
			want    string
			args    []any
			err     string
		}{{client.PostgreSQL, tc.pg, tc.pgArgs, tc.pgErr}, {client.SQLite, tc.sqlite, tc.sqliteArgs, tc.sqliteErr}} {
			where, args, err := client.PlanSQL(conditional(tc.n), client.SQLOptions{Dialect: d.dialect, Columns: sqlColumns()})
			if d.err != "" {
				if err == nil || !strings.Contains(err.Error(), d.err) {
					t.Errorf("%v, %s: error %v, want one with %q", d.dialect, tc.n, err, d.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%v, %s: %v", d.dialect, tc.n, err)
				continue
			}
			if where != d.want || !reflect.DeepEqual(args, d.args) {
				t.Errorf("%v, %s:\n got %s %#v\nwant %s %#v", d.dialect, tc.n, where, args, d.want, d.args)
			}
		}
	}
}

func TestPlanSQLUnconditional(t *testing.T) {
	for _, d := range []client.SQLDialect{client.PostgreSQL, client.SQLite} {
		for kind, want := range map[string]string{plan.AlwaysAllowed: "TRUE", plan.AlwaysDenied: "FALSE"} {
			// No column is needed, and a stray condition is not read.
			where, args, err := client.PlanSQL(client.Plan{Kind: kind, Condition: &plan.Node{Op: "bogus"}}, client.SQLOptions{Dialect: d})
			if where != want || args != nil || err != nil {
				t.Errorf("%v, %s: %q %v %v", d, kind, where, args, err)
			}
		}
	}
}

// TestPlanSQLFirstArg: PostgreSQL's placeholders start at FirstArg, and
// the same placeholder is never used twice.
func TestPlanSQLFirstArg(t *testing.T) {
	c := conditional(plan.And(plan.Compare(plan.OpEq, pOwner, "a"), plan.In(pLevel, []any{1, 2}), plan.Compare(plan.OpContains, pTags, "t")))
	for first, want := range map[int]string{
		0: "(d.owner = $1 AND d.level IN ($2::bigint, $3::bigint) AND $4 = ANY(d.tags))",
		1: "(d.owner = $1 AND d.level IN ($2::bigint, $3::bigint) AND $4 = ANY(d.tags))",
		5: "(d.owner = $5 AND d.level IN ($6::bigint, $7::bigint) AND $8 = ANY(d.tags))",
	} {
		where, args, err := client.PlanSQL(c, client.SQLOptions{Dialect: client.PostgreSQL, Columns: sqlColumns(), FirstArg: first})
		if err != nil || where != want || len(args) != 4 {
			t.Errorf("FirstArg %d: %s %v %v", first, where, args, err)
		}
	}
	// SQLite has no numbers to start from.
	where, _, err := client.PlanSQL(c, client.SQLOptions{Dialect: client.SQLite, Columns: sqlColumns(), FirstArg: 5})
	if err != nil || strings.Contains(where, "$") || strings.Count(where, "?") != 4 {
		t.Errorf("SQLite with FirstArg: %s %v", where, err)
	}
}

// TestPlanSQLValuesAreArguments: no value of the plan, however it is
// written, reaches the SQL text; each one is an argument.
func TestPlanSQLValuesAreArguments(t *testing.T) {
	inject := `x'); DROP TABLE docs; --`
	c := plan.And(
		plan.Compare(plan.OpEq, pOwner, inject),
		plan.Compare(plan.OpNe, []string{"id"}, "secret-id-7781"),
		plan.Compare(plan.OpLt, pOwner, "zzz-bound"),
		plan.Compare(plan.OpGt, pLevel, 987654),
		plan.Compare(plan.OpGe, pScore, 12345.678),
		plan.In(pOwner, []any{"in-value-1", "in-value-2"}),
		plan.Compare(plan.OpStartsWith, pOwner, "prefix-%_'"),
		plan.Compare(plan.OpContains, pTags, "tag-value-9"),
		plan.Not(plan.Compare(plan.OpEq, pPublic, true)),
	)
	values := []string{inject, "secret-id-7781", "zzz-bound", "987654", "12345.678", "in-value-1", "in-value-2", "prefix-%_'", "tag-value-9", "true"}
	for _, d := range []client.SQLDialect{client.PostgreSQL, client.SQLite} {
		where, args, err := client.PlanSQL(conditional(c), client.SQLOptions{Dialect: d, Columns: sqlColumns()})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if strings.Contains(where, v) {
				t.Errorf("%v: the value %q is in the SQL: %s", d, v, where)
			}
		}
		// The only literals are SQLite's fixed type names.
		fixed := strings.NewReplacer("'text'", "", "'integer'", "", "'real'", "", "'true'", "", "'false'", "", "'array'", "")
		if strings.Contains(fixed.Replace(where), "'") {
			t.Errorf("%v: a quote in the SQL: %s", d, where)
		}
		want := []any{inject, "secret-id-7781", "zzz-bound", int64(987654), 12345.678, "in-value-1", "in-value-2", "prefix-%_'", "tag-value-9", true}
		if !reflect.DeepEqual(args, want) {
			t.Errorf("%v: args %#v, want %#v", d, args, want)
		}
	}
}

// TestPlanSQLNumbers: whole numbers are int64 arguments, others float64,
// whatever their Go type.
func TestPlanSQLNumbers(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want any
	}{
		{3, int64(3)}, {int8(-3), int64(-3)}, {int16(3), int64(3)}, {int32(3), int64(3)}, {int64(3), int64(3)},
		{uint(3), int64(3)}, {uint8(3), int64(3)}, {uint16(3), int64(3)}, {uint32(3), int64(3)}, {uint64(3), int64(3)},
		{uint64(math.MaxUint64), float64(math.MaxUint64)},
		{3.0, int64(3)}, {float32(2.5), 2.5}, {2.5, 2.5}, {-0.0, int64(0)}, {1e300, 1e300}, {math.Inf(-1), math.Inf(-1)},
		{json.Number("3"), int64(3)}, {json.Number("3.0"), int64(3)}, {json.Number("1e3"), int64(1000)},
		{json.Number("0.25"), 0.25}, {json.Number("1e400"), nil}, // out of range: equals nothing
	} {
		where, args, err := client.PlanSQL(conditional(plan.Compare(plan.OpEq, pLevel, tc.v)), client.SQLOptions{Dialect: client.SQLite, Columns: sqlColumns()})
		if err != nil {
			t.Fatalf("%T %v: %v", tc.v, tc.v, err)
		}
		if tc.want == nil {
			if where != "FALSE" {
				t.Errorf("%T %v: %s %v, want FALSE", tc.v, tc.v, where, args)
			}
			continue
		}
		if len(args) != 1 || args[0] != tc.want {
			t.Errorf("%T %v: args %#v, want %#v", tc.v, tc.v, args, tc.want)
		}
	}
}

func TestPlanSQLErrors(t *testing.T) {
	cols := sqlColumns()
	cols["properties.nameless"] = client.Column{Name: " "}
	cols["properties.weird"] = client.Column{Name: "d.weird", Type: "number"}
	cols["properties.listy"] = client.Column{Name: "d.listy", Type: plan.TypeList}
	cols["properties.untyped_list"] = client.Column{Name: "d.ul", List: true}
	ok := conditional(plan.Has(pOwner))
	cases := []struct {
		name    string
		p       client.Plan
		dialect client.SQLDialect
		want    string
		is      error
	}{
		{"no dialect", ok, 0, "unknown SQL dialect SQLDialect(0)", nil},
		{"bad dialect", ok, 7, "unknown SQL dialect SQLDialect(7)", nil},
		{"unknown kind", client.Plan{Kind: "sometimes"}, client.SQLite, `unknown plan kind "sometimes"`, nil},
		{"no kind", client.Plan{}, client.SQLite, `unknown plan kind ""`, nil},
		{"no condition", client.Plan{Kind: plan.Conditional}, client.SQLite, "a conditional plan without a condition", nil},
		{"invalid node", conditional(plan.And(plan.Has(pOwner), &plan.Node{Op: "like", Path: pOwner, Value: "a%"})), client.PostgreSQL, `invalid plan condition: plan: unknown operator "like"`, nil},
		{"invalid value", conditional(plan.Compare(plan.OpEq, pOwner, []any{"a"})), client.SQLite, "the value must be a string, a number or a boolean", nil},
		{"unmapped", conditional(plan.Or(plan.Has(pOwner), plan.Compare(plan.OpEq, []string{"properties", "address", "city"}, "Paris"))), client.SQLite,
			`client: PlanSQL: properties.address.city == "Paris": no column for the attribute properties.address.city`, client.ErrUnmappedAttribute},
		{"unmapped has", conditional(plan.Has([]string{"type"})), client.PostgreSQL, "has(type): no column for the attribute type", client.ErrUnmappedAttribute},
		{"unmapped in not", conditional(plan.Not(plan.Compare(plan.OpLt, []string{"properties", "Owner"}, "a"))), client.SQLite, "no column for the attribute properties.Owner", client.ErrUnmappedAttribute},
		{"contains on a scalar", conditional(plan.Compare(plan.OpContains, pLevel, 1)), client.PostgreSQL,
			"client: PlanSQL: properties.level contains 1: contains needs a List column, and the column of properties.level is not one", nil},
		{"contains on an untyped list (PostgreSQL)", conditional(plan.Compare(plan.OpContains, []string{"properties", "untyped_list"}, "a")), client.PostgreSQL,
			"the List column of properties.untyped_list needs the Type of its elements on PostgreSQL", nil},
		{"no name", conditional(plan.Has([]string{"properties", "nameless"})), client.SQLite, "the column of properties.nameless has no Name", nil},
		{"unknown type", conditional(plan.Has([]string{"properties", "weird"})), client.SQLite, `has(properties.weird): the column of properties.weird has an unknown Type "number"`, nil},
		{"type list", conditional(plan.Has([]string{"properties", "listy"})), client.SQLite, "has Type list: set List", nil},
		{"type on an untyped column (PostgreSQL)", conditional(&plan.Node{Op: plan.OpType, Path: pAttr, Value: plan.TypeString}), client.PostgreSQL, "type(properties.attr) == string: the column of properties.attr needs a Type", nil},
	}
	for _, tc := range cases {
		where, args, err := client.PlanSQL(tc.p, client.SQLOptions{Dialect: tc.dialect, Columns: cols})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "client: PlanSQL: ") {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
		if where != "" || args != nil {
			t.Errorf("%s: SQL %q %v with an error", tc.name, where, args)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
		}
	}
	if _, _, err := client.PlanSQL(ok, client.SQLOptions{Dialect: client.PostgreSQL, Columns: cols, FirstArg: -1}); err == nil {
		t.Error("a negative FirstArg is accepted")
	}
	// An untyped list is fine on PostgreSQL for what needs no element type.
	if where, _, err := client.PlanSQL(conditional(plan.Has([]string{"properties", "untyped_list"})), client.SQLOptions{Dialect: client.PostgreSQL, Columns: cols}); err != nil || where != "d.ul IS NOT NULL" {
		t.Errorf("has on an untyped list: %s %v", where, err)
	}
}

// TestPlanSQLColumnNames: a name, qualified or quoted, goes in as it is;
// anything else is parenthesised.
func TestPlanSQLColumnNames(t *testing.T) {
	for name, want := range map[string]string{
		"owner":                         "owner",
		"d.owner":                       "d.owner",
		"s.d.owner_2$":                  "s.d.owner_2$",
		`"Owner"`:                       `"Owner"`,
		`d."Owner ""x"" Name"`:          `d."Owner ""x"" Name"`,
		` d.owner `:                     "d.owner",
		"lower(d.owner)":                "(lower(d.owner))",
		"d.first || d.last":             "(d.first || d.last)",
		"2owner":                        "(2owner)",
		`"unterminated`:                 `("unterminated)`,
		`""`:                            `("")`,
		"d.":                            "(d.)",
		"d owner":                       "(d owner)",
		"json_extract(a, '$.b')":        "(json_extract(a, '$.b'))",
		"d.owner COLLATE \"C\"":         "(d.owner COLLATE \"C\")",
		`"a".b."c"`:                     `"a".b."c"`,
		`"a"b`:                          `("a"b)`,
		"(d.owner)":                     "((d.owner))",
		"d.owner -- a comment injected": "(d.owner -- a comment injected)",
	} {
		cols := map[string]client.Column{"properties.owner": {Name: name, Type: plan.TypeString}}
		where, _, err := client.PlanSQL(conditional(plan.Has(pOwner)), client.SQLOptions{Dialect: client.SQLite, Columns: cols})
		if err != nil || where != want+" IS NOT NULL" {
			t.Errorf("Name %q: %s %v, want %s IS NOT NULL", name, where, err, want)
		}
	}
}

func TestSQLDialectString(t *testing.T) {
	if client.PostgreSQL.String() != "postgresql" || client.SQLite.String() != "sqlite" || client.SQLDialect(0).String() != "SQLDialect(0)" {
		t.Error(client.PostgreSQL, client.SQLite, client.SQLDialect(0))
	}
}

// FuzzPlanSQL translates arbitrary plans as a client receives them: no
// input makes PlanSQL panic; what it accepts has one placeholder an
// argument, and its SQL does not change when every string value of the
// plan does (no value is written into it).
func FuzzPlanSQL(f *testing.F) {
	for _, s := range []string{
		`{"kind":"always_allowed"}`,
		`{"kind":"conditional","condition":{"op":"eq","path":["properties","owner"],"value":"alice"}}`,
		`{"kind":"conditional","condition":{"op":"or","args":[{"op":"not","args":[{"op":"in","path":["properties","level"],"values":[1,2.5,"x",true]}]},{"op":"contains","path":["properties","tags"],"value":3}]}}`,
		`{"kind":"conditional","condition":{"op":"and","args":[{"op":"starts_with","path":["properties","attr"],"value":"a%"},{"op":"type","path":["properties","attr"],"value":"int"},{"op":"has","path":["id"]}]}}`,
		`{"kind":"conditional","condition":{"op":"ne","path":["properties","public"],"value":false}}`,
		`{"kind":"conditional","condition":{"op":"lt","path":["properties","missing"],"value":1}}`,
		`{"kind":"conditional"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p client.Plan
		if json.Unmarshal(b, &p) != nil {
			return
		}
		for _, d := range []client.SQLDialect{client.PostgreSQL, client.SQLite} {
			where, args, err := client.PlanSQL(p, client.SQLOptions{Dialect: d, Columns: sqlColumns()})
			if err != nil {
				if where != "" || args != nil {
					t.Fatalf("SQL with an error: %q %v %v", where, args, err)
				}
				continue
			}
			if where == "" {
				t.Fatal("no SQL and no error")
			}
			if d == client.SQLite && strings.Count(where, "?") != len(args) {
				t.Fatalf("%d placeholders for %d arguments: %s", strings.Count(where, "?"), len(args), where)
			}
			if d == client.PostgreSQL && (len(args) > 0 && !strings.Contains(where, fmt.Sprintf("$%d", len(args))) || strings.Contains(where, fmt.Sprintf("$%d", len(args)+1))) {
				t.Fatalf("placeholders for %d arguments: %s", len(args), where)
			}
			other, _, err := client.PlanSQL(otherStrings(p), client.SQLOptions{Dialect: d, Columns: sqlColumns()})
			if err != nil || other != where {
				t.Fatalf("other strings change the SQL:\n%s\n%s %v", where, other, err)
			}
		}
	})
}

// otherStrings is p with every string value changed (type names aside).
func otherStrings(p client.Plan) client.Plan {
	var walk func(n *plan.Node) *plan.Node
	walk = func(n *plan.Node) *plan.Node {
		if n == nil {
			return nil
		}
		out := *n
		out.Args = make([]*plan.Node, len(n.Args))
		for i, a := range n.Args {
			out.Args[i] = walk(a)
		}
		change := func(v any) any {
			if s, ok := v.(string); ok {
				return s + "'; other"
			}
			return v
		}
		if n.Op != plan.OpType {
			out.Value = change(n.Value)
		}
		out.Values = make([]any, len(n.Values))
		for i, v := range n.Values {
			out.Values[i] = change(v)
		}
		return &out
	}
	p.Condition = walk(p.Condition)
	return p
}
