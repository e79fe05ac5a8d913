package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// Batch semantics of AuthZEN evaluations.
const (
	ExecuteAll          = "execute_all"
	DenyOnFirstDeny     = "deny_on_first_deny"
	PermitOnFirstPermit = "permit_on_first_permit"
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
	Code    string             `json:"code,omitempty"`
	Reason  string             `json:"reason,omitempty"`
	Explain []engine.RuleTrace `json:"explain,omitempty"`
	// Warnings are problems that did not change the decision: under
	// bundles.schemas: warn, "schema_violation: ..." for an input that does
	// not match its resource type's schema.
	Warnings []string `json:"warnings,omitempty"`
}

// DecisionResponse is the JSON answer for one decision, as /v1/decide and
// `verdict decide` print it.
type DecisionResponse struct {
	Decision bool            `json:"decision"`
	Context  DecisionContext `json:"context"`
}

// Request is a decoded, validated /v1/decide body.
type Request struct {
	// Inputs holds one input, or the items of a batch in request order.
	Inputs []*engine.Input
	// Batch is true when the body had a non-empty "evaluations" array.
	Batch bool
	// Semantic is the batch's evaluations_semantic (execute_all by default).
	Semantic string
	// Explain asks for a trace of every rule evaluated.
	Explain bool
	// Errs, when not nil, holds for each item the error that made it no
	// valid input (its Inputs entry is then nil); such an item is a deny
	// carrying the error. Only the AuthZEN batch route has them.
	Errs []error
}

// entities are the fields an evaluation item may override as a whole.
var entities = []string{"subject", "action", "resource", "context"}

// SubjectTokenFunc verifies a decide request's subject_token and returns its
// claims.
type SubjectTokenFunc func(token string) (map[string]any, error)

// applySubjectToken verifies doc's subject_token, if any, with verify: its
// claims become the input's token, and the subject defaults to
// {type: "user", id: <sub>} (an id the request gives wins).
func applySubjectToken(doc map[string]any, verify SubjectTokenFunc) error {
	raw, ok := doc["subject_token"]
	if !ok || raw == nil {
		return nil
	}
	delete(doc, "subject_token")
	tok, ok := raw.(string)
	if !ok || tok == "" {
		return newError(400, CodeInvalidInput, "subject_token: must be a non-empty string (a JWT)")
	}
	if verify == nil {
		return newError(400, CodeInvalidInput, "subject_token: not supported here (it needs a server that verifies tokens)")
	}
	claims, err := verify(tok)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return ae
		}
		return newError(400, CodeInvalidSubjectTokn, "subject_token: "+reason(err))
	}
	doc["token"] = claims
	subject, _ := doc["subject"].(map[string]any)
	if _, present := doc["subject"]; present && subject == nil {
		return nil // a wrongly typed subject is reported by ParseInput
	}
	if subject == nil {
		subject = map[string]any{"type": "user"}
		doc["subject"] = subject
	}
	if _, ok := subject["id"]; !ok {
		sub, _ := claims["sub"].(string)
		subject["id"] = sub
	}
	return nil
}

// ParseRequest validates the body of /v1/decide: at most maxDepth levels of
// JSON and maxBatch evaluations. Any caller-sent "token" is dropped: token
// claims come only from verified credentials, here a subject_token verified
// by subjectToken (nil: subject_token is refused). Errors are client errors
// with a status (400) and a message naming the field.
func ParseRequest(body []byte, maxDepth, maxBatch int, subjectToken SubjectTokenFunc) (*Request, error) {
	return parseRequest(body, maxDepth, maxBatch, subjectToken, parseOptions{})
}

// parseOptions are the differences between /v1/decide and the AuthZEN
// routes, which share one parser.
type parseOptions struct {
	// single reads one evaluation and ignores "evaluations" and "options"
	// (POST /access/v1/evaluation, where they are unknown fields).
	single bool
	// itemErrors makes an item that is no valid input after its defaults a
	// deny carrying the error (Request.Errs), instead of a 400 for the whole
	// request: AuthZEN's evaluation-level errors.
	itemErrors bool
	// inheritIDs lets an item's subject or resource that lacks type or id,
	// or its action that lacks name, take them from the top-level entity;
	// properties are never merged (AuthZEN certification §3.2.7).
	inheritIDs bool
	// idsInHeader moves every decision id from the body to the
	// X-Verdict-Decision-Id header (comma-separated, in item order).
	idsInHeader bool
}

