package grpcapi

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

// groupDecide is the rate-limit group of plans, as of POST /v1/plan.
const groupDecide = "decide"

// Plan answers which resources of resource.type the subject may act on:
// the request becomes the JSON document of POST /v1/plan and goes to the
// same decision service (validation, subject token, cache, metrics).
func (a *access) Plan(ctx context.Context, req *accessv1.PlanRequest) (*accessv1.PlanResponse, error) {
	if _, err := a.admitGroup(ctx, groupDecide); err != nil {
		return nil, err
	}
	doc := evaluationDoc(req.GetSubject(), req.GetAction(), req.GetResource(), req.GetContext())
	addOptions(doc, false, req.GetSubjectToken())
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, withDetails(codes.InvalidArgument, pdp.CodeInvalidInput, "the request holds a value JSON cannot carry", 0)
	}
	dec := a.s.host.Decisions()
	in, err := dec.ParsePlan(ctx, body)
	if err != nil {
		return nil, a.s.refuse(err)
	}
	out, err := dec.Plan(ctx, in, pdp.Meta{Endpoint: pdp.EndpointPlan, RequestID: oauth.RequestID(ctx)})
	if err != nil {
		return nil, a.s.refuse(err)
	}
	resp := &accessv1.PlanResponse{Kind: out.Kind, Context: &accessv1.PlanContext{Revision: out.Context.Revision}}
	if out.Condition != nil {
		var m map[string]any
		b, err := json.Marshal(out.Condition)
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err == nil {
			resp.Condition, err = structpb.NewStruct(m)
		}
		if err != nil {
			return nil, withDetails(codes.Internal, "internal", "the plan could not be encoded", 0)
		}
	}
	return resp, nil
}
