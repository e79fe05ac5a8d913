package bundles

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

func TestRunTestsCovered(t *testing.T) {
	files := map[string][]byte{
		"p.verdict.yaml": []byte(`apiVersion: verdict.dev/v1
kind: Policy
name: docs
combining: first-applicable
rules:
  - id: owners
    effect: allow
    condition: resource.properties.owner == subject.id
  - id: readers
    effect: allow
    actions: [read]
    condition: "'reader' in subject.properties.roles"
  - id: never-reached
    effect: allow
    actions: [write]
`),
		"p.rego": []byte(`package verdict

default decision := true

decision := false if input.subject.properties.suspended

unused_helper if input.context.x == 1
`),
		"p_test.yaml": []byte(`tests:
  - name: owner
    input: {subject: {type: user, id: a}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: a}}}
    expect: {decision: true, reasons: [owners, data.verdict.decision]}
  - name: suspended owner
    input: {subject: {type: user, id: a, properties: {suspended: true}}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: a}}}
    expect: false
`),
	}
	b, err := FromFiles(files, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	cases, err := b.Tests()
	if err != nil {
		t.Fatal(err)
	}
	results, cov := RunTestsCovered(context.Background(), snap, cases)
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s: %s", r.Case.Name, r.Failure)
		}
	}
	hits := map[string]int{}
	for _, r := range cov.Rules {
		hits[r.Rule] = r.Hits
	}
	want := map[string]int{"owners": 2, "readers": 0, "never-reached": 0, "decision": 1, "unused_helper": 0}
	if len(hits) != len(want) {
		t.Fatalf("rules = %v, want %v", hits, want)
	}
	for k, v := range want {
		if hits[k] != v {
			t.Errorf("rule %s: %d hits, want %d (all: %v)", k, hits[k], v, hits)
		}
	}
	if cov.Exercised() != 2 || len(cov.NotExercised()) != 3 {
		t.Fatalf("exercised %d, not exercised %v", cov.Exercised(), cov.NotExercised())
	}
	if r := cov.NotExercised()[0]; r.File != "p.verdict.yaml" || r.Line != 9 || r.Rule != "readers" {
		t.Fatalf("first not exercised = %+v", r)
	}
	// The decisions are those RunTests makes.
	plain := RunTests(context.Background(), snap, cases)
	for i := range plain {
		if plain[i].Decision.Allow != results[i].Decision.Allow || plain[i].Failure != results[i].Failure {
			t.Errorf("case %d: RunTests %+v, RunTestsCovered %+v", i, plain[i], results[i].TestResult)
		}
	}
}