func parseRequest(body []byte, maxDepth, maxBatch int, subjectToken SubjectTokenFunc, opt parseOptions) (*Request, error) {
	doc, err := decodeObject(body, maxDepth)
	if err != nil {
		return nil, err
	}
	delete(doc, "token")
	if err := applySubjectToken(doc, subjectToken); err != nil {
		return nil, err
	}
	r := &Request{Semantic: ExecuteAll}
	if v, ok := doc["explain"]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, newError(400, CodeInvalidInput, "explain: must be a boolean")
		}
		r.Explain = b
	}
	if opt.single {
		delete(doc, "options")
		delete(doc, "evaluations")
	}
	if v, ok := doc["options"]; ok && v != nil {
		opts, ok := v.(map[string]any)
		if !ok {
			return nil, newError(400, CodeInvalidInput, "options: must be an object")
		}
		if sem, ok := opts["evaluations_semantic"]; ok {
			str, ok := sem.(string)
			if !ok || (str != ExecuteAll && str != DenyOnFirstDeny && str != PermitOnFirstPermit) {
				return nil, newError(400, CodeInvalidInput, fmt.Sprintf(
					"options.evaluations_semantic: must be %q, %q or %q", ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit))
			}
			r.Semantic = str
		}
	}
	var items []any
	if v, ok := doc["evaluations"]; ok && v != nil {
		items, ok = v.([]any)
		if !ok {
			return nil, newError(400, CodeInvalidInput, "evaluations: must be an array")
		}
	}
	if len(items) == 0 {
		in, err := engine.ParseInput(doc, "")
		if err != nil {
			return nil, newError(400, CodeInvalidInput, inputMessage(err, requestMembers...))
		}
		r.Inputs = []*engine.Input{in}
		return r, nil
	}
	if len(items) > maxBatch {
		return nil, newError(400, CodeInvalidInput, fmt.Sprintf("evaluations: at most %d items are allowed, got %d", maxBatch, len(items)))
	}
	r.Batch = true
	r.Inputs = make([]*engine.Input, len(items))
	for i, it := range items {
		prefix := fmt.Sprintf("evaluations[%d]", i)
		item, ok := it.(map[string]any)
		var in *engine.Input
		if !ok {
			err = &engine.InputError{Field: prefix, Message: "must be an object"}
		} else {
			in, err = engine.ParseInput(mergeItem(doc, item, opt.inheritIDs), prefix+".")
		}
		if err != nil {
			if !opt.itemErrors {
				return nil, newError(400, CodeInvalidInput, err.Error())
			}
			if r.Errs == nil {
				r.Errs = make([]error, len(items))
			}
			r.Errs[i] = err
			continue
		}
		r.Inputs[i] = in
	}
	return r, nil
}

// requestMembers are the top-level members of a decision request that are
// not the input's.
var requestMembers = []string{"explain", "options", "evaluations", "subject_token"}

// inputMessage renders an error of engine.ParseInput over a request's top
// level. Unknown members are ignored, but one that stands beside a missing
// member is named (a misspelt or misnamed "subject"), unless it is one of
// own, the request's own members.
func inputMessage(err error, own ...string) string {
	if ie, ok := errors.AsType[*engine.InputError](err); ok && !strings.Contains(ie.Field, ".") {
		ie.Unknown = slices.DeleteFunc(ie.Unknown, func(k string) bool { return slices.Contains(own, k) })
	}
	return err.Error()
}

// identity are the fields of an entity an item inherits with inheritIDs.
var identity = map[string][]string{"subject": {"type", "id"}, "resource": {"type", "id"}, "action": {"name"}}

// mergeItem is an evaluation item with the top-level entities of doc as
// defaults: an entity the item has replaces the default whole (with
// inheritIDs, save for the identity fields it lacks).
func mergeItem(doc, item map[string]any, inheritIDs bool) map[string]any {
	merged := make(map[string]any, len(entities))
	for _, k := range entities {
		if v, ok := doc[k]; ok {
			merged[k] = v
		}
	}
	for _, k := range entities {
		v, ok := item[k]
		if !ok {
			continue
		}
		top, topOK := doc[k].(map[string]any)
		own, ownOK := v.(map[string]any)
		if inheritIDs && topOK && ownOK {
			var filled map[string]any
			for _, f := range identity[k] {
				if _, has := own[f]; !has {
					if tv, ok := top[f]; ok {
						if filled == nil {
							filled = maps.Clone(own)
						}
						filled[f] = tv
					}
				}
			}
			if filled != nil {
				v = filled
			}
		}
		merged[k] = v
	}
	return merged
}

