package pdp

import (
	"encoding/json"
	"testing"
)

// FuzzParsePreviewInputs feeds arbitrary bytes to the preview's inputs
// parser: never a panic, a 400 client error or complete inputs only.
func FuzzParsePreviewInputs(f *testing.F) {
	for _, s := range []string{
		"[" + body("alice", "read", "alice") + "]",
		`[{"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"token":{"sub":"a"}}]`,
		`[]`, `null`, ``, `[null]`, `{"a":1}`, `[[[[`, `[1,2,3]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, err := ParsePreviewInputs(b, 64, 10)
		if err != nil {
			clientError(t, err)
			return
		}
		if len(ins) > 10 {
			t.Fatalf("accepted %d inputs over the limit", len(ins))
		}
		for _, p := range ins {
			in := p.Input
			if in.Subject.ID == "" || in.Subject.Type == "" || in.Action.Name == "" || in.Resource.Type == "" || in.Resource.ID == "" {
				t.Fatalf("accepted an incomplete input: %+v", in)
			}
		}
		if len(ins) > 0 && !json.Valid(b) {
			t.Fatal("accepted invalid JSON")
		}
	})
}
