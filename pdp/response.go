package pdp

import (
	"github.com/google/uuid"

	"github.com/verdictpdp/verdict/engine"
)

// DecisionContext is the "context" object of a decision response.
type DecisionContext struct {
	Reasons  []string `json:"reasons"`
	Revision string   `json:"revision"`
	// DecisionID identifies this decision in the server's logs. The AuthZEN
	// routes send it in the X-Verdict-Decision-Id header instead, so that
	// the same request always gets the same body (the certification suite
	// compares them).
	DecisionID string `json:"decision_id,omitempty"`
	Error      string `json:"error,omitempty"`
	// Code and Reason mark the item after which a short-circuit batch
	// stopped: ShortCircuitCode and the evaluations_semantic.
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// TTL is how many seconds the caller may keep this decision (a cache
	// hint, hints.go); absent (0) when it may keep it not at all.
	TTL int `json:"ttl,omitempty"`
	// Signature is the decision signed, a compact JWS of DecisionClaims
	// (sign.go), when the request or the server asked for one.
	Signature string             `json:"signature,omitempty"`
	Explain   []engine.RuleTrace `json:"explain,omitempty"`
	// Warnings are problems that did not change the decision: under
	// bundles.schemas: warn, "schema_violation: ..." for an input that does
	// not match its resource type's schema.
	Warnings []string `json:"warnings,omitempty"`
}

// Response is the answer for one decision, as /v1/decide and `verdict
// decide` print it.
type Response struct {
	Decision bool            `json:"decision"`
	Context  DecisionContext `json:"context"`
	// Bare renders the answer as {"decision": …} alone (AppendJSON): the
	// AuthZEN routes leave out a context that carries nothing the caller
	// asked for.
	Bare bool `json:"-"`
}

// BatchResponse is the JSON answer to a batch request.
type BatchResponse struct {
	Evaluations []Response `json:"evaluations"`
}

// Result is what Service.Decide answers a Request: one Response, or one per
// batch item decided (a short-circuit batch stops early).
type Result struct {
	// Batch is Request.Batch.
	Batch bool
	// Evaluations holds the one decision, or the batch items decided, in
	// order.
	Evaluations []Response
}

// Body is the value a transport renders as JSON: a Response for a single
// request, a BatchResponse for a batch.
func (r Result) Body() any {
	if !r.Batch {
		return r.Evaluations[0]
	}
	return BatchResponse{Evaluations: r.Evaluations}
}

// ShortCircuitCode is context.code of the batch item after which a
// deny_on_first_deny or permit_on_first_permit batch stopped (context.reason
// names the semantic), as in the AuthZEN specification's example.
const ShortCircuitCode = "200"

// ReasonInvalidInput is the reason of a batch item that was no valid input
// after its defaults (AuthZEN evaluations only): a deny whose context.error
// names the field.
const ReasonInvalidInput = "verdict:invalid-input"

func invalidItem(err error) Response {
	return Response{Context: DecisionContext{
		Reasons:    []string{ReasonInvalidInput},
		DecisionID: uuid.NewString(),
		Error:      err.Error(),
	}}
}

// Respond decides every input of req with decide, honouring the batch
// semantic (short-circuit after the first deny or permit). Items that were
// no valid input are denies carrying their error, never decided.
func Respond(req *Request, decide func(*engine.Input) Response) Result {
	out := Result{Batch: req.Batch, Evaluations: make([]Response, 0, len(req.Inputs))}
	for i, in := range req.Inputs {
		var d Response
		if req.Errs != nil && req.Errs[i] != nil {
			d = invalidItem(req.Errs[i])
		} else {
			d = decide(in)
		}
		if req.Batch && ((req.Semantic == DenyOnFirstDeny && !d.Decision) || (req.Semantic == PermitOnFirstPermit && d.Decision)) {
			// The item that stopped the batch says so, as the AuthZEN
			// specification's example does; no later item is decided.
			d.Context.Code, d.Context.Reason = ShortCircuitCode, req.Semantic
			out.Evaluations = append(out.Evaluations, d)
			break
		}
		out.Evaluations = append(out.Evaluations, d)
	}
	return out
}

// NewResponse renders d with a fresh decision id. When d failed,
// context.error says how (the reason code's meaning, e.g. "evaluation
// deadline exceeded"); the detailed cause, which names policies and rules, is
// included only when detailed is true.
func NewResponse(d engine.Decision, detailed bool) Response {
	resp := Response{
		Decision: d.Allow,
		Context: DecisionContext{
			Reasons:    d.Reasons,
			Revision:   d.Revision,
			DecisionID: uuid.NewString(),
			Explain:    d.Explain,
		},
	}
	if resp.Context.Reasons == nil {
		resp.Context.Reasons = []string{}
	}
	if d.Err != nil {
		resp.Context.Error = engine.Describe(d.Err)
		if detailed {
			resp.Context.Error = d.Err.Error()
		}
	}
	// A schema violation describes the caller's own input, never a policy,
	// so it is shown in full to every caller.
	if v := d.Violation; v != nil && v.Enforced && d.Err == nil {
		resp.Context.Error = v.Error()
	} else if v != nil && !v.Enforced {
		resp.Context.Warnings = []string{engine.ReasonSchemaViolation + ": " + v.Error()}
	}
	return resp
}
