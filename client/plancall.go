package client

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/verdictpdp/verdict/engine/plan"
	"github.com/verdictpdp/verdict/grpcapi/accessv1"
)

// pathPlan is Verdict's query-plan route.
const pathPlan = "/v1/plan"

// PlanQuery asks which resources of Resource.Type the subject may do the
// action on. Resource names only its type: the plan leaves the id and
// properties open.
type PlanQuery struct {
	Subject  Subject  `json:"subject,omitzero"`
	Action   Action   `json:"action,omitzero"`
	Resource Resource `json:"resource,omitzero"`
	Context  Context  `json:"context,omitempty"`
	// SubjectToken, when set, is verified by Verdict and its claims are
	// the subject, as for a decision.
	SubjectToken string `json:"subject_token,omitempty"`
}

// PlanResult is a plan (always_allowed, always_denied, or conditional with
// its condition; see PlanSQL and PlanPredicate) and the bundle revision it
// is of: it holds until another revision is activated.
type PlanResult struct {
	plan.Plan
	Revision string
}

// Plan asks Verdict for a query plan (POST /v1/plan). A policy Verdict
// cannot plan is an *Error with Status 422 and Code "unplannable" whose
// message names the policy, rule and expression; other errors are as
// Evaluation's.
func (c *Client) Plan(ctx context.Context, q PlanQuery) (PlanResult, error) {
	_, body, err := c.post(ctx, pathPlan, q)
	if err != nil {
		return PlanResult{}, err
	}
	var w struct {
		plan.Plan
		Context struct {
			Revision string `json:"revision"`
		} `json:"context"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return PlanResult{}, malformed(pathPlan, err)
	}
	if err := checkPlan(w.Plan); err != nil {
		return PlanResult{}, malformed(pathPlan, err)
	}
	return PlanResult{Plan: w.Plan, Revision: w.Context.Revision}, nil
}

// checkPlan refuses an answer that is no plan.
func checkPlan(p plan.Plan) error {
	switch p.Kind {
	case plan.AlwaysAllowed, plan.AlwaysDenied:
		return nil
	case plan.Conditional:
		if p.Condition == nil {
			return errors.New("a conditional plan without a condition")
		}
		return p.Condition.Validate()
	}
	return errors.New("unknown plan kind " + p.Kind)
}

// Plan asks for a query plan over gRPC (verdict.access.v1.Access/Plan).
func (g *GRPC) Plan(ctx context.Context, q PlanQuery) (PlanResult, error) {
	req := &accessv1.PlanRequest{SubjectToken: q.SubjectToken}
	var err error
	if req.Subject, req.Action, req.Resource, req.Context, err = entities(q.Subject, q.Action, q.Resource, q.Context); err != nil {
		return PlanResult{}, err
	}
	var resp *accessv1.PlanResponse
	err = g.call(ctx, func(ctx context.Context) (err error) {
		resp, err = g.access.Plan(ctx, req)
		return err
	})
	if err != nil {
		return PlanResult{}, err
	}
	out := PlanResult{Plan: plan.Plan{Kind: resp.GetKind()}, Revision: resp.GetContext().GetRevision()}
	if c := resp.GetCondition(); c != nil {
		raw, err := c.MarshalJSON()
		if err == nil {
			out.Condition = &plan.Node{}
			err = json.Unmarshal(raw, out.Condition)
		}
		if err != nil {
			return PlanResult{}, malformed("Plan", err)
		}
	}
	if err := checkPlan(out.Plan); err != nil {
		return PlanResult{}, malformed("Plan", err)
	}
	return out, nil
}
