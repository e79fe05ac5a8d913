package client_test

// PlanSQL against real databases: for thousands of random conditions, the
// rows a SQLite database (modernc.org/sqlite) and a real PostgreSQL
// (internal/pgtest) return for the WHERE clause are exactly the resources
// for which plan.Node.Eval holds.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/engine/plan"
	"github.com/verdictpdp/verdict/internal/pgtest"
)

const (
	// pgRows and sqliteRows are the numbers of generated resources in the
	// tables: fewer in SQLite, whose evaluation of a condition on a row is
	// some 15 times slower under the race detector (modernc.org/sqlite is
	// SQLite's C compiled to Go, all of it instrumented).
	pgRows, sqliteRows = 3000, 600
	// dbTrees is the number of random conditions run against each table.
	dbTrees = 1000
	// dbSeed makes the resources and conditions the same on every run.
	dbSeed = 18
)

// dbResource is one generated resource: its attributes as Eval sees them
// (absent: no key), and whether each absent one is written as an explicit
// null in the resource object (Eval treats both alike; SQL has NULL).
type dbResource struct {
	id    string
	attrs map[string]any
	nulls map[string]bool
}

// object is the resource object Eval reads.
func (r dbResource) object() map[string]any {
	props := map[string]any{}
	for k, v := range r.attrs {
		props[k] = v
	}
	for k := range r.nulls {
		props[k] = nil
	}
	return map[string]any{"type": "document", "id": r.id, "properties": props}
}

// dbAttrs are the attributes of the tables, after id, in column order.
var dbAttrs = []string{"owner", "department", "sensitivity", "score", "public", "path", "tags"}

// Value pools: what the resources hold and what the conditions compare
// with, overlapping so that conditions hit and miss, with the look-alikes
// that a sloppy translation confuses ("3" and 3, 1 and true, "Alice" and
// "alice", % and _ in prefixes).
var (
	poolOwner = []string{"alice", "Alice", "ALICE", "bob", "carol", "al%ce", "a_b", "ab", "", "3", "éva", "Zoë"}
	poolDept  = []string{"eng", "Eng", "sales", "ops", "eng_ops", "eng%", "true", "1"}
	poolPath  = []string{"/a/b", "/a/%/c", "/A/b", "/a_b/c", "/ab", "/a", "/a/bc", "/b", "a/b", "/a/b/c"}
	poolTags  = []string{"red", "Red", "blue", "green", "x_y", "x%", "3", "true"}
	poolInts  = []int64{-1, 0, 1, 2, 3, 4, 5}
	poolFloat = []float64{-1.5, 0, 0.5, 1, 2, 2.5, 3, 4.75}
	prefixes  = []string{"", "a", "A", "al", "Al", "al%", "a_", "a%", "%", "_", "/a", "/A", "/a_", "/a/%", "/a%", "/a/", "doc-00", "doc-1", "e", "En", "eng_", "3", "Z", "é"}
	// crossKind are values of every kind, for any attribute: among them
	// the JSON text of a nested list (which SQLite's json_each gives as
	// the value of such an element) and numbers past int4 and int64.
	crossKind = []any{"3", int64(3), 3.0, 2.5, true, false, int64(1), int64(0), "alice", "eng", "red", "", "1", "true",
		`["red"]`, int64(1) << 40, 1e15, -2.5e-3, 1e300}
)

// genTyped is the resource set of the typed tables: each attribute of its
// column's type, or absent.
func genTyped(rng *rand.Rand, n int) []dbResource {
	out := make([]dbResource, n)
	for i := range out {
		r := dbResource{id: fmt.Sprintf("doc-%04d", i), attrs: map[string]any{}, nulls: map[string]bool{}}
		for _, a := range dbAttrs {
			if rng.IntN(5) == 0 { // absent
				if rng.IntN(2) == 0 {
					r.nulls[a] = true
				}
				continue
			}
			switch a {
			case "owner":
				r.attrs[a] = pick(rng, poolOwner)
			case "department":
				r.attrs[a] = pick(rng, poolDept)
			case "path":
				r.attrs[a] = pick(rng, poolPath)
			case "sensitivity":
				r.attrs[a] = pick(rng, poolInts)
			case "score":
				r.attrs[a] = pick(rng, poolFloat)
			case "public":
				r.attrs[a] = rng.IntN(2) == 0
			case "tags":
				tags := []any{} // an empty list is a list
				for range rng.IntN(4) {
					tags = append(tags, pick(rng, poolTags))
				}
				r.attrs[a] = tags
			}
		}
		out[i] = r
	}
	return out
}

