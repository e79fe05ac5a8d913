package server

import (
	"context"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

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
	Reasons    []string           `json:"reasons"`
	Revision   string             `json:"revision"`
	DecisionID string             `json:"decision_id"`
	Error      string             `json:"error,omitempty"`
	Explain    []engine.RuleTrace `json:"explain,omitempty"`
}

// DecisionResponse is the JSON answer for one decision, as /v1/decide and
// `verdict decide` print it.
type DecisionResponse struct {
	Decision bool            `json:"decision"`
	Context  DecisionContext `json:"context"`
}

type batchResponse struct {
	Evaluations []DecisionResponse `json:"evaluations"`
}

// request is a decoded, validated /v1/decide body.
type request struct {
	inputs   []*engine.Input
	batch    bool
	semantic string
	explain  bool
}

// entities are the fields an evaluation item may override as a whole.
var entities = []string{"subject", "action", "resource", "context"}

// parseRequest validates the body of /v1/decide. Any caller-sent "token" is
// dropped: token claims come only from verified credentials.
func (s *Server) parseRequest(body []byte) (*request, error) {
	doc, err := decodeObject(body, s.cfg.MaxDepth)
	if err != nil {
		return nil, err
	}
	delete(doc, "token")
	r := &request{semantic: ExecuteAll}
	if v, ok := doc["explain"]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, newError(400, CodeInvalidInput, "explain: must be a boolean")
		}
		r.explain = b
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
			r.semantic = str
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
			return nil, newError(400, CodeInvalidInput, err.Error())
		}
		r.inputs = []*engine.Input{in}
		return r, nil
	}
	if len(items) > s.cfg.MaxBatch {
		return nil, newError(400, CodeInvalidInput, fmt.Sprintf("evaluations: at most %d items are allowed, got %d", s.cfg.MaxBatch, len(items)))
	}
	r.batch = true
	r.inputs = make([]*engine.Input, len(items))
	for i, it := range items {
		item, ok := it.(map[string]any)
		if !ok {
			return nil, newError(400, CodeInvalidInput, fmt.Sprintf("evaluations[%d]: must be an object", i))
		}
		merged := make(map[string]any, len(entities))
		for _, k := range entities {
			if v, ok := doc[k]; ok {
				merged[k] = v
			}
		}
		for _, k := range entities {
			if v, ok := item[k]; ok {
				merged[k] = v
			}
		}
		in, err := engine.ParseInput(merged, fmt.Sprintf("evaluations[%d].", i))
		if err != nil {
			return nil, newError(400, CodeInvalidInput, err.Error())
		}
		r.inputs[i] = in
	}
	return r, nil
}

func (s *Server) decide(c *fiber.Ctx) error {
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	// The body is parsed into fresh Go values here; nothing of Fiber's
	// buffers outlives the handler.
	req, err := s.parseRequest(c.Body())
	if err != nil {
		return err
	}
	active := s.bundles.Active()
	ctx := c.UserContext()
	if !req.batch {
		return c.JSON(s.evaluate(ctx, active, req.inputs[0], req.explain))
	}
	out := batchResponse{Evaluations: make([]DecisionResponse, 0, len(req.inputs))}
	for _, in := range req.inputs {
		d := s.evaluate(ctx, active, in, req.explain)
		out.Evaluations = append(out.Evaluations, d)
		if (req.semantic == DenyOnFirstDeny && !d.Decision) || (req.semantic == PermitOnFirstPermit && d.Decision) {
			break
		}
	}
	return c.JSON(out)
}

// evaluate answers one input from the cache or the active snapshot. Explain
// requests bypass the cache; failed evaluations are never cached.
func (s *Server) evaluate(ctx context.Context, active *bundles.Active, in *engine.Input, explain bool) DecisionResponse {
	var d engine.Decision
	if active == nil {
		d = (*engine.Snapshot)(nil).Decide(ctx, in, false)
	} else {
		d = s.decideCached(ctx, active, in, explain)
	}
	return NewDecisionResponse(d)
}

// NewDecisionResponse renders d with a fresh decision id.
func NewDecisionResponse(d engine.Decision) DecisionResponse {
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
		resp.Context.Error = d.Err.Error()
	}
	return resp
}

func (s *Server) decideCached(ctx context.Context, active *bundles.Active, in *engine.Input, explain bool) engine.Decision {
	snap := active.Snapshot
	if explain || s.cache == nil || !snap.Cacheable() {
		return snap.Decide(ctx, in, explain)
	}
	key := inputKey(active.Generation, in)
	if d, ok := s.cache.Get(key); ok {
		return d
	}
	d := snap.Decide(ctx, in, false)
	if d.Err == nil {
		s.cache.Set(key, d)
	}
	return d
}
