package bench

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// rbacSchema is a realistic schema for the benchmark inputs: typed subject
// and resource properties and an IPv4 address in the context.
const rbacSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["subject", "action", "resource"],
  "properties": {
    "subject": {
      "type": "object",
      "properties": {
        "type": {"const": "user"},
        "properties": {
          "type": "object",
          "properties": {
            "roles": {"type": "array", "items": {"type": "string"}, "maxItems": 32},
            "department": {"type": "string"},
            "clearance": {"type": "integer", "minimum": 0},
            "suspended": {"type": "boolean"}
          }
        }
      }
    },
    "action": {"properties": {"name": {"type": "string", "maxLength": 64}}},
    "resource": {
      "properties": {
        "properties": {
          "type": "object",
          "properties": {
            "owner": {"type": "string"},
            "department": {"type": "string"},
            "sensitivity": {"type": "integer", "minimum": 0}
          }
        }
      }
    },
    "context": {"properties": {"ip": {"type": "string", "format": "ipv4"}}}
  }
}`

// schemaSnapshot is the rbac-cel bundle with rbacSchema for both resource
// types of the inputs.
func schemaSnapshot(tb testing.TB) *engine.Snapshot {
	tb.Helper()
	b, err := bundles.Load(celBundle, bundles.DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{"schemas/document.json": []byte(rbacSchema), "schemas/report.json": []byte(rbacSchema)}
	for k, v := range b.Files {
		files[k] = v
	}
	withSchema, err := bundles.FromFiles(files, bundles.DefaultLimits())
	if err != nil {
		tb.Fatal(err)
	}
	m := bundles.NewManager(bundles.DefaultConfig(), nil)
	a, err := m.Prepare(context.Background(), []*bundles.Bundle{withSchema})
	if err != nil {
		tb.Fatal(err)
	}
	return a.Snapshot
}

// BenchmarkDecideCELWithSchema is BenchmarkDecideCEL with every input first
// validated against a JSON Schema (all of them match, so the policy runs
// too): the difference is the cost of the schema.
func BenchmarkDecideCELWithSchema(b *testing.B) {
	snap := schemaSnapshot(b)
	ins := inputs(64)
	ctx := context.Background()
	for _, in := range ins {
		c := *in
		if d := snap.Decide(ctx, &c, false); d.Violation != nil {
			b.Fatalf("a benchmark input breaks the schema: %v", d.Violation)
		}
	}
	benchDecisions(b, snap)
}
