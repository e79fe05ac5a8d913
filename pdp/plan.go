package pdp

import (
	"context"
	"errors"
	"maps"

	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/engine/plan"
)

// Query plans: which resources of one type may a subject act on, as a
// condition over the resources' attributes (engine.Snapshot.Plan).

// Codes of plan refusals.
const (
	// CodeUnplannable: the active policies use something a plan cannot
	// express; the message names the policy, the rule and the expression.
	CodeUnplannable = "unplannable"
	// CodePlanTimeout: the plan was not finished within RequestTimeout.
	CodePlanTimeout = "plan_timeout"
)

// PlanObserver, when the service's Observer implements it, sees every
// plan: its kind (or, for a refusal, the error's code) and how the cache
// answered.
type PlanObserver interface {
	PlanFinished(e Endpoint, outcome string, cache CacheOutcome)
}

func (s *Service) planned(e Endpoint, outcome string, c CacheOutcome) {
	if o, ok := s.obs.(PlanObserver); ok {
		o.PlanFinished(e, outcome, c)
	}
}

// PlanResponse is the answer of a plan: the kind, the condition when
// conditional, and the revision that planned.
type PlanResponse struct {
	plan.Plan
	Context PlanContext `json:"context"`
}

// PlanContext says which bundle revision the plan is of: it holds until
// another is activated.
type PlanContext struct {
	Revision string `json:"revision,omitempty"`
}

// planPlaceholder stands for the unknown resource id while the request is
// validated; it is never evaluated.
const planPlaceholder = "\x00"

// ParsePlan reads a plan request: subject, action and context as in an
// evaluation, and a resource that names only its type (an id or
// properties are refused: they are what the plan leaves open). A
// subject_token is verified as for a decision; a token member is dropped.
func (s *Service) ParsePlan(ctx context.Context, body []byte) (*engine.Input, error) {
	doc, err := DecodeObject(body, s.cfg.MaxDepth)
	if err != nil {
		return nil, err
	}
	delete(doc, "token") // claims come only from verified credentials
	if err := applySubjectToken(ctx, doc, s.tokens); err != nil {
		return nil, err
	}
	res, ok := doc["resource"].(map[string]any)
	if !ok {
		return nil, newError(CodeInvalidInput, "resource: must be an object with the type to plan for")
	}
	for _, k := range []string{"id", "properties"} {
		if _, has := res[k]; has {
			return nil, newError(CodeInvalidInput, "resource."+k+": a plan leaves the resource's id and properties open; give only its type")
		}
	}
	res = maps.Clone(res)
	res["id"] = planPlaceholder
	doc["resource"] = res
	in, err := engine.ParseInput(doc, "")
	if err != nil {
		return nil, newError(CodeInvalidInput, inputMessage(err, "options"))
	}
	in.Resource.ID = ""
	return in, nil
}

// Plan answers in (from ParsePlan) with the active bundles, within
// RequestTimeout, through the decision cache's rules: plans are cached by
// bundle generation and input when decisions are (not when the policies
// read the time or the input has a time in its context).
func (s *Service) Plan(ctx context.Context, in *engine.Input, m Meta) (PlanResponse, error) {
	active := s.bundles.Active()
	if active == nil {
		r, _ := (*engine.Snapshot)(nil).Plan(ctx, in)
		return PlanResponse{Plan: r.Plan}, nil
	}
	snap := active.Snapshot
	cacheable := s.plans != nil && snap.Cacheable() && !s.timeInContext(in)
	var key Key
	if cacheable {
		key = inputKey(active.Generation, in)
		if r, ok := s.plans.Get(key); ok {
			s.planned(m.Endpoint, r.Kind, CacheHit)
			return r, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	r, err := snap.Plan(ctx, in)
	if err != nil {
		var out *Error
		_, unplannable := errors.AsType[*engine.UnplannableError](err)
		switch {
		case unplannable || errors.Is(err, engine.ErrNotPlannable):
			out = newError(CodeUnplannable, err.Error())
		case ctx.Err() != nil || errors.Is(err, engine.ErrTimeout):
			out = newError(CodePlanTimeout, "the plan was not finished within server.request_timeout")
		default:
			s.log.Warn("plan failed", "request_id", m.RequestID, "revision", snap.Revision(), "error", err)
			s.planned(m.Endpoint, "error", CacheBypass)
			return PlanResponse{}, err
		}
		s.planned(m.Endpoint, out.Code, CacheBypass)
		return PlanResponse{}, out
	}
	out := PlanResponse{Plan: r.Plan, Context: PlanContext{Revision: r.Revision}}
	outcome := CacheBypass
	if cacheable {
		s.plans.Set(key, out)
		outcome = CacheMiss
	}
	s.planned(m.Endpoint, out.Kind, outcome)
	return out, nil
}
