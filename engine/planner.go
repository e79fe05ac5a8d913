package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Query plans: which resources of one type may a subject act on? The input
// of a plan has its subject, action, context, token and time known and its
// resource's type known; the resource's id and properties are unknown. Each
// module says under which condition over those unknowns its effect is Allow
// and under which it is Deny (ModulePlan); the snapshot combines them as
// Decide combines outcomes (deny-overrides across modules).

// ModulePlan is one module's answer for a plan input: conditions over the
// resource under which the module's effect is Allow, and Deny. They never
// hold together; where neither holds the module is not applicable.
type ModulePlan struct {
	Allow, Deny *plan.Node
}

// Planner is an Evaluator that can answer plans.
type Planner interface {
	// Plan partially evaluates the module for in, whose Resource.ID and
	// Resource.Properties are unknown. What cannot be expressed as a
	// condition over resource attributes is an *UnplannableError.
	Plan(ctx context.Context, in *Input) (ModulePlan, error)
}

// UnplannableError says what keeps a policy from being planned: the rule and
// the expression, so that the author can change it.
type UnplannableError struct {
	Policy, Rule string
	// Expression is the source of the part that cannot be planned.
	Expression string
	Reason     string
}

func (e *UnplannableError) Error() string {
	where := "policy " + e.Policy
	if e.Rule != "" {
		where += " rule " + e.Rule
	}
	if e.Expression != "" {
		return fmt.Sprintf("%s cannot be planned: %s: %s", where, e.Reason, e.Expression)
	}
	return fmt.Sprintf("%s cannot be planned: %s", where, e.Reason)
}

// ErrNotPlannable is what a module that implements no Planner gives.
var ErrNotPlannable = errors.New("this kind of policy cannot be planned")

// PlanResult is a snapshot's plan.
type PlanResult struct {
	plan.Plan
	Revision string
}

// Plan answers which resources of in.Resource.Type the input's subject may
// act on: the condition under which Decide would allow, with every
// module's effect combined by deny-overrides. A module that fails to plan
// fails the whole plan (a plan is never approximated). A nil or empty
// snapshot is always_denied, as it denies every decision.
//
// Input schemas are not applied: a plan assumes the resources match their
// type's schema (one that does not is denied by Decide with
// schema_violation).
func (s *Snapshot) Plan(ctx context.Context, in *Input) (PlanResult, error) {
	if s == nil || len(s.modules) == 0 {
		r := PlanResult{Plan: plan.Plan{Kind: plan.AlwaysDenied}}
		if s != nil {
			r.Revision = s.revision
		}
		return r, nil
	}
	if in.Now.IsZero() {
		in.Now = time.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(ctx, s.limits.Timeout)
	defer cancel()
	var allows, notDenied []*plan.Node
	for _, m := range s.modules {
		p, ok := m.(Planner)
		if !ok {
			return PlanResult{}, fmt.Errorf("%w: %s", ErrNotPlannable, m.Name())
		}
		mp, err := p.Plan(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				return PlanResult{}, ModuleError(m.Name(), ErrTimeout)
			}
			return PlanResult{}, err
		}
		allows = append(allows, mp.Allow)
		notDenied = append(notDenied, plan.Not(mp.Deny))
	}
	cond := plan.And(append([]*plan.Node{plan.Or(allows...)}, notDenied...)...)
	return PlanResult{Plan: plan.FromCondition(cond), Revision: s.revision}, nil
}