func (s *Server) decide(c *fiber.Ctx) error { return s.decideWith(c, endpointDecide, parseOptions{}) }

// requireJSON refuses a body that is not declared JSON with 415.
func requireJSON(c *fiber.Ctx) error {
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	return nil
}

// decideWith answers a decision request parsed with opt: /v1/decide and the
// AuthZEN evaluation routes (e).
func (s *Server) decideWith(c *fiber.Ctx, e endpoint, opt parseOptions) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	// The body is parsed into fresh Go values here; nothing of Fiber's
	// buffers outlives the handler.
	req, err := parseRequest(c.Body(), s.cfg.MaxDepth, s.cfg.MaxBatch, s.subjectTokens(c), opt)
	if err != nil {
		return err
	}
	if req.Explain && !s.cfg.AllowExplain {
		return newError(fiber.StatusForbidden, CodeExplainDisabled, "explain is disabled on this server (server.allow_explain)")
	}
	active := s.bundles.Active()
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	rid := requestID(c)
	out := Respond(req, func(in *engine.Input) DecisionResponse {
		return s.evaluate(ctx, e, rid, active, in, req.Explain)
	})
	var items []DecisionResponse
	switch o := out.(type) {
	case BatchResponse:
		items = o.Evaluations
		for i := range items {
			if req.Errs != nil && req.Errs[i] != nil {
				s.metrics.recordInvalid(e)
			}
		}
	case DecisionResponse:
		if opt.idsInHeader {
			c.Set(decisionIDHeader, o.Context.DecisionID)
			o.Context.DecisionID = ""
			return c.JSON(o)
		}
	}
	ids := make([]string, 0, len(items))
	for i := range items {
		// Items refused before evaluation still name the revision that
		// would have decided them.
		if active != nil && items[i].Context.Revision == "" {
			items[i].Context.Revision = active.Snapshot.Revision()
		}
		if opt.idsInHeader {
			ids = append(ids, items[i].Context.DecisionID)
			items[i].Context.DecisionID = ""
		}
	}
	if opt.idsInHeader {
		c.Set(decisionIDHeader, strings.Join(ids, ","))
	}
	return c.JSON(out)
}

// decisionIDHeader carries the decision ids of an AuthZEN answer.
const decisionIDHeader = "X-Verdict-Decision-Id"

// subjectTokens verifies subject tokens with the server's verifier; an
// unavailable verifier is a 503, never a pass.
func (s *Server) subjectTokens(c *fiber.Ctx) SubjectTokenFunc {
	if s.verifier == nil {
		return nil
	}
	return func(tok string) (map[string]any, error) {
		claims, err := s.verifier.Verify(c.UserContext(), tok)
		if errors.Is(err, authn.ErrUnavailable) {
			c.Set(fiber.HeaderRetryAfter, "1")
			return nil, newError(fiber.StatusServiceUnavailable, CodeUnavailable, "the subject token cannot be checked now; retry")
		}
		return claims, err
	}
}

// BatchResponse is the answer to a batch request.
type BatchResponse struct {
	Evaluations []DecisionResponse `json:"evaluations"`
}