// genDynamic is the resource set of the SQLite table without column
// types: each scalar attribute a string, an int or a double (SQLite has
// no booleans), and the lists of mixed elements, booleans and nested
// lists among them.
func genDynamic(rng *rand.Rand, n int) []dbResource {
	out := make([]dbResource, n)
	strs := slices.Concat(poolOwner, poolDept, poolPath)
	for i := range out {
		r := dbResource{id: fmt.Sprintf("doc-%04d", i), attrs: map[string]any{}, nulls: map[string]bool{}}
		for _, a := range dbAttrs {
			if rng.IntN(5) == 0 {
				if rng.IntN(2) == 0 {
					r.nulls[a] = true
				}
				continue
			}
			if a == "tags" {
				tags := []any{}
				for range rng.IntN(4) {
					switch rng.IntN(6) {
					case 0, 1:
						tags = append(tags, pick(rng, poolTags))
					case 2:
						tags = append(tags, pick(rng, poolInts))
					case 3:
						tags = append(tags, 2.5)
					case 4:
						tags = append(tags, rng.IntN(2) == 0)
					case 5:
						tags = append(tags, []any{"red"})
					}
				}
				r.attrs[a] = tags
				continue
			}
			switch rng.IntN(3) {
			case 0:
				r.attrs[a] = pick(rng, strs)
			case 1:
				r.attrs[a] = pick(rng, poolInts)
			case 2:
				r.attrs[a] = pick(rng, poolFloat) // 3.0 too: a double that is whole
			}
		}
		out[i] = r
	}
	return out
}

func pick[T any](rng *rand.Rand, pool []T) T { return pool[rng.IntN(len(pool))] }

// genCondition is a random condition of at most depth levels over the
// tables' attributes, with every operator, built as raw nodes (no
// simplification: empty and/or, not of not, constants inside).
func genCondition(rng *rand.Rand, depth int) *plan.Node {
	if depth > 0 && rng.IntN(3) > 0 {
		switch rng.IntN(5) {
		case 0, 1:
			return &plan.Node{Op: plan.OpAnd, Args: genArgs(rng, depth)}
		case 2, 3:
			return &plan.Node{Op: plan.OpOr, Args: genArgs(rng, depth)}
		default:
			return &plan.Node{Op: plan.OpNot, Args: []*plan.Node{genCondition(rng, depth-1)}}
		}
	}
	if rng.IntN(40) == 0 {
		return plan.Bool(rng.IntN(2) == 0)
	}
	attr := pick(rng, append([]string{"id"}, dbAttrs...))
	path := []string{"properties", attr}
	if attr == "id" {
		path = []string{"id"}
	}
	value := func() any {
		if rng.IntN(5) < 3 {
			switch attr {
			case "id":
				return fmt.Sprintf("doc-%04d", rng.IntN(1000))
			case "owner":
				return pick(rng, poolOwner)
			case "department":
				return pick(rng, poolDept)
			case "path":
				return pick(rng, poolPath)
			case "tags":
				return pick(rng, poolTags)
			case "sensitivity":
				return pick(rng, poolInts)
			case "score":
				return pick(rng, poolFloat)
			case "public":
				return rng.IntN(2) == 0
			}
		}
		v := pick(rng, crossKind)
		if f, ok := v.(float64); ok && rng.IntN(2) == 0 {
			return json.Number(fmt.Sprint(f)) // as a decoder with UseNumber gives it
		}
		return v
	}
	switch op := pick(rng, []string{plan.OpEq, plan.OpNe, plan.OpLt, plan.OpLe, plan.OpGt, plan.OpGe, plan.OpIn, plan.OpHas, plan.OpStartsWith, plan.OpType, plan.OpContains, plan.OpContains}); op {
	case plan.OpIn:
		values := make([]any, rng.IntN(5))
		for i := range values {
			values[i] = value()
		}
		return &plan.Node{Op: op, Path: path, Values: values}
	case plan.OpHas:
		return plan.Has(path)
	case plan.OpStartsWith:
		return plan.Compare(op, path, pick(rng, prefixes))
	case plan.OpType:
		return &plan.Node{Op: op, Path: path, Value: pick(rng, []string{plan.TypeString, plan.TypeBool, plan.TypeInt, plan.TypeDouble, plan.TypeList, plan.TypeMap})}
	case plan.OpContains:
		// Only a list column answers contains: elsewhere PlanSQL refuses it.
		return plan.Compare(op, []string{"properties", "tags"}, value())
	default:
		return plan.Compare(op, path, value())
	}
}

