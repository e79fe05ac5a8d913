package grpcapi

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/grpcapi/accessv1"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

// access is verdict.access.v1.Access: AuthZEN evaluation, evaluations and
// search over gRPC. Each request is the AuthZEN JSON document of the HTTP
// route, handed to the decision service as such, so that validation,
// defaults, batch semantics, limits (depth, batch size), the subject
// token and the decision cache are the same on both transports.
type access struct {
	accessv1.UnimplementedAccessServer
	s *Server
}

// scopeDecide is the scope the decision routes need.
const scopeDecide = authn.ScopeDecide

// admit authenticates the caller (per-RPC metadata authorization or
// x-api-key, scope verdict:decide; none with --dev) and counts the call
// in the authzen rate limits.
func (a *access) admit(ctx context.Context) error {
	_, err := a.admitGroup(ctx, groupAuthZEN)
	return err
}

// caller is who a credential named: the client_id (else the subject) and
// its issuer; zero on an open server.
type caller struct{ id, issuer string }

// admitGroup is admit counting the call in the rate limits of group; it
// returns the caller, whom a signed decision names.
func (a *access) admitGroup(ctx context.Context, group string) (caller, error) {
	h := a.s.host
	source := peerAddr(ctx).String()
	var who caller
	client := ""
	if !h.DecisionsOpen() {
		claims, err := h.AuthenticateCaller(ctx, firstMD(ctx, "authorization"), firstMD(ctx, "x-api-key"), source, scopeDecide)
		if err != nil {
			return who, a.s.refuse(err)
		}
		who.id, _ = claims["client_id"].(string)
		if who.id == "" {
			who.id = claims.Subject()
		}
		who.issuer = claims.Issuer()
		client = who.issuer + " " + who.id
	}
	if err := h.Limit(ctx, group, client, source); err != nil {
		return who, a.s.refuse(err)
	}
	return who, nil
}

// decide answers an evaluation document as the AuthZEN routes do.
func (a *access) decide(ctx context.Context, doc map[string]any, opt pdp.ParseOptions) (pdp.Result, error) {
	who, err := a.admitGroup(ctx, groupAuthZEN)
	if err != nil {
		return pdp.Result{}, err
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return pdp.Result{}, withDetails(codes.InvalidArgument, pdp.CodeInvalidInput, "the request holds a value JSON cannot carry", 0)
	}
	res, err := a.s.host.Decisions().DecideBody(ctx, body, opt, pdp.Meta{Endpoint: pdp.EndpointAuthZEN, RequestID: oauth.RequestID(ctx),
		RemoteAddr: peerString(ctx), Caller: who.id, CallerIssuer: who.issuer})
	if err != nil {
		return res, a.s.refuse(err)
	}
	return res, nil
}

// Evaluation decides one request.
func (a *access) Evaluation(ctx context.Context, req *accessv1.EvaluationRequest) (*accessv1.EvaluationResponse, error) {
	doc := evaluationDoc(req.GetSubject(), req.GetAction(), req.GetResource(), req.GetContext())
	addOptions(doc, req.GetExplain(), req.GetSubjectToken())
	if req.GetSigned() {
		doc["options"] = map[string]any{"signed": true}
	}
	res, err := a.decide(ctx, doc, pdp.ParseOptions{Single: true})
	if err != nil {
		return nil, err
	}
	return response(res.Evaluations[0]), nil
}

// Evaluations decides a batch.
func (a *access) Evaluations(ctx context.Context, req *accessv1.EvaluationsRequest) (*accessv1.EvaluationsResponse, error) {
	doc := evaluationDoc(req.GetSubject(), req.GetAction(), req.GetResource(), req.GetContext())
	addOptions(doc, req.GetExplain(), req.GetSubjectToken())
	if len(req.GetEvaluations()) > 0 {
		items := make([]any, len(req.GetEvaluations()))
		for i, it := range req.GetEvaluations() {
			items[i] = evaluationDoc(it.GetSubject(), it.GetAction(), it.GetResource(), it.GetContext())
		}
		doc["evaluations"] = items
	}
	opts := map[string]any{}
	if sem := req.GetOptions().GetEvaluationsSemantic(); sem != "" {
		opts["evaluations_semantic"] = sem
	}
	if req.GetOptions().GetSigned() {
		opts["signed"] = true
	}
	if len(opts) > 0 {
		doc["options"] = opts
	}
	res, err := a.decide(ctx, doc, pdp.ParseOptions{ItemErrors: true, InheritIDs: true})
	if err != nil {
		return nil, err
	}
	out := &accessv1.EvaluationsResponse{Evaluations: make([]*accessv1.EvaluationResponse, len(res.Evaluations))}
	for i, r := range res.Evaluations {
		out.Evaluations[i] = response(r)
	}
	return out, nil
}

