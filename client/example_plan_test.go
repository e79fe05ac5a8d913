package client_test

import (
	"fmt"

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/engine/plan"
)

// examplePlan is a plan as POST /v1/plan answers it: the documents a user
// may read are hers, or public ones outside HR and legal, or those shared
// with her team.
func examplePlan() client.Plan {
	props := func(name string) []string { return []string{"properties", name} }
	return plan.FromCondition(plan.Or(
		plan.Compare(plan.OpEq, props("owner"), "alice"),
		plan.And(
			plan.Compare(plan.OpEq, props("public"), true),
			plan.Not(plan.In(props("department"), []any{"hr", "legal"})),
		),
		plan.Compare(plan.OpContains, props("shared_with"), "team-7"),
	))
}

// PlanSQL turns the plan into a WHERE clause for PostgreSQL, with every
// value an argument. The columns are typed; shared_with is a text[].
func ExamplePlanSQL() {
	where, args, err := client.PlanSQL(examplePlan(), client.SQLOptions{
		Dialect: client.PostgreSQL,
		Columns: map[string]client.Column{
			"id":                     {Name: "d.id", Type: plan.TypeString},
			"properties.owner":       {Name: "d.owner", Type: plan.TypeString},
			"properties.public":      {Name: "d.public", Type: plan.TypeBool},
			"properties.department":  {Name: "d.department", Type: plan.TypeString},
			"properties.shared_with": {Name: "d.shared_with", List: true, Type: plan.TypeString},
		},
		FirstArg: 2, // $1 is the query's own
	})
	if err != nil {
		fmt.Println(err) // an attribute without a column, say: filter with PlanPredicate instead
		return
	}
	fmt.Println("SELECT d.id FROM documents d WHERE d.tenant = $1 AND " + where)
	fmt.Println(args)
	// Output:
	// SELECT d.id FROM documents d WHERE d.tenant = $1 AND (d.owner = $2 OR (d.public = $3 AND NOT COALESCE(d.department IN ($4, $5), FALSE)) OR $6 = ANY(d.shared_with))
	// [alice true hr legal team-7]
}

// On SQLite, a list is JSON text, and a boolean column's Type says that
// its integers are booleans.
func ExamplePlanSQL_sqlite() {
	where, args, err := client.PlanSQL(examplePlan(), client.SQLOptions{
		Dialect: client.SQLite,
		Columns: map[string]client.Column{
			"properties.owner":       {Name: "owner", Type: plan.TypeString},
			"properties.public":      {Name: "public", Type: plan.TypeBool},
			"properties.department":  {Name: "department", Type: plan.TypeString},
			"properties.shared_with": {Name: "shared_with", List: true},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(where)
	fmt.Println(args)
	// Output:
	// (owner = ? OR (public = ? AND NOT COALESCE(department IN (?, ?), FALSE)) OR EXISTS (SELECT 1 FROM json_each(shared_with) WHERE json_each.type = 'text' AND json_each.value = ?))
	// [alice true hr legal team-7]
}

// A plan that reads an attribute the mapping lacks is refused, never
// guessed at.
func ExamplePlanSQL_unmapped() {
	_, _, err := client.PlanSQL(examplePlan(), client.SQLOptions{
		Dialect: client.SQLite,
		Columns: map[string]client.Column{"properties.owner": {Name: "owner", Type: plan.TypeString}},
	})
	fmt.Println(err)
	// Output:
	// client: PlanSQL: properties.public == true: no column for the attribute properties.public
}

// PlanPredicate filters resources already in memory with the same plan.
func ExamplePlanPredicate() {
	allowed := client.PlanPredicate(examplePlan())
	docs := []map[string]any{
		{"type": "document", "id": "1", "properties": map[string]any{"owner": "alice"}},
		{"type": "document", "id": "2", "properties": map[string]any{"owner": "bob", "public": true, "department": "hr"}},
		{"type": "document", "id": "3", "properties": map[string]any{"owner": "bob", "public": true}},
		{"type": "document", "id": "4", "properties": map[string]any{"owner": "bob", "shared_with": []any{"team-7"}}},
		{"type": "document", "id": "5", "properties": map[string]any{"owner": "bob"}},
	}
	for _, d := range docs {
		fmt.Println(d["id"], allowed(d))
	}
	// Output:
	// 1 true
	// 2 false
	// 3 true
	// 4 true
	// 5 false
}

// PlanMatch reads an application's own struct, through its json tags.
func ExamplePlanMatch() {
	type props struct {
		Owner      string   `json:"owner"`
		Public     bool     `json:"public"`
		Department string   `json:"department,omitempty"`
		SharedWith []string `json:"shared_with,omitempty"`
	}
	type document struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Properties props  `json:"properties"`
	}
	ok, err := client.PlanMatch(examplePlan(), document{Type: "document", ID: "9", Properties: props{Owner: "bob", Public: true, Department: "legal"}})
	fmt.Println(ok, err)
	// Output: false <nil>
}