func genArgs(rng *rand.Rand, depth int) []*plan.Node {
	args := make([]*plan.Node, rng.IntN(4))
	for i := range args {
		args[i] = genCondition(rng, depth-1)
	}
	return args
}

// queryFunc runs "SELECT id FROM <table> WHERE <where>".
type queryFunc func(where string, args []any) ([]string, error)

// checkAgainstEval runs dbTrees random conditions through PlanSQL and q,
// and compares the ids with those of the resources Eval allows.
func checkAgainstEval(t *testing.T, rng *rand.Rand, resources []dbResource, opts client.SQLOptions, q queryFunc) {
	t.Helper()
	objects := make([]map[string]any, len(resources))
	for i, r := range resources {
		objects[i] = r.object()
	}
	failures, allowedSome, deniedSome := 0, 0, 0
	for i := range dbTrees {
		c := genCondition(rng, 4)
		p := plan.Plan{Kind: plan.Conditional, Condition: c}
		where, args, err := client.PlanSQL(p, opts)
		if err != nil {
			t.Fatalf("condition %d: %s: %v", i, c, err)
		}
		checkPlaceholders(t, opts, where, args)
		got, err := q(where, args)
		if err != nil {
			t.Fatalf("condition %d: %s\nWHERE %s\nargs %#v\n%v", i, c, where, args, err)
		}
		var want []string
		for j, obj := range objects {
			if c.Eval(obj) {
				want = append(want, resources[j].id)
			}
		}
		slices.Sort(got)
		if len(want) > 0 {
			allowedSome++
		}
		if len(want) < len(resources) {
			deniedSome++
		}
		if !slices.Equal(got, want) {
			failures++
			t.Errorf("condition %d: %s\nWHERE %s\nargs %#v\n%s", i, c, where, args, diffIDs(resources, objects, got, want))
			if failures >= 5 {
				t.FailNow()
			}
		}
	}
	// The conditions must discriminate: most allow some rows and deny others.
	if allowedSome < dbTrees/3 || deniedSome < dbTrees/3 {
		t.Errorf("of %d conditions, %d allow some rows and %d deny some: the generator is too one-sided", dbTrees, allowedSome, deniedSome)
	}
}

// diffIDs describes the first rows on which the database and Eval differ.
func diffIDs(resources []dbResource, objects []map[string]any, got, want []string) string {
	var b strings.Builder
	n := 0
	for i, r := range resources {
		_, inGot := slices.BinarySearch(got, r.id)
		_, inWant := slices.BinarySearch(want, r.id)
		if inGot == inWant {
			continue
		}
		js, _ := json.Marshal(objects[i]["properties"])
		fmt.Fprintf(&b, "  %s: SQL %v, Eval %v: %s\n", r.id, inGot, inWant, js)
		if n++; n == 5 {
			break
		}
	}
	fmt.Fprintf(&b, "  (%d rows from SQL, %d from Eval)", len(got), len(want))
	return b.String()
}

// checkPlaceholders checks that where has exactly one placeholder an
// argument, numbered from FirstArg on PostgreSQL.
func checkPlaceholders(t *testing.T, opts client.SQLOptions, where string, args []any) {
	t.Helper()
	if opts.Dialect == client.SQLite {
		if n := strings.Count(where, "?"); n != len(args) {
			t.Fatalf("%d placeholders for %d arguments: %s", n, len(args), where)
		}
		return
	}
	first := max(opts.FirstArg, 1)
	for i := range args {
		if !strings.Contains(where, fmt.Sprintf("$%d", first+i)) {
			t.Fatalf("no $%d for argument %d: %s", first+i, i, where)
		}
	}
	if strings.Contains(where, fmt.Sprintf("$%d", first+len(args))) {
		t.Fatalf("a placeholder past the %d arguments: %s", len(args), where)
	}
}

// typedColumns maps the typed tables' columns.
func typedColumns() map[string]client.Column {
	return map[string]client.Column{
		"id":                     {Name: "t.id", Type: plan.TypeString},
		"properties.owner":       {Name: "t.owner", Type: plan.TypeString},
		"properties.department":  {Name: `"department"`, Type: plan.TypeString},
		"properties.sensitivity": {Name: "t.sensitivity", Type: plan.TypeInt},
		"properties.score":       {Name: "t.score", Type: plan.TypeDouble},
		"properties.public":      {Name: "t.public", Type: plan.TypeBool},
		"properties.path":        {Name: "t.path", Type: plan.TypeString},
		"properties.tags":        {Name: "t.tags", List: true, Type: plan.TypeString},
	}
}