// search answers a search document.
func (a *access) search(ctx context.Context, kind pdp.SearchKind, req *accessv1.SearchRequest) (pdp.SearchResponse, *accessv1.PageResponse, error) {
	if err := a.admit(ctx); err != nil {
		return pdp.SearchResponse{}, nil, err
	}
	doc := evaluationDoc(req.GetSubject(), req.GetAction(), req.GetResource(), req.GetContext())
	if p := req.GetPage(); p != nil {
		page := map[string]any{}
		if p.GetToken() != "" {
			page["token"] = p.GetToken()
		}
		if p.GetLimit() > 0 {
			page["limit"] = p.GetLimit()
		}
		doc["page"] = page
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return pdp.SearchResponse{}, nil, withDetails(codes.InvalidArgument, pdp.CodeInvalidInput, "the request holds a value JSON cannot carry", 0)
	}
	out, err := a.s.host.Decisions().Search(ctx, kind, body)
	if err != nil {
		return out, nil, a.s.refuse(err)
	}
	return out, &accessv1.PageResponse{NextToken: out.Page.NextToken, Count: uint32(out.Page.Count), Total: uint32(out.Page.Total)}, nil
}

// SearchSubject lists the subjects that may do the action on the resource.
func (a *access) SearchSubject(ctx context.Context, req *accessv1.SearchRequest) (*accessv1.SearchSubjectResponse, error) {
	out, page, err := a.search(ctx, pdp.SearchSubject, req)
	if err != nil {
		return nil, err
	}
	resp := &accessv1.SearchSubjectResponse{Page: page}
	for _, r := range out.Results {
		if e, ok := r.(pdp.EntityRef); ok {
			resp.Results = append(resp.Results, &accessv1.Subject{Type: e.Type, Id: e.ID})
		}
	}
	return resp, nil
}

// SearchResource lists the resources the subject may do the action on.
func (a *access) SearchResource(ctx context.Context, req *accessv1.SearchRequest) (*accessv1.SearchResourceResponse, error) {
	out, page, err := a.search(ctx, pdp.SearchResource, req)
	if err != nil {
		return nil, err
	}
	resp := &accessv1.SearchResourceResponse{Page: page}
	for _, r := range out.Results {
		if e, ok := r.(pdp.EntityRef); ok {
			resp.Results = append(resp.Results, &accessv1.Resource{Type: e.Type, Id: e.ID})
		}
	}
	return resp, nil
}

// SearchAction lists the actions the subject may do on the resource.
func (a *access) SearchAction(ctx context.Context, req *accessv1.SearchRequest) (*accessv1.SearchActionResponse, error) {
	out, page, err := a.search(ctx, pdp.SearchAction, req)
	if err != nil {
		return nil, err
	}
	resp := &accessv1.SearchActionResponse{Page: page}
	for _, r := range out.Results {
		if e, ok := r.(pdp.ActionRef); ok {
			resp.Results = append(resp.Results, &accessv1.Action{Name: e.Name})
		}
	}
	return resp, nil
}

// entity is the interface of Subject and Resource messages.
type entity interface {
	GetType() string
	GetId() string
	GetProperties() *structpb.Struct
}

// evaluationDoc is the AuthZEN JSON document of an evaluation's entities.
// A field left empty is left out (proto3 cannot tell "" from unset), so
// that a batch item takes it from the defaults and a missing one is the
// same invalid_input as over HTTP.
func evaluationDoc(sub *accessv1.Subject, act *accessv1.Action, res *accessv1.Resource, ctx *structpb.Struct) map[string]any {
	doc := map[string]any{}
	if sub != nil {
		doc["subject"] = entityDoc(sub)
	}
	if res != nil {
		doc["resource"] = entityDoc(res)
	}
	if act != nil {
		m := map[string]any{}
		if act.GetName() != "" {
			m["name"] = act.GetName()
		}
		if act.GetProperties() != nil {
			m["properties"] = act.GetProperties().AsMap()
		}
		doc["action"] = m
	}
	if ctx != nil {
		doc["context"] = ctx.AsMap()
	}
	return doc
}

func entityDoc(e entity) map[string]any {
	m := map[string]any{}
	if e.GetType() != "" {
		m["type"] = e.GetType()
	}
	if e.GetId() != "" {
		m["id"] = e.GetId()
	}
	if e.GetProperties() != nil {
		m["properties"] = e.GetProperties().AsMap()
	}
	return m
}

func addOptions(doc map[string]any, explain bool, subjectToken string) {
	if explain {
		doc["explain"] = true
	}
	if subjectToken != "" {
		doc["subject_token"] = subjectToken
	}
}

// response is the message of one decision.
func response(r pdp.Response) *accessv1.EvaluationResponse {
	c := r.Context
	out := &accessv1.EvaluationResponse{Decision: r.Decision, Context: &accessv1.DecisionContext{
		Reasons: c.Reasons, Revision: c.Revision, DecisionId: c.DecisionID, Error: c.Error,
		Code: c.Code, Reason: c.Reason, Warnings: c.Warnings, Ttl: uint32(max(c.TTL, 0)), Signature: c.Signature,
	}}
	if len(c.Explain) > 0 {
		var trace []any
		if b, err := json.Marshal(c.Explain); err == nil && json.Unmarshal(b, &trace) == nil {
			out.Context.Explain, _ = structpb.NewList(trace)
		}
	}
	return out
}
