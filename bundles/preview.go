package bundles

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// Sources of the inputs of an impact preview.
const (
	SourceRequest        = "request"
	SourceCandidateTests = "candidate tests"
	SourceActiveTests    = "active tests"
	// SourceLogged marks inputs taken from the decision log.
	SourceLogged = "logged decisions"
)

// PreviewInput is one input an impact preview decides under both revisions.
type PreviewInput struct {
	// Source says where the input came from (one of the Source constants).
	Source string
	// Name identifies the input within its source: "inputs[3]", or a test
	// case's file:line and name.
	Name  string
	Input *engine.Input
}

// TestInputs returns the inputs of a's test cases, marked with source; none
// for a nil a.
func TestInputs(a *Active, source string) []PreviewInput {
	if a == nil {
		return nil
	}
	out := make([]PreviewInput, 0, len(a.Cases))
	for _, c := range a.Cases {
		out = append(out, PreviewInput{Source: source, Name: fmt.Sprintf("%s:%d: %s", c.File, c.Line, c.Name), Input: c.Input})
	}
	return out
}

// DefaultInputs returns what a preview decides when it is given no inputs:
// the inputs of the candidate's test cases, then those of the active
// bundle's (nil active: none) that the candidate's do not already hold.
func DefaultInputs(active, candidate *Active) []PreviewInput {
	out := TestInputs(candidate, SourceCandidateTests)
	seen := make(map[string]bool, len(out))
	for _, p := range out {
		seen[inputKey(p.Input)] = true
	}
	for _, p := range TestInputs(active, SourceActiveTests) {
		if !seen[inputKey(p.Input)] {
			out = append(out, p)
		}
	}
	return out
}

// inputKey identifies an input by everything a policy sees of it (the
// evaluation time only when a test case fixes it).
func inputKey(in *engine.Input) string {
	doc := in.SchemaDoc()
	doc["token"] = in.Token
	if !in.Now.IsZero() {
		doc["now"] = in.Now.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(doc) // map keys are sorted: the text is canonical
	return string(b)
}

// PreviewOutcome is one revision's answer to one input.
type PreviewOutcome struct {
	Decision bool     `json:"decision"`
	Reasons  []string `json:"reasons"`
	// Error is the cause of a deny that came from a failure or a schema
	// violation, in full: the preview is for policy authors.
	Error string `json:"error,omitempty"`
	// Warning is a schema violation that did not change the decision
	// (bundles.schemas: warn).
	Warning string `json:"warning,omitempty"`
}

// PreviewItem is one input with both answers.
type PreviewItem struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	// Input echoes the input as policies saw it ({subject, action, resource,
	// context, token, now}).
	Input map[string]any `json:"input"`
	// Changed is true when the decision (allow or deny) differs.
	Changed bool `json:"changed"`
	// ReasonsChanged is true when the decision is the same but the reasons
	// differ.
	ReasonsChanged bool           `json:"reasons_changed"`
	Active         PreviewOutcome `json:"active"`
	Candidate      PreviewOutcome `json:"candidate"`
}

// PreviewSummary counts the items of a preview. Changed is AllowToDeny plus
// DenyToAllow; Errors counts items where either revision failed.
type PreviewSummary struct {
	Total       int `json:"total"`
	Changed     int `json:"changed"`
	AllowToDeny int `json:"allow_to_deny"`
	DenyToAllow int `json:"deny_to_allow"`
	Unchanged   int `json:"unchanged"`
	Errors      int `json:"errors"`
}

// PreviewRevision names one side of the comparison.
type PreviewRevision struct {
	// Revision is empty on the active side when no bundle is active.
	Revision string `json:"revision"`
	// Generation is the active bundle's generation (0 for the candidate).
	Generation uint64 `json:"generation,omitempty"`
	// Digests of the bundles (the candidate's is its archive's digest).
	Digests []string `json:"digests,omitempty"`
}

// PreviewTests reports the candidate's own tests; failures do not stop a
// preview.
type PreviewTests struct {
	Passed   int      `json:"passed"`
	Failed   int      `json:"failed"`
	Failures []string `json:"failures,omitempty"`
}

// PreviewReport is the result of an impact preview: items with a changed
// decision first, then those with changed reasons, then the rest, each group
// in input order.
type PreviewReport struct {
	Active    *PreviewRevision `json:"active"`
	Candidate PreviewRevision  `json:"candidate"`
	Tests     PreviewTests     `json:"candidate_tests"`
	Summary   PreviewSummary   `json:"summary"`
	Items     []PreviewItem    `json:"results"`
}

// Preview decides every input under active (nil: no bundle is active, and
// every decision is the deny the server gives then) and under candidate,
// straight from their snapshots: no cache is read or written and nothing is
// activated. failures are the candidate's failed tests, reported as they
// are. Both revisions see the same evaluation time for an input.
func Preview(ctx context.Context, active, candidate *Active, failures TestFailures, inputs []PreviewInput) *PreviewReport {
	r := &PreviewReport{
		Candidate: PreviewRevision{Revision: candidate.Snapshot.Revision(), Digests: candidate.Digests},
		Tests:     PreviewTests{Passed: candidate.Tests.Passed, Failed: len(failures)},
		Items:     make([]PreviewItem, 0, len(inputs)),
	}
	for _, f := range failures {
		r.Tests.Failures = append(r.Tests.Failures, TestFailures{f}.Error())
	}
	var activeSnap *engine.Snapshot
	if active != nil {
		activeSnap = active.Snapshot
		r.Active = &PreviewRevision{Revision: active.Snapshot.Revision(), Generation: active.Generation, Digests: active.Digests}
	}
	now := time.Now().UTC()
	for _, p := range inputs {
		in := *p.Input
		if in.Now.IsZero() {
			in.Now = now
		}
		a, c := in, in
		da := activeSnap.Decide(ctx, &a, false)
		dc := candidate.Snapshot.Decide(ctx, &c, false)
		it := PreviewItem{
			Source: p.Source, Name: p.Name, Input: in.Doc(),
			Active: outcome(da), Candidate: outcome(dc),
			Changed: da.Allow != dc.Allow,
		}
		it.ReasonsChanged = !it.Changed && !sameSet(it.Active.Reasons, it.Candidate.Reasons)
		r.Summary.Total++
		switch {
		case da.Allow && !dc.Allow:
			r.Summary.AllowToDeny++
		case !da.Allow && dc.Allow:
			r.Summary.DenyToAllow++
		default:
			r.Summary.Unchanged++
		}
		if (da.Err != nil && active != nil) || dc.Err != nil {
			r.Summary.Errors++
		}
		r.Items = append(r.Items, it)
	}
	r.Summary.Changed = r.Summary.AllowToDeny + r.Summary.DenyToAllow
	rank := func(it PreviewItem) int {
		switch {
		case it.Changed:
			return 0
		case it.ReasonsChanged:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(r.Items, func(a, b PreviewItem) int { return rank(a) - rank(b) })
	return r
}

func outcome(d engine.Decision) PreviewOutcome {
	o := PreviewOutcome{Decision: d.Allow, Reasons: d.Reasons}
	if o.Reasons == nil {
		o.Reasons = []string{}
	}
	switch {
	case d.Err != nil:
		o.Error = d.Err.Error()
	case d.Violation != nil && d.Violation.Enforced:
		o.Error = d.Violation.Error()
	}
	if d.Violation != nil && !d.Violation.Enforced {
		o.Warning = engine.ReasonSchemaViolation + ": " + d.Violation.Error()
	}
	return o
}
