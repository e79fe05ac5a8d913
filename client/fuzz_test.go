package client

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzAnswer reads arbitrary answers as the client does: an answer is an
// allow only when it says "decision": true, and no body makes the readers
// panic.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		`{"decision":true}`,
		`{"decision":false,"context":{"reasons":["r"],"revision":"v","error":"e"}}`,
		`{"evaluations":[{"decision":true},{"decision":false,"context":null}]}`,
		`{"decision":"true"}`,
		`{"error":{"code":"invalid_input","message":"m","details":["a"]}}`,
		`{"error":"invalid_client","error_description":"d"}`,
		`<html></html>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wireDecision
		if json.Unmarshal(b, &w) == nil {
			if d, err := w.decision(); err == nil && d.Decision != *w.Decision {
				t.Fatalf("%s read as %v", b, d.Decision)
			} else if err == nil && d.Decision {
				var probe struct {
					Decision bool `json:"decision"`
				}
				if json.Unmarshal(b, &probe) != nil || !probe.Decision {
					t.Fatalf("%s read as an allow", b)
				}
			}
		}
		e := newError(http.StatusBadRequest, http.Header{"Retry-After": {string(b)}}, b)
		if e.Status != http.StatusBadRequest || e.RetryAfter < 0 {
			t.Fatalf("%+v", e)
		}
		_ = e.Error()
	})
}
