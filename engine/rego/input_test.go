package rego

import (
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/engine"
)

// TestInputValueIsTheDoc: the input Rego sees, built straight into terms,
// is exactly engine.Input.Doc as OPA would convert it.
func TestInputValueIsTheDoc(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 4, 5, 123456789, time.FixedZone("x", 3600))
	for _, in := range []*engine.Input{
		{},
		{Subject: engine.Entity{Type: "user", ID: "ed", Properties: map[string]any{"roles": []any{"editor"}, "n": int64(3), "f": 1.5, "ok": true, "nil": nil}},
			Action:   engine.Action{Name: "read", Properties: map[string]any{"m": map[string]any{"a": "b"}}},
			Resource: engine.Entity{Type: "doc", ID: "1"},
			Context:  map[string]any{"ip": "10.0.0.1"},
			Token:    map[string]any{"sub": "ed", "exp": int64(1)}},
	} {
		got, err := inputValue(in, now)
		if err != nil {
			t.Fatal(err)
		}
		c := *in
		c.Now = now
		want, err := ast.InterfaceToValue(c.Doc())
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Errorf("inputValue = %v\nthe Doc     = %v", got, want)
		}
	}
}
