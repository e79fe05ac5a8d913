package bundles

import (
	"bytes"
	"context"
	"testing"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict/engine"
)

// TestOPAWrittenBundle writes a bundle with OPA's own bundle writer (the
// code behind `opa build`) and checks that Verdict reads and decides with it
// as it is: leading-slash entry names, /data.json, /.manifest with roots.
func TestOPAWrittenBundle(t *testing.T) {
	roots := []string{"authz", "users"}
	b := opabundle.Bundle{
		Manifest: opabundle.Manifest{
			Revision: "opa-42",
			Roots:    &roots,
			Metadata: map[string]any{"verdict": map[string]any{"entrypoint": "authz/decision"}},
		},
		Data: map[string]any{"users": map[string]any{"alice": map[string]any{"roles": []any{"admin"}}}},
		Modules: []opabundle.ModuleFile{{
			URL:  "/authz/policy.rego",
			Path: "/authz/policy.rego",
			Raw: []byte(`package authz

default decision := {"decision": false, "reasons": ["not-admin"]}

decision := {"decision": true, "reasons": ["admin"]} if {
	"admin" in data.users[input.subject.id].roles
}
`),
		}},
	}
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadArchive(&buf, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision() != "opa-42" {
		t.Fatalf("revision %q", got.Revision())
	}
	snap, err := Compile(context.Background(), []*Bundle{got}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"alice": true, "bob": false} {
		d := snap.Decide(context.Background(), &engine.Input{Subject: engine.Entity{Type: "user", ID: id}, Action: engine.Action{Name: "read"}, Resource: engine.Entity{Type: "doc", ID: "1"}}, false)
		if d.Allow != want || d.Err != nil {
			t.Errorf("%s: %+v", id, d)
		}
	}
}
