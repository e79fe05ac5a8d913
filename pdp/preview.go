package pdp

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/decisionlog"
)

// Previewer is what a preview needs of the bundle manager: the limits
// bundles are read with, and a trial compile that never activates (and does
// not fail on the candidate's tests). *bundles.Manager is one.
type Previewer interface {
	Limits() bundles.Limits
	Trial(ctx context.Context, bs []*bundles.Bundle) (*bundles.Active, bundles.TestFailures, error)
}

var _ Previewer = (*bundles.Manager)(nil)

// DecisionHistory gives a preview recent real inputs to decide when the
// request brings none (beside the test cases of both bundles): the decision
// log (decisionlog.Logger).
type DecisionHistory interface {
	// RecentInputs returns up to n inputs of recent decisions, newest first.
	RecentInputs(ctx context.Context, n int) ([]*engine.Input, error)
}

// LoggedDecision is one of the last decisions of the decision log, its
// input redacted.
type LoggedDecision = decisionlog.Recent

// DecisionTail gives the console the last logged decisions
// (decisionlog.Logger): up to n that keep returns true for, newest first.
type DecisionTail interface {
	RecentDecisions(ctx context.Context, n int, keep func(LoggedDecision) bool) []LoggedDecision
}

// WithDecisionHistory makes previews without inputs also decide the last
// MaxBatch inputs h returns (source "logged decisions").
func WithDecisionHistory(h DecisionHistory) Option {
	return func(s *Service) { s.history = h }
}

// ErrNoPreview is Preview's error on a service whose bundles cannot
// preview (they are no Previewer).
var ErrNoPreview = errors.New("this service cannot preview bundles")

// Preview decides inputs under the active bundles and under a candidate
// bundle (a .tar.gz archive) that is read, verified, compiled and tested as a
// push would be, but never stored or activated; both straight from their
// snapshots (the decision cache is neither read nor written). Without
// inputs, the test cases of both bundles and the decision history's recent
// inputs are decided. Errors: ErrNoPreview, and the candidate's *ReadError,
// signature error, engine.CompileErrors or TestFailures-free compile
// problems as bundles returns them.
func (s *Service) Preview(ctx context.Context, archive []byte, inputs []bundles.PreviewInput) (*bundles.PreviewReport, error) {
	p, ok := s.bundles.(Previewer)
	if !ok {
		return nil, ErrNoPreview
	}
	b, err := bundles.ReadArchive(bytes.NewReader(archive), p.Limits())
	if err != nil {
		return nil, err
	}
	b.Source = "preview"
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	cand, failures, err := p.Trial(ctx, []*bundles.Bundle{b})
	if err != nil {
		return nil, err
	}
	active := s.bundles.Active()
	if len(inputs) == 0 {
		inputs = bundles.DefaultInputs(active, cand)
		if s.history != nil {
			logged, err := s.history.RecentInputs(ctx, s.cfg.MaxBatch)
			if err != nil {
				return nil, fmt.Errorf("preview: decision history: %w", err)
			}
			for i, in := range logged {
				inputs = append(inputs, bundles.PreviewInput{Source: bundles.SourceLogged, Name: fmt.Sprintf("logged[%d]", i), Input: in})
			}
		}
	}
	return bundles.Preview(ctx, active, cand, failures, inputs), nil
}

// PreviewLimits are the limits bundles are read with for a preview, and
// whether the service can preview at all.
func (s *Service) PreviewLimits() (bundles.Limits, bool) {
	p, ok := s.bundles.(Previewer)
	if !ok {
		return bundles.Limits{}, false
	}
	return p.Limits(), true
}

// ParsePreviewInputs reads the inputs of a preview: a JSON array of at most
// maxBatch decision inputs in the /v1/decide shape, nested at most maxDepth
// levels. Empty text or null means none. Errors are *Error naming the item,
// as inputs[i].field.
func ParsePreviewInputs(raw []byte, maxDepth, maxBatch int) ([]bundles.PreviewInput, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	v, err := DecodeValue(raw, maxDepth, "inputs: ")
	if err != nil {
		return nil, err
	}
	return PreviewInputs(v, maxBatch)
}

// PreviewInputs checks an already decoded inputs array: at most maxBatch
// decision inputs in the /v1/decide shape. Absent (nil) means none.
func PreviewInputs(v any, maxBatch int) ([]bundles.PreviewInput, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, newError(CodeInvalidInput, "inputs: must be an array of decision inputs")
	}
	if len(items) > maxBatch {
		return nil, newError(CodeInvalidInput, fmt.Sprintf("inputs: at most %d items are allowed, got %d", maxBatch, len(items)))
	}
	out := make([]bundles.PreviewInput, len(items))
	for i, it := range items {
		name := fmt.Sprintf("inputs[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			return nil, newError(CodeInvalidInput, name+": must be an object")
		}
		in, err := engine.ParseInput(m, name+".")
		if err != nil {
			return nil, newError(CodeInvalidInput, err.Error())
		}
		out[i] = bundles.PreviewInput{Source: bundles.SourceRequest, Name: name, Input: in}
	}
	return out, nil
}

// Try decides in under a candidate bundle (a .tar.gz archive) read,
// verified and compiled as Preview reads it, never stored or activated,
// straight from its snapshot, with the rule-by-rule trace when explain is
// true (and the configuration allows it): the console's playground on a
// stored revision. Errors are Preview's.
func (s *Service) Try(ctx context.Context, archive []byte, in *engine.Input, explain bool) (Response, error) {
	p, ok := s.bundles.(Previewer)
	if !ok {
		return Response{}, ErrNoPreview
	}
	b, err := bundles.ReadArchive(bytes.NewReader(archive), p.Limits())
	if err != nil {
		return Response{}, err
	}
	b.Source = "preview"
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	cand, _, err := p.Trial(ctx, []*bundles.Bundle{b})
	if err != nil {
		return Response{}, err
	}
	d := cand.Snapshot.Decide(ctx, in, explain && s.cfg.AllowExplain)
	return NewResponse(d, explain && s.cfg.AllowExplain), nil
}
