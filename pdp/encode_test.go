package pdp

import (
	"encoding/json"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

// FuzzAppendJSON checks AppendJSON byte for byte against encoding/json.
func FuzzAppendJSON(f *testing.F) {
	f.Add(true, "rbac.allow", "r1", "4b1c", "", "", false, false)
	f.Add(false, "a<b>&\"c\\\n\u2028é\xff", "rev\t", "", "evaluation deadline exceeded", "200", true, true)
	f.Fuzz(func(t *testing.T, decision bool, reason, revision, id, errMsg, code string, nilReasons, explain bool) {
		r := Response{Decision: decision, Context: DecisionContext{
			Reasons: []string{reason, reason + "x"}, Revision: revision, DecisionID: id, Error: errMsg, Code: code, Reason: code,
		}}
		if nilReasons {
			r.Context.Reasons = nil
		}
		// A cache hint and a signature, from what the corpus holds.
		r.Context.TTL, r.Context.Signature = len(revision), id+reason
		if explain {
			r.Context.Explain = []engine.RuleTrace{{Policy: "p", Rule: reason, Matched: true}}
		}
		for _, res := range []Result{{Evaluations: []Response{r}}, {Batch: true, Evaluations: []Response{r, r}}, {Batch: true, Evaluations: []Response{}}} {
			want, err := json.Marshal(res.Body())
			if err != nil {
				t.Fatal(err)
			}
			got, err := res.AppendJSON([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+string(want) {
				t.Fatalf("AppendJSON wrote\n%s\nencoding/json writes\n%s", got[6:], want)
			}
			// Bare answers are the decision alone.
			bare := Result{Batch: res.Batch, Evaluations: make([]Response, len(res.Evaluations))}
			for i, e := range res.Evaluations {
				e.Bare = true
				bare.Evaluations[i] = e
			}
			decisions := []map[string]bool{}
			for _, e := range res.Evaluations {
				decisions = append(decisions, map[string]bool{"decision": e.Decision})
			}
			var wantBare []byte
			if res.Batch {
				wantBare, _ = json.Marshal(map[string]any{"evaluations": decisions})
			} else {
				wantBare, _ = json.Marshal(decisions[0])
			}
			got, err = bare.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(wantBare) {
				t.Fatalf("bare AppendJSON wrote %s, want %s", got, wantBare)
			}
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	res := Result{Evaluations: []Response{{Decision: true, Context: DecisionContext{
		Reasons: []string{"rbac.role-permission"}, Revision: "sha256:0123456789abcdef", DecisionID: "2f1e4a0c-1b7d-4f7e-9a55-0c1d2e3f4a5b"}}}}
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = res.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(res.Body())
		}
	})
}
