package pdp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// Load the quickstart bundle and ask one question with a typed input.
func ExampleOpen() {
	ctx := context.Background()
	svc, err := pdp.Open(ctx, pdp.DefaultConfig(), bundles.DefaultConfig(), []string{"../policies/quickstart"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	allowed, resp := svc.Check(ctx, engine.Input{
		Subject:  engine.Entity{Type: "user", ID: "ed", Properties: map[string]any{"roles": []any{"editor"}}},
		Action:   engine.Action{Name: "update"},
		Resource: engine.Entity{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}},
	})
	fmt.Println(allowed, resp.Context.Reasons, resp.Context.Revision)
	// Output: true [editors-read-update] quickstart-1
}

// Answer a /v1/decide body, here a batch, exactly as the server would.
func ExampleService_DecideJSON() {
	ctx := context.Background()
	svc, err := pdp.Open(ctx, pdp.DefaultConfig(), bundles.DefaultConfig(), []string{"../policies/quickstart"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	res, err := svc.DecideJSON(ctx, []byte(`{
	  "subject":  {"type": "user", "id": "ed", "properties": {"roles": ["editor"]}},
	  "resource": {"type": "document", "id": "42", "properties": {"owner": "olga"}},
	  "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "delete"}}]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range res.Evaluations {
		fmt.Println(e.Decision, e.Context.Reasons)
	}
	// Output:
	// true [editors-read-update]
	// false [verdict:no-matching-allow]
}

// A body the service refuses is an *pdp.Error with a stable code.
func ExampleService_DecideJSON_invalid() {
	ctx := context.Background()
	svc, err := pdp.Open(ctx, pdp.DefaultConfig(), bundles.DefaultConfig(), []string{"../policies/quickstart"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	_, err = svc.DecideJSON(ctx, []byte(`{"subject":{"type":"user","id":"ed","id":"root"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`))
	var perr *pdp.Error
	if !errors.As(err, &perr) {
		log.Fatalf("not a *pdp.Error: %v", err)
	}
	fmt.Println(perr.Code)
	fmt.Println(perr.Message)
	// Output:
	// invalid_json
	// malformed JSON: duplicate member "id" (at /subject, byte 36)
}

// The answer renders as POST /v1/decide's JSON.
func ExampleResult_Body() {
	ctx := context.Background()
	svc, err := pdp.Open(ctx, pdp.DefaultConfig(), bundles.DefaultConfig(), []string{"../policies/quickstart"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	res, _ := svc.DecideJSON(ctx, []byte(`{"subject":{"type":"user","id":"olga"},"action":{"name":"delete"},"resource":{"type":"document","id":"42","properties":{"owner":"olga"}}}`))
	res.Evaluations[0].Context.DecisionID = "" // different every time
	b, _ := json.Marshal(res.Body())
	fmt.Println(string(b))
	// Output: {"decision":true,"context":{"reasons":["owners-anything"],"revision":"quickstart-1"}}
}