// Respond decides every input of req with decide, honouring the batch
// semantic (short-circuit after the first deny or permit), and returns a
// DecisionResponse for a single request or a BatchResponse for a batch.
func Respond(req *Request, decide func(*engine.Input) DecisionResponse) any {
	if !req.Batch {
		return decide(req.Inputs[0])
	}
	out := BatchResponse{Evaluations: make([]DecisionResponse, 0, len(req.Inputs))}
	for i, in := range req.Inputs {
		var d DecisionResponse
		if req.Errs != nil && req.Errs[i] != nil {
			d = invalidItem(req.Errs[i])
		} else {
			d = decide(in)
		}
		if (req.Semantic == DenyOnFirstDeny && !d.Decision) || (req.Semantic == PermitOnFirstPermit && d.Decision) {
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

// ShortCircuitCode is context.code of the batch item after which a
// deny_on_first_deny or permit_on_first_permit batch stopped (context.reason
// names the semantic), as in the AuthZEN specification's example.
const ShortCircuitCode = "200"

// ReasonInvalidInput is the reason of a batch item that was no valid input
// after its defaults (AuthZEN evaluations only): a deny whose context.error
// names the field.
const ReasonInvalidInput = "verdict:invalid-input"

func invalidItem(err error) DecisionResponse {
	return DecisionResponse{Context: DecisionContext{
		Reasons:    []string{ReasonInvalidInput},
		DecisionID: uuid.NewString(),
		Error:      err.Error(),
	}}
}

// evaluate answers one input from the cache or the active snapshot. Explain
// requests bypass the cache; failed evaluations are never cached.
func (s *Server) evaluate(ctx context.Context, e endpoint, requestID string, active *bundles.Active, in *engine.Input, explain bool) DecisionResponse {
	start := time.Now()
	ctx, span := s.startDecide(ctx)
	var d engine.Decision
	var hit bool
	if active == nil {
		d = (*engine.Snapshot)(nil).Decide(ctx, in, false)
	} else {
		d, hit = s.decideCached(ctx, active, in, explain)
	}
	endDecide(span, e, d)
	s.metrics.recordDecision(e, d)
	resp := NewDecisionResponse(d, explain)
	s.logDecision(e, requestID, start, in, d, resp, hit)
	if d.Err != nil && active != nil {
		// The cause names policies and rules: it goes to the operator's log,
		// and to the caller only when it asked for an explanation.
		s.log.Warn("decision failed; denied", "request_id", requestID, "decision_id", resp.Context.DecisionID,
			"revision", d.Revision, "reason", engine.ClassifyErr(d.Err), "error", d.Err.Error())
	}
	if v := d.Violation; v != nil && !v.Enforced {
		s.log.Warn("input does not match its schema; decided anyway (bundles.schemas: warn)", "request_id", requestID,
			"decision_id", resp.Context.DecisionID, "revision", d.Revision, "resource_type", v.ResourceType,
			"problems", v.Problems)
	}
	return resp
}

// NewDecisionResponse renders d with a fresh decision id. When d failed,
// context.error says how (the reason code's meaning, e.g. "evaluation
// deadline exceeded"); the detailed cause, which names policies and rules, is
// included only when detailed is true.
func NewDecisionResponse(d engine.Decision, detailed bool) DecisionResponse {
	resp := DecisionResponse{
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

// decideCached decides in from the cache when it may and reports whether
// the decision came from it.
func (s *Server) decideCached(ctx context.Context, active *bundles.Active, in *engine.Input, explain bool) (engine.Decision, bool) {
	snap := active.Snapshot
	if explain || s.cache == nil || !snap.Cacheable() || s.timeInContext(in) {
		s.traceCache(ctx, cacheBypass)
		return s.timedDecide(ctx, snap, in, explain), false
	}
	key := inputKey(active.Generation, in)
	if d, ok := s.cache.Get(key); ok {
		s.traceCache(ctx, cacheHit)
		return d, true
	}
	s.traceCache(ctx, cacheMiss)
	d := s.timedDecide(ctx, snap, in, false)
	if d.Err == nil {
		s.cache.Set(key, d)
	}
	return d, false
}

// timedDecide is snap.Decide, timed for verdict_decision_evaluation_seconds.
func (s *Server) timedDecide(ctx context.Context, snap *engine.Snapshot, in *engine.Input, explain bool) engine.Decision {
	if s.metrics == nil {
		return snap.Decide(ctx, in, explain)
	}
	start := time.Now()
	d := snap.Decide(ctx, in, explain)
	s.metrics.observeEvaluation(start)
	return d
}

// Decide answers one input exactly as POST /v1/decide does, decision cache
// and metrics included (counted as endpoint "decide"), for callers that
// embed Verdict in their process. With no active bundle it denies with
// engine.ErrNoPolicy.
func (s *Server) Decide(ctx context.Context, in *engine.Input, explain bool) DecisionResponse {
	return s.evaluate(ctx, endpointDecide, "", s.bundles.Active(), in, explain)
}

func (s *Server) timeInContext(in *engine.Input) bool {
	for _, k := range s.cfg.NoCacheContextKeys {
		if _, ok := in.Context[k]; ok {
			return true
		}
	}
	return false
}
