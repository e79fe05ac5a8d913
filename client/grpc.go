package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/grpcapi/accessv1"
)

// GRPC calls Verdict's access API over gRPC (verdict.access.v1.Access on
// server.grpc_addr): the same evaluations, batches and searches as
// *Client, answered in the same types, with the same credentials, retries
// and timeout. It is safe for concurrent use; make it once over a
// connection you keep.
type GRPC struct {
	access  accessv1.AccessClient
	tokens  *tokenCache
	authz   string
	retry   RetryPolicy
	timeout time.Duration
	signed  bool
}

var (
	_ Decider  = (*GRPC)(nil)
	_ Searcher = (*GRPC)(nil)
)

// NewGRPC returns a client over conn (grpc.NewClient with the transport
// credentials the listener needs: insecure, TLS, or mTLS). The options are
// New's: WithClientCredentials then needs WithTokenURL (Verdict's
// /oauth2/token on its HTTP listener), fetched with WithHTTPClient's
// client if given; WithBearerToken, WithTokenSource and WithAPIKey are
// sent as per-call metadata; WithRetry and WithTimeout apply alike.
// WithReasons changes nothing: gRPC decisions always carry their context.
// WithSignedDecisions sets the requests' signed (a server without signing
// keys refuses them with INVALID_ARGUMENT: an *Error, 400 invalid_input).
func NewGRPC(conn grpc.ClientConnInterface, opts ...Option) (*GRPC, error) {
	if conn == nil {
		return nil, errors.New("client: NewGRPC needs a connection")
	}
	o := options{margin: DefaultRefreshMargin, retry: RetryPolicy{}.withDefaults(), timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.creds > 1 {
		o.errs = append(o.errs, errors.New("use one of WithClientCredentials, WithTokenSource, WithBearerToken and WithAPIKey"))
	}
	if o.cc != nil && o.tokenURL == "" {
		o.errs = append(o.errs, errors.New("WithClientCredentials over gRPC needs WithTokenURL: the /oauth2/token URL of Verdict's HTTP listener"))
	}
	if o.tokenURL != "" && o.cc == nil {
		o.errs = append(o.errs, errors.New("WithTokenURL needs WithClientCredentials"))
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	g := &GRPC{access: accessv1.NewAccessClient(conn), authz: o.authz, retry: o.retry, timeout: o.timeout, signed: o.signed}
	switch {
	case o.cc != nil:
		var err error
		if o.cc.TokenURL, err = checkURL(o.tokenURL); err != nil {
			return nil, fmt.Errorf("client: token URL: %w", err)
		}
		cc, hc := o.cc, o.hc
		if hc == nil {
			hc = &http.Client{Transport: newTransport()}
		}
		g.tokens = newTokenCache(func(ctx context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
		}, o.margin)
	case o.ts != nil:
		ts := o.ts
		g.tokens = newTokenCache(func(context.Context) (*oauth2.Token, error) { return ts.Token() }, o.margin)
	}
	return g, nil
}

// call runs one RPC under the client's timeout, credentials and retry
// policy; a refusal is an *Error as over HTTP (Status: the HTTP status of
// the gRPC code, Code: the ErrorInfo reason, RetryAfter: the RetryInfo).
func (g *GRPC) call(ctx context.Context, rpc func(ctx context.Context) error) error {
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	return g.retry.run(ctx, g.tokens, "gRPC", func(ctx context.Context) (string, error) {
		cctx, tok, err := g.credentials(ctx)
		if err != nil {
			return "", err
		}
		return tok, fromStatus(rpc(cctx))
	})
}

// credentials adds the caller's credential to ctx's outgoing metadata; tok
// is the cached access token it presents ("" for none).
func (g *GRPC) credentials(ctx context.Context) (context.Context, string, error) {
	switch {
	case g.tokens != nil:
		t, err := g.tokens.token(ctx)
		if err != nil {
			return ctx, "", err
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.AccessToken), t.AccessToken, nil
	case g.authz != "":
		return metadata.AppendToOutgoingContext(ctx, "authorization", g.authz), "", nil
	}
	return ctx, "", nil
}

// fromStatus is the *Error of a gRPC error (nil stays nil; an error that
// is no status, such as a refused token fetch, is kept as it is).
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Status: httpStatus(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			e.Code = d.GetReason()
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	if e.Code != "" {
		// The server's message is "<code>: <message>".
		e.Message = strings.TrimPrefix(e.Message, e.Code+": ")
	}
	return e
}

// httpStatus is the HTTP status the same refusal gets over HTTP.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Evaluation decides one request.
func (g *GRPC) Evaluation(ctx context.Context, e Evaluation) (Decision, error) {
	req := &accessv1.EvaluationRequest{SubjectToken: e.SubjectToken, Signed: g.signed}
	var err error
	if req.Subject, req.Action, req.Resource, req.Context, err = entities(e.Subject, e.Action, e.Resource, e.Context); err != nil {
		return Decision{}, err
	}
	var resp *accessv1.EvaluationResponse
	err = g.call(ctx, func(ctx context.Context) (err error) {
		resp, err = g.access.Evaluation(ctx, req)
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	return fromResponse(resp), nil
}

// Evaluations decides a batch: one Decision per item decided, in order.
func (g *GRPC) Evaluations(ctx context.Context, e Evaluations) ([]Decision, error) {
	req := &accessv1.EvaluationsRequest{SubjectToken: e.SubjectToken,
		Options: &accessv1.EvaluationsOptions{EvaluationsSemantic: string(e.Options.Semantic), Signed: g.signed}}
	var err error
	if req.Subject, req.Action, req.Resource, req.Context, err = entities(e.Subject, e.Action, e.Resource, e.Context); err != nil {
		return nil, err
	}
	for i, it := range e.Evaluations {
		if it.SubjectToken != "" {
			return nil, fmt.Errorf("verdict: evaluations[%d]: a subject token belongs to the request, not to an item", i)
		}
		item := &accessv1.EvaluationItem{}
		if item.Subject, item.Action, item.Resource, item.Context, err = entities(it.Subject, it.Action, it.Resource, it.Context); err != nil {
			return nil, fmt.Errorf("evaluations[%d]: %w", i, err)
		}
		req.Evaluations = append(req.Evaluations, item)
	}
	var resp *accessv1.EvaluationsResponse
	err = g.call(ctx, func(ctx context.Context) (err error) {
		resp, err = g.access.Evaluations(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Decision, len(resp.GetEvaluations()))
	for i, r := range resp.GetEvaluations() {
		out[i] = fromResponse(r)
	}
	if (e.Options.Semantic == "" || e.Options.Semantic == ExecuteAll) && len(e.Evaluations) > 0 && len(out) != len(e.Evaluations) {
		return nil, fmt.Errorf("verdict: gRPC Evaluations: %d decisions for %d items", len(out), len(e.Evaluations))
	}
	return out, nil
}

// SearchSubject lists the subjects that may do the action on the resource.
func (g *GRPC) SearchSubject(ctx context.Context, q SearchQuery) (SearchResult[Subject], error) {
	var out SearchResult[Subject]
	err := g.search(ctx, q, func(ctx context.Context, req *accessv1.SearchRequest) error {
		resp, err := g.access.SearchSubject(ctx, req)
		if err == nil {
			out.Page = pageInfo(resp.GetPage())
			for _, s := range resp.GetResults() {
				out.Results = append(out.Results, Subject{Type: s.GetType(), ID: s.GetId()})
			}
		}
		return err
	})
	return out, err
}

// SearchResource lists the resources the subject may do the action on.
func (g *GRPC) SearchResource(ctx context.Context, q SearchQuery) (SearchResult[Resource], error) {
	var out SearchResult[Resource]
	err := g.search(ctx, q, func(ctx context.Context, req *accessv1.SearchRequest) error {
		resp, err := g.access.SearchResource(ctx, req)
		if err == nil {
			out.Page = pageInfo(resp.GetPage())
			for _, r := range resp.GetResults() {
				out.Results = append(out.Results, Resource{Type: r.GetType(), ID: r.GetId()})
			}
		}
		return err
	})
	return out, err
}

// SearchAction lists the actions the subject may do on the resource.
func (g *GRPC) SearchAction(ctx context.Context, q SearchQuery) (SearchResult[Action], error) {
	var out SearchResult[Action]
	err := g.search(ctx, q, func(ctx context.Context, req *accessv1.SearchRequest) error {
		resp, err := g.access.SearchAction(ctx, req)
		if err == nil {
			out.Page = pageInfo(resp.GetPage())
			for _, a := range resp.GetResults() {
				out.Results = append(out.Results, Action{Name: a.GetName()})
			}
		}
		return err
	})
	return out, err
}

func (g *GRPC) search(ctx context.Context, q SearchQuery, rpc func(context.Context, *accessv1.SearchRequest) error) error {
	req := &accessv1.SearchRequest{Page: &accessv1.PageRequest{Token: q.Page.Token, Limit: uint32(max(q.Page.Limit, 0))}}
	var err error
	if req.Subject, req.Action, req.Resource, req.Context, err = entities(q.Subject, q.Action, q.Resource, q.Context); err != nil {
		return err
	}
	return g.call(ctx, func(ctx context.Context) error { return rpc(ctx, req) })
}

func pageInfo(p *accessv1.PageResponse) PageInfo {
	return PageInfo{NextToken: p.GetNextToken(), Count: int(p.GetCount()), Total: int(p.GetTotal())}
}

// entities are the messages of an evaluation's parts; a zero part is left
// out, as the HTTP client leaves it out of the JSON.
func entities(s Subject, a Action, r Resource, c Context) (*accessv1.Subject, *accessv1.Action, *accessv1.Resource, *structpb.Struct, error) {
	var (
		sub *accessv1.Subject
		act *accessv1.Action
		res *accessv1.Resource
		ctx *structpb.Struct
		err error
	)
	props := func(what string, m map[string]any) *structpb.Struct {
		if m == nil || err != nil {
			return nil
		}
		st, e := structpb.NewStruct(m)
		if e != nil {
			// Values structpb does not take as they are ([]string, structs,
			// typed numbers) go as the HTTP client sends them: as JSON.
			var doc map[string]any
			b, je := json.Marshal(m)
			if je == nil {
				je = json.Unmarshal(b, &doc)
			}
			if je == nil {
				st, e = structpb.NewStruct(doc)
			} else {
				e = je
			}
		}
		if e != nil {
			err = fmt.Errorf("verdict: %s: %w", what, e)
		}
		return st
	}
	if s.Type != "" || s.ID != "" || s.Properties != nil {
		sub = &accessv1.Subject{Type: s.Type, Id: s.ID, Properties: props("subject.properties", s.Properties)}
	}
	if a.Name != "" || a.Properties != nil {
		act = &accessv1.Action{Name: a.Name, Properties: props("action.properties", a.Properties)}
	}
	if r.Type != "" || r.ID != "" || r.Properties != nil {
		res = &accessv1.Resource{Type: r.Type, Id: r.ID, Properties: props("resource.properties", r.Properties)}
	}
	ctx = props("context", c)
	return sub, act, res, ctx, err
}

// fromResponse is the Decision of one gRPC answer.
func fromResponse(r *accessv1.EvaluationResponse) Decision {
	c := r.GetContext()
	d := Decision{Decision: r.GetDecision(), ID: c.GetDecisionId(), Reasons: c.GetReasons(), Revision: c.GetRevision(), Error: c.GetError(),
		TTL: time.Duration(c.GetTtl()) * time.Second, Signature: c.GetSignature()}
	if c != nil {
		m := map[string]any{"reasons": toAny(c.GetReasons()), "revision": c.GetRevision()}
		for k, v := range map[string]string{"error": c.GetError(), "code": c.GetCode(), "reason": c.GetReason()} {
			if v != "" {
				m[k] = v
			}
		}
		if len(c.GetWarnings()) > 0 {
			m["warnings"] = toAny(c.GetWarnings())
		}
		if c.GetTtl() != 0 {
			m["ttl"] = float64(c.GetTtl()) // as encoding/json reads the HTTP answer's number
		}
		if c.GetSignature() != "" {
			m["signature"] = c.GetSignature()
		}
		if c.GetExplain() != nil {
			m["explain"] = c.GetExplain().AsSlice()
		}
		d.Context = m
	}
	return d
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
