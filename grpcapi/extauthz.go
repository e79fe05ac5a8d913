package grpcapi

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/pdp"
)

// The rate-limit groups of server.rate_limits the gRPC services count in
// (the HTTP routes' names: one limit for either transport).
const (
	groupForwardAuth = "forward_auth"
	groupAuthZEN     = "authzen"
)

// extAuthz is envoy.service.auth.v3.Authorization: Envoy's external
// authorization over gRPC. A Check decides the original request it
// describes exactly as /v1/forward-auth decides it (package forward): the
// same trusted gateways, route table, end-user token handling, context and
// response headers. It answers every outcome in the CheckResponse —
// OK with the response headers, or a denial with an HTTP status, headers
// and a JSON body for Envoy to send — and never OK on a failure: a panic
// is an INTERNAL error, which Envoy (failure_mode_allow: false) denies.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	s *Server
}

// Check decides one original request.
func (x *extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s, fa := x.s, x.s.cfg.Forward
	gateway := peerAddr(ctx)
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if !fa.Trusted(gateway, firstMD(ctx, strings.ToLower(fa.Config().SecretHeader))) {
		s.log.Warn("ext_authz call from an untrusted address refused", "request_id", oauth.RequestID(ctx), "peer", gateway.String())
		return denied(403, "untrusted_proxy", "ext_authz answers only the gateways in forward_auth.trusted_proxies", 0), nil
	}
	headers := headerMap(httpReq)
	if err := s.host.Limit(ctx, groupForwardAuth, gateway.String(), sourceAddr(req)); err != nil {
		return x.refused(err), nil
	}
	host := httpReq.GetHost()
	if host == "" {
		host = headers[":authority"]
	}
	orig, err := forward.ParseTarget(httpReq.GetMethod(), httpReq.GetPath(), host, httpReq.GetScheme())
	if err != nil {
		return denied(400, "no_original_request", err.Error(), 0), nil
	}
	var claims authn.Claims
	if tok, ok := forward.EndUserToken(headers["authorization"]); ok {
		if claims, err = s.host.VerifyEndUser(ctx, tok); err != nil {
			return x.refused(err), nil
		}
	}
	in := fa.Input(ctx, orig, claims, func(h string) string { return headers[h] })
	// Everything in the input came from the request's path and headers
	// (the token's claims too).
	in.SizeBound = len(httpReq.GetPath())
	for k, v := range headers {
		in.SizeBound += len(k) + len(v)
	}
	d := s.host.Decisions().Evaluate(ctx, in, false, pdp.Meta{Endpoint: pdp.EndpointExtAuthz, RequestID: oauth.RequestID(ctx), RemoteAddr: peerString(ctx)})
	if !d.Decision {
		if in.Subject.Type == forward.AnonymousType {
			resp := denied(401, "unauthorized", "denied without a token; sign in (decision "+d.Context.DecisionID+")", 0)
			resp.GetDeniedResponse().Headers = append(resp.GetDeniedResponse().Headers, header("www-authenticate", `Bearer realm="verdict"`))
			return resp, nil
		}
		return denied(403, "access_denied", "denied (decision "+d.Context.DecisionID+")", 0), nil
	}
	ok := &authv3.OkHttpResponse{}
	fa.ResponseHeaders(in, d, func(name, value string) {
		ok.Headers = append(ok.Headers, header(strings.ToLower(name), value))
	})
	meta, _ := structpb.NewStruct(map[string]any{"decision_id": d.Context.DecisionID, "revision": d.Context.Revision,
		"subject_type": in.Subject.Type, "subject_id": in.Subject.ID, "route": in.Resource.ID})
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: meta,
	}, nil
}

// refused is the denial of a refusal of the Host (a token that cannot be
// checked now, an invalid one, a rate limit) with its status and headers.
func (x *extAuthz) refused(err error) *authv3.CheckResponse {
	httpStatus, code, msg, retry := x.s.cfg.Refusal(err)
	resp := denied(httpStatus, code, msg, retry)
	if httpStatus == 401 {
		resp.GetDeniedResponse().Headers = append(resp.GetDeniedResponse().Headers, header("www-authenticate", `Bearer realm="verdict", error="invalid_token"`))
	}
	return resp
}

// denied is a CheckResponse that makes Envoy answer the original request
// with httpStatus and Verdict's JSON error body.
func denied(httpStatus int, code, msg string, retry int) *authv3.CheckResponse {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	b, _ := json.Marshal(body)
	hs := []*corev3.HeaderValueOption{header("content-type", "application/json"), header("cache-control", "no-store")}
	if retry > 0 {
		hs = append(hs, header("retry-after", strconv.Itoa(retry)))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(httpStatus)), Message: code + ": " + msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
			Headers: hs,
			Body:    string(b),
		}},
	}
}

// header is a header Envoy sets, replacing any of the same name (so that
// a client cannot smuggle its own X-Verdict-Subject upstream).
func header(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// headerMap is the original request's headers by lower-case name: Envoy's
// headers map, or its header_map (encode_raw_headers: true), values of a
// repeated header joined with ",".
func headerMap(h interface {
	GetHeaders() map[string]string
	GetHeaderMap() *corev3.HeaderMap
}) map[string]string {
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		out := make(map[string]string, len(hm.GetHeaders()))
		for _, kv := range hm.GetHeaders() {
			k := strings.ToLower(kv.GetKey())
			v := kv.GetValue()
			if raw := kv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			if prev, ok := out[k]; ok {
				v = prev + "," + v
			}
			out[k] = v
		}
		return out
	}
	// Envoy sends the names lower-case already: the map is used as it
	// is unless a name is not.
	hs := h.GetHeaders()
	for k := range hs {
		if strings.ToLower(k) != k {
			out := make(map[string]string, len(hs))
			for k, v := range hs {
				out[strings.ToLower(k)] = v
			}
			return out
		}
	}
	return hs
}

// sourceAddr is the end user's address as Envoy saw it (the downstream
// peer), "" when not given.
func sourceAddr(req *authv3.CheckRequest) string {
	return req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
}
