package pdp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// body is a request for subject, action and a document owner owns.
func body(subject, action, owner string) string {
	return fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":%q},"resource":{"type":"document","id":"42","properties":{"owner":%q}}}`, subject, action, owner)
}

// clientError fails t unless err is a *Error a caller is to blame for
// (anything but unavailable).
func clientError(t *testing.T, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Code == CodeUnavailable || pe.Code == CodeSearchTimeout {
		t.Fatalf("error is not a client error: %v", err)
	}
}

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
		req, err := Parse(context.Background(), b, Limits{MaxDepth: 64, MaxBatch: 100}, ParseOptions{}, nil)
		if err != nil {
			clientError(t, err)
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

// FuzzParseAuthZENEvaluations feeds arbitrary bytes to the parser with the
// AuthZEN batch options (item errors, inherited identity fields): it must
// never panic, must answer with a 400 or one entry per item, each either a
// complete input or an error, and must never accept a caller-sent token.
func FuzzParseAuthZENEvaluations(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"write"},"resource":{"type":"record"},"evaluations":[{"resource":{"id":"record-1","properties":{"status":"active"}}},{}]}`,
		`{"action":{"name":"read"},"evaluations":[{"resource":{"type":"record","id":"record-1"}},7,null,{"subject":"x"}]}`,
		`{"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"evaluations":[],"options":{"evaluations_semantic":"permit_on_first_permit"}}`,
		`{"evaluations":[{"token":{"sub":"x"},"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}]}`,
		``, `[]`, `{"evaluations":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := Parse(context.Background(), b, Limits{MaxDepth: 64, MaxBatch: 100}, ParseOptions{ItemErrors: true, InheritIDs: true}, nil)
		if err != nil {
			clientError(t, err)
			return
		}
		if len(req.Inputs) == 0 || (req.Errs != nil && len(req.Errs) != len(req.Inputs)) {
			t.Fatalf("inputs %d, errors %d", len(req.Inputs), len(req.Errs))
		}
		for i, in := range req.Inputs {
			if req.Errs != nil && req.Errs[i] != nil {
				if in != nil {
					t.Fatalf("item %d has an input and an error", i)
				}
				continue
			}
			if in == nil || in.Subject.ID == "" || in.Subject.Type == "" || in.Action.Name == "" || in.Resource.Type == "" || in.Resource.ID == "" {
				t.Fatalf("accepted an incomplete input: %+v", in)
			}
			if in.Token != nil {
				t.Fatal("a caller-sent token reached the input")
			}
		}
	})
}

// FuzzParseSearch feeds arbitrary bytes to the AuthZEN search parser: it
// must never panic, must answer with a 400 or a base input complete but for
// the searched entity, and must never accept a caller-sent token; a page
// token is read back only when it is one the server made for the query.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"limit":2,"token":"AQ"}}`,
		`{"subject":{"type":"user","id":"alice","properties":{"a":[1]}},"action":{"name":"read"},"resource":{"type":"record"}}`,
		`{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"r"},"action":7,"token":{"sub":"x"}}`,
		`{"page":{"limit":1e99}}`, `{"page":{"next_token":""}}`, ``, `[]`,
	} {
		f.Add([]byte(s), byte(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, k byte) {
		kind := SearchKind(k%3 + 1)
		req, err := parseSearch(b, 64, kind)
		if err != nil {
			clientError(t, err)
			return
		}
		in := req.base
		if in.Subject.Type == "" || in.Resource.Type == "" || in.Subject.ID == "" || in.Resource.ID == "" || in.Action.Name == "" {
			t.Fatalf("incomplete base input: %+v", in)
		}
		if in.Token != nil {
			t.Fatal("a caller-sent token reached the input")
		}
		if req.limit < 0 {
			t.Fatalf("negative limit %d", req.limit)
		}
		sum := req.queryHash(3)
		if off, lim, err := readPageToken(req.token, sum); err == nil && pageToken(sum, off, lim) != req.token {
			t.Fatalf("accepted a token it did not make: %q", req.token)
		}
		off, lim, err := readPageToken(pageToken(sum, 7, req.limit), sum)
		if err != nil || off != 7 || lim != req.limit {
			t.Fatalf("round trip: %d %d %v", off, lim, err)
		}
	})
}
