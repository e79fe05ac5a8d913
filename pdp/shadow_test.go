package pdp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// TestShadow: a shadowed revision decides every sampled decision beside
// the active one, off the request path; the answers are the active
// bundle's; the report counts agreements and groups disagreements by the
// outcomes on each side, with a bounded number of examples without token
// claims and redacted as the decision log redacts; stopping returns the
// last report.
func TestShadow(t *testing.T) {
	lc := decisionlog.Default()
	lc.Redact = []string{"/subject/properties/email"}
	dl, err := decisionlog.New(lc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := open(t, DefaultConfig(), WithDecisionLog(dl))
	ctx := context.Background()
	if _, err := svc.ShadowReport(); !errors.Is(err, ErrNoShadow) {
		t.Fatalf("report before a shadow: %v", err)
	}
	// The candidate: the quickstart with a rule that lets everyone read.
	files := map[string][]byte{}
	for _, name := range []string{"documents.verdict.yaml", "data.json"} {
		b, err := os.ReadFile(filepath.Join("..", "policies", "quickstart", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	files["documents.verdict.yaml"] = append(files["documents.verdict.yaml"], []byte(`
  - id: everyone-reads
    effect: allow
    actions: [read]
    condition: "true"
`)...)
	files[".manifest"] = []byte(`{"revision":"candidate-2"}`)
	b, err := bundles.FromFiles(files, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	archive, err := bundles.Pack(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.StartShadow(ctx, archive, ShadowConfig{Ratio: 0}); err == nil {
		t.Fatal("a ratio of 0 was accepted")
	}
	rev, err := svc.StartShadow(ctx, archive, ShadowConfig{Ratio: 1, Examples: 2})
	if err != nil || rev != "candidate-2" {
		t.Fatalf("start: %q %v", rev, err)
	}
	input := func(user, action string) *engine.Input {
		return &engine.Input{Subject: engine.Entity{Type: "user", ID: user, Properties: map[string]any{"email": user + "@example.com"}}, Action: engine.Action{Name: action},
			Resource: engine.Entity{Type: "document", ID: "1", Properties: map[string]any{"owner": "olga"}},
			Token:    map[string]any{"sub": user, "secret": "x"}}
	}
	// 6 reads by strangers (denied now, allowed by the candidate), 4
	// deletes by the owner (allowed by both).
	for i := range 6 {
		if r := svc.Evaluate(ctx, input("stranger", "read"), false, Meta{}); r.Decision || r.Context.Revision != "quickstart-1" {
			t.Fatalf("read %d was answered by %+v", i, r)
		}
	}
	for range 4 {
		if r := svc.Evaluate(ctx, input("olga", "delete"), false, Meta{}); !r.Decision {
			t.Fatalf("the owner's delete: %+v", r)
		}
	}
	testutil.WaitFor(t, "the shadow to decide all ten", time.Millisecond, func() bool {
		r, _ := svc.ShadowReport()
		return r.Sampled == 10
	})
	r, err := svc.StopShadow()
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != "candidate-2" || r.Agreed != 4 || r.Disagreed != 6 || r.ReasonsChanged != 0 || r.Dropped != 0 || len(r.Disagreements) != 1 {
		t.Fatalf("report %+v", r)
	}
	d := r.Disagreements[0]
	if d.Count != 6 || d.Active.Decision || !d.Candidate.Decision || len(d.Candidate.Reasons) != 1 || d.Candidate.Reasons[0] != "everyone-reads" || len(d.Examples) != 2 {
		t.Fatalf("disagreement %+v", d)
	}
	if ctx, ok := d.Examples[0]["context"].(map[string]any); !ok || ctx == nil {
		t.Fatalf("an example's context: %v", d.Examples[0]["context"])
	}
	if _, hasToken := d.Examples[0]["token"]; hasToken {
		t.Fatalf("an example kept the token: %v", d.Examples[0])
	}
	if props := d.Examples[0]["subject"].(map[string]any)["properties"].(map[string]any); props["email"] != nil {
		t.Fatalf("an example kept what the decision log redacts: %v", d.Examples[0])
	}
	if len(r.Agreements) != 1 || r.Agreements[0].Count != 4 || !r.Agreements[0].Outcome.Decision || len(r.Agreements[0].Outcome.Reasons) == 0 {
		t.Fatalf("agreements %+v", r.Agreements)
	}
	if _, err := svc.StopShadow(); !errors.Is(err, ErrNoShadow) {
		t.Fatalf("stop twice: %v", err)
	}
	// Without a shadow nothing is sampled (and nothing blocks).
	svc.Evaluate(ctx, input("stranger", "read"), false, Meta{})
}
