package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/verdictpdp/verdict/client"
)

// The examples run against a real Verdict that serves policies/quickstart
// (with a few users and documents declared for search); exampleServer,
// in main_test.go, starts it once and returns its URL and a client
// registered with scope verdict:decide.

func ExampleNew_clientCredentials() {
	baseURL, clientID, secret := exampleServer()

	// One client for the whole program: it fetches a token on first use
	// and keeps it (and its connections) until shortly before it expires.
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, secret, "verdict:decide"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ok, err := c.Allowed(context.Background(),
		client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}},
		client.Action{Name: "update"},
		client.Resource{Type: "document", ID: "42"})
	if err != nil {
		log.Fatal(err) // an error is never an allow
	}
	fmt.Println("ed may update document 42:", ok)
	// Output: ed may update document 42: true
}

func ExampleClient_Evaluation() {
	baseURL, clientID, secret := exampleServer()
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, secret), client.WithReasons())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d, err := c.Evaluation(ctx, client.Evaluation{
		Subject:  client.Subject{Type: "user", ID: "vera", Properties: map[string]any{"roles": []string{"viewer"}}},
		Action:   client.Action{Name: "update"},
		Resource: client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}},
		Context:  client.Context{"ip": "192.0.2.10"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("decision:", d.Decision)
	fmt.Println("reasons:", d.Reasons)
	fmt.Println("revision:", d.Revision)
	fmt.Println("has a decision id:", d.ID != "")
	// Output:
	// decision: false
	// reasons: [verdict:no-matching-allow]
	// revision: quickstart-1
	// has a decision id: true
}

func ExampleClient_Evaluations() {
	baseURL, clientID, secret := exampleServer()
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, secret))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The top-level subject and resource are the defaults of every item.
	actions := []string{"read", "delete", "update"}
	batch := client.Evaluations{
		Subject:  client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}},
		Resource: client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}},
		Options:  client.EvaluationsOptions{Semantic: client.DenyOnFirstDeny},
	}
	for _, a := range actions {
		batch.Evaluations = append(batch.Evaluations, client.Evaluation{Action: client.Action{Name: a}})
	}
	ds, err := c.Evaluations(context.Background(), batch)
	if err != nil {
		log.Fatal(err)
	}
	// deny_on_first_deny stops after delete: update is not decided.
	for i, d := range ds {
		fmt.Printf("%s: %v\n", actions[i], d.Decision)
	}
	// Output:
	// read: true
	// delete: false
}

func ExampleClient_SearchSubject() {
	baseURL, clientID, secret := exampleServer()
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, secret))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Who may update document 42? Two results a page.
	q := client.SearchQuery{
		Subject:  client.Subject{Type: "user"},
		Action:   client.Action{Name: "update"},
		Resource: client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}},
		Page:     client.Page{Limit: 2},
	}
	for {
		res, err := c.SearchSubject(context.Background(), q)
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range res.Results {
			fmt.Println(s.Type, s.ID)
		}
		if res.Page.NextToken == "" {
			break
		}
		q.Page.Token = res.Page.NextToken
	}
	// Output:
	// user ed
	// user olga
	// user root
}

func ExampleClient_SearchAction() {
	baseURL, clientID, secret := exampleServer()
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, secret))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.SearchAction(context.Background(), client.SearchQuery{
		Subject:  client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}},
		Resource: client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range res.Results {
		fmt.Println(a.Name)
	}
	// Output:
	// read
	// update
}

func ExampleError() {
	baseURL, clientID, _ := exampleServer()
	c, err := client.New(baseURL, client.WithClientCredentials(clientID, "not-the-secret"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Evaluation(context.Background(), client.Evaluation{
		Subject:  client.Subject{Type: "user", ID: "ed"},
		Action:   client.Action{Name: "read"},
		Resource: client.Resource{Type: "document", ID: "42"},
	})
	if e, ok := errors.AsType[*client.Error](err); ok {
		fmt.Println(e.Status, e.Code, client.IsUnauthorized(err))
	}
	// Output: 401 invalid_client true
}
