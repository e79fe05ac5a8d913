package pdp

import (
	"context"
	"strings"
	"testing"
)

// TestMissingMemberNamesTheUnknownOnes: unknown members are ignored, but
// when a required member is missing the error names the unknown ones beside
// it, with the member each most likely stands for (issue 10: {"user": …}
// said only "subject: is required"). The request's own members (explain,
// options, evaluations, page) are never called unknown.
func TestMissingMemberNamesTheUnknownOnes(t *testing.T) {
	const act, res = `"action":{"name":"read"}`, `"resource":{"type":"doc","id":"1"}`
	const sub = `"subject":{"type":"user","id":"a"}`
	many := `{` + act + `,` + res
	for _, k := range []string{"a", "b", "c", "d", "e", "f", strings.Repeat("x", 100)} {
		many += `,"` + k + `":1`
	}
	many += `}`
	for _, tc := range []struct {
		name, body string
		opt        ParseOptions
		want       string
	}{
		{"a misnamed subject", `{"user":{"type":"user","id":"a"},` + act + `,` + res + `}`, ParseOptions{},
			`subject: is required; unknown member "user" (did you mean "subject"?)`},
		{"a misspelt action", `{` + sub + `,"actoin":{"name":"read"},` + res + `}`, ParseOptions{},
			`action: is required; unknown member "actoin" (did you mean "action"?)`},
		{"the request's own members", `{"explain":false,"options":{},"evaluations":[],` + act + `,` + res + `}`, ParseOptions{},
			`subject: is required`},
		{"several unknown", `{"who":1,"what":2,` + act + `,` + res + `}`, ParseOptions{},
			`subject: is required; unknown members "what", "who"`},
		{"many unknown, long", many, ParseOptions{},
			`subject: is required; unknown members "a", "b", "c", "d", "e" and 2 more`},
		{"inside an entity", `{"subject":{"typ":"user","id":"a"},` + act + `,` + res + `}`, ParseOptions{},
			`subject.type: is required; unknown member "subject.typ" (did you mean "subject.type"?)`},
		{"inside a batch item", `{"evaluations":[{"subject":{"type":"u","ID":"a"},` + act + `,` + res + `}]}`, ParseOptions{},
			`evaluations[0].subject.id: is required; unknown member "evaluations[0].subject.ID" (did you mean "evaluations[0].subject.id"?)`},
		{"AuthZEN evaluation", `{"user":{"type":"user","id":"a"},` + act + `,` + res + `,"evaluations":[{}],"options":{}}`,
			ParseOptions{Single: true},
			`subject: is required; unknown member "user" (did you mean "subject"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(context.Background(), []byte(tc.body), Limits{MaxDepth: 64, MaxBatch: 100}, tc.opt, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.(*Error).Message; got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// Unknown members of a complete input are still ignored.
	if _, err := Parse(context.Background(), []byte(`{"user":1,`+sub+`,`+act+`,`+res+`}`), Limits{MaxDepth: 64, MaxBatch: 100}, ParseOptions{}, nil); err != nil {
		t.Errorf("an unknown member beside a complete input: %v", err)
	}
	// An AuthZEN search's page is its own.
	_, err := parseSearch([]byte(`{"page":{"limit":1},"usr":{"type":"user"},`+act+`,`+res+`}`), 64, SearchSubject)
	if want := `subject: is required; unknown member "usr" (did you mean "subject"?)`; err == nil || err.(*Error).Message != want {
		t.Errorf("search: got %v, want %s", err, want)
	}
}
