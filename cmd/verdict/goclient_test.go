package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/client"
)

// goClientData is the quickstart bundle's data.json with search candidates
// (data.entities).
const goClientData = `{
  "admins": ["root", "ops-oncall"],
  "entities": {
    "user": [{"id": "ed", "properties": {"roles": ["editor"]}}, {"id": "olga"}, {"id": "root"}, {"id": "vera", "properties": {"roles": ["viewer"]}}],
    "document": [{"id": "42", "properties": {"owner": "olga"}}, {"id": "43", "properties": {"owner": "ed", "locked": true}}, {"id": "44", "properties": {"owner": "ed"}}]
  }
}`

// bundleCase is a test case of a bundle's *_test.yaml; expect is a boolean
// or {decision, reasons}.
type bundleCase struct {
	Name  string `yaml:"name"`
	Input struct {
		Subject  client.Subject  `yaml:"subject"`
		Action   client.Action   `yaml:"action"`
		Resource client.Resource `yaml:"resource"`
	} `yaml:"input"`
	Expect yaml.Node `yaml:"expect"`
}

// want is the case's expected decision, and its reasons when it gives
// them.
func (bc bundleCase) want(t *testing.T) (decision bool, reasons []string) {
	t.Helper()
	if bc.Expect.Kind == yaml.ScalarNode {
		if err := bc.Expect.Decode(&decision); err != nil {
			t.Fatalf("%s: %v", bc.Name, err)
		}
		return decision, nil
	}
	var e struct {
		Decision bool     `yaml:"decision"`
		Reasons  []string `yaml:"reasons"`
	}
	if err := bc.Expect.Decode(&e); err != nil {
		t.Fatalf("%s: %v", bc.Name, err)
	}
	return e.Decision, e.Reasons
}

// TestGoClientEndToEnd drives `verdict serve` (not --dev: callers
// authenticate) only through the Go client package (client), with an
// OAuth client and an API key made with the CLI: every test case of the
// quickstart bundle decides as the bundle says, one by one and as one
// batch; the batch semantics; the three searches; and the refusals.
func TestGoClientEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "goclient", "--scope", "verdict:decide", "--data-dir", dataDir)
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("client add: %d %s %s", code, out, errOut)
	}
	secret := m[1]
	code, out, errOut = cli(t, "", "apikey", "create", "--name", "goclient", "--scope", "verdict:decide", "--json", "--data-dir", dataDir)
	var key struct {
		Key string `json:"key"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &key) != nil || key.Key == "" {
		t.Fatalf("apikey create: %d %s %s", code, out, errOut)
	}

	files := map[string]string{"data.json": goClientData}
	for _, f := range []string{".manifest", "documents.verdict.yaml", "quickstart_test.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "policies", "quickstart", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	var suite struct {
		Tests []bundleCase `yaml:"tests"`
	}
	if err := yaml.Unmarshal([]byte(files["quickstart_test.yaml"]), &suite); err != nil || len(suite.Tests) < 5 {
		t.Fatalf("the bundle's test cases: %d %v", len(suite.Tests), err)
	}
	addr := freeAddr(t)
	stop, _ := serveArgs(t, addr, []string{"serve", "--config", unsignedOK(t), "--addr", addr, "--bundle", bundleDir(t, files), "--data-dir", dataDir})
	defer stop()
	base := "http://" + addr

	c, err := client.New(base, client.WithClientCredentials("goclient", secret), client.WithReasons())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Every case of the bundle, one evaluation each, then all in one
	// batch.
	batch := client.Evaluations{Options: client.EvaluationsOptions{Semantic: client.ExecuteAll}}
	for _, tc := range suite.Tests {
		ev := client.Evaluation{Subject: tc.Input.Subject, Action: tc.Input.Action, Resource: tc.Input.Resource}
		batch.Evaluations = append(batch.Evaluations, ev)
		d, err := c.Evaluation(ctx, ev)
		if err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
		decision, reasons := tc.want(t)
		if d.Decision != decision || (reasons != nil && !slices.Equal(d.Reasons, reasons)) || d.Revision != "quickstart-1" || d.ID == "" {
			t.Errorf("%s: %+v, want %v %v", tc.Name, d, decision, reasons)
		}
	}
	ds, err := c.Evaluations(ctx, batch)
	if err != nil || len(ds) != len(suite.Tests) {
		t.Fatalf("the batch: %d decisions, %v", len(ds), err)
	}
	ids := map[string]bool{}
	for i, tc := range suite.Tests {
		if decision, _ := tc.want(t); ds[i].Decision != decision {
			t.Errorf("batch item %d (%s): %v", i, tc.Name, ds[i].Decision)
		}
		ids[ds[i].ID] = true
	}
	if len(ids) != len(ds) || ids[""] {
		t.Errorf("batch decision ids: %v", ids)
	}

	// Short-circuit semantics: ed may read and update olga's document 42,
	// not delete it.
	ed := client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}}
	doc42 := client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}}
	items := []client.Evaluation{{Action: client.Action{Name: "read"}}, {Action: client.Action{Name: "delete"}}, {Action: client.Action{Name: "update"}}}
	for sem, want := range map[client.Semantic][]bool{
		client.ExecuteAll: {true, false, true}, client.DenyOnFirstDeny: {true, false}, client.PermitOnFirstPermit: {true},
	} {
		ds, err := c.Evaluations(ctx, client.Evaluations{Subject: ed, Resource: doc42, Evaluations: items, Options: client.EvaluationsOptions{Semantic: sem}})
		got := make([]bool, len(ds))
		for i, d := range ds {
			got[i] = d.Decision
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", sem, got, err, want)
		}
	}

	// Searches over the candidates the bundle's data declares.
	subjects, err := c.SearchSubject(ctx, client.SearchQuery{Subject: client.Subject{Type: "user"}, Action: client.Action{Name: "update"}, Resource: doc42})
	var who []string
	for _, s := range subjects.Results {
		who = append(who, s.ID)
	}
	if err != nil || !slices.Equal(who, []string{"ed", "olga", "root"}) {
		t.Errorf("who may update 42: %v %v", who, err)
	}
	docs, err := c.SearchResource(ctx, client.SearchQuery{Subject: ed, Action: client.Action{Name: "delete"}, Resource: client.Resource{Type: "document"}})
	if err != nil || len(docs.Results) != 1 || docs.Results[0].ID != "44" {
		t.Errorf("what ed may delete: %+v %v", docs, err)
	}
	acts, err := c.SearchAction(ctx, client.SearchQuery{Subject: ed, Resource: doc42})
	var what []string
	for _, a := range acts.Results {
		what = append(what, a.Name)
	}
	if err != nil || !slices.Equal(what, []string{"read", "update"}) {
		t.Errorf("what ed may do with 42: %v %v", what, err)
	}

	// An API key works as well; a wrong secret is the token endpoint's
	// 401 invalid_client.
	byKey, err := client.New(base, client.WithAPIKey(key.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer byKey.Close()
	if ok, err := byKey.Allowed(ctx, ed, client.Action{Name: "update"}, doc42); err != nil || !ok {
		t.Errorf("with the API key: %v %v", ok, err)
	}
	wrong, err := client.New(base, client.WithClientCredentials("goclient", "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	_, err = wrong.Evaluation(ctx, client.Evaluation{Subject: ed, Action: client.Action{Name: "read"}, Resource: doc42})
	if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != 401 || e.Code != "invalid_client" {
		t.Errorf("a wrong secret: %v", err)
	}
}
