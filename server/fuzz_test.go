package server

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes to the /v1/decide parser: it must
// never panic, must answer with a client error or a request whose inputs are
// complete, and must never accept a caller-sent token.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		body("alice", "read", "alice"),
		`{"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"evaluations":[{},{"subject":{"type":"u","id":"b"}}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`,
		`{"token":{"sub":"x"},"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}`,
		`{"subject":{"type":"u","id":"a","properties":{"n":1.5e300,"i":-9223372036854775808}},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"context":{"a":[[[[]]]]}}`,
		`[[[[[[`, `{"a":"\u0000"}`, ``, `null`, `{"evaluations":[null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b, 64, 100, nil)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("error is not a 400 client error: %v", err)
			}
			return
		}
		if len(req.Inputs) == 0 {
			t.Fatal("accepted a request with no input")
		}
		for _, in := range req.Inputs {
			if in.Subject.ID == "" || in.Subject.Type == "" || in.Action.Name == "" || in.Resource.Type == "" || in.Resource.ID == "" {
				t.Fatalf("accepted an incomplete input: %+v", in)
			}
			if in.Token != nil {
				t.Fatal("a caller-sent token reached the input")
			}
		}
		if !json.Valid(b) {
			t.Fatal("accepted invalid JSON")
		}
	})
}