// rowArgs are r's column values for an INSERT (NULL for absent), with
// list as the tags' form.
func rowArgs(r dbResource, list func([]any) any) []any {
	args := []any{r.id}
	for _, a := range dbAttrs {
		v, ok := r.attrs[a]
		switch {
		case !ok:
			args = append(args, nil)
		case a == "tags":
			args = append(args, list(v.([]any)))
		default:
			args = append(args, v)
		}
	}
	return args
}

func jsonList(l []any) any {
	b, err := json.Marshal(l)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// openSQLite is a database file in t's temporary directory.
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	var version string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("SQLite %s", version)
	return db
}

// sqliteQuery queries table of db.
func sqliteQuery(db *sql.DB, table string) queryFunc {
	return func(where string, args []any) ([]string, error) {
		rows, err := db.Query("SELECT t.id FROM "+table+" AS t WHERE "+where, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, rows.Err()
	}
}

func insertAll(t *testing.T, db *sql.DB, stmt string, resources []dbResource, list func([]any) any) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources {
		if _, err := tx.Exec(stmt, rowArgs(r, list)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestPlanSQLSQLiteMatchesEval: typed columns (Column.Type set), lists as
// JSON text.
func TestPlanSQLSQLiteMatchesEval(t *testing.T) {
	db := openSQLite(t)
	if _, err := db.Exec(`CREATE TABLE docs (id TEXT PRIMARY KEY, owner TEXT, department TEXT,
		sensitivity INTEGER, score REAL, public BOOLEAN, path TEXT, tags TEXT)`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(dbSeed, 1))
	resources := genTyped(rng, sqliteRows)
	insertAll(t, db, "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", resources, jsonList)
	checkAgainstEval(t, rng, resources, client.SQLOptions{Dialect: client.SQLite, Columns: typedColumns()}, sqliteQuery(db, "docs"))
}

// TestPlanSQLSQLiteDynamicMatchesEval: columns declared without a type
// (no affinity) holding strings, ints and doubles mixed, mapped without
// Column.Type, and lists of mixed JSON elements.
func TestPlanSQLSQLiteDynamicMatchesEval(t *testing.T) {
	db := openSQLite(t)
	if _, err := db.Exec(`CREATE TABLE docs (id TEXT PRIMARY KEY, owner, department, sensitivity, score, public, path, tags TEXT)`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(dbSeed, 2))
	resources := genDynamic(rng, sqliteRows)
	insertAll(t, db, "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", resources, jsonList)
	cols := typedColumns()
	for k, c := range cols {
		if k != "id" {
			c.Type = ""
			cols[k] = c
		}
	}
	checkAgainstEval(t, rng, resources, client.SQLOptions{Dialect: client.SQLite, Columns: cols}, sqliteQuery(db, "docs"))
}

// TestPlanSQLPostgreSQLMatchesEval: a real PostgreSQL, lists as text[],
// the text columns in a linguistic collation when the server has one (so
// that ordering by bytes must come from the SQL), placeholders from $3.
func TestPlanSQLPostgreSQLMatchesEval(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	collate := ""
	var icu bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')`).Scan(&icu); err != nil {
		t.Fatal(err)
	}
	if icu {
		collate = ` COLLATE "und-x-icu"`
	}
	t.Logf("PostgreSQL %s, text columns%s", conn.PgConn().ParameterStatus("server_version"), collate)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE docs (id text%[1]s PRIMARY KEY, owner text%[1]s, department text%[1]s,
		sensitivity integer, score double precision, public boolean, path text%[1]s, tags text[])`, collate)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(dbSeed, 3))
	resources := genTyped(rng, pgRows)
	rows := make([][]any, len(resources))
	for i, r := range resources {
		rows[i] = rowArgs(r, func(l []any) any {
			s := make([]string, len(l))
			for i, v := range l {
				s[i] = v.(string)
			}
			return s
		})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"docs"}, []string{"id", "owner", "department", "sensitivity", "score", "public", "path", "tags"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE docs"); err != nil {
		t.Fatal(err)
	}
	// Two arguments of the caller's come first.
	opts := client.SQLOptions{Dialect: client.PostgreSQL, Columns: typedColumns(), FirstArg: 3}
	checkAgainstEval(t, rng, resources, opts, func(where string, args []any) ([]string, error) {
		rows, err := conn.Query(ctx, "SELECT t.id FROM docs AS t WHERE t.id <> $1 AND length(t.id) = $2 AND "+where,
			append([]any{"no such id", 8}, args...)...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	})
}
