package server

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// The decision routes are transports of the decision service (pdp): each
// binds the request, makes one call, and renders the value it gets back.

func (s *Server) decide(c *fiber.Ctx) error {
	return s.decideWith(c, pdp.EndpointDecide, pdp.ParseOptions{}, false)
}

// requireJSON refuses a body that is not declared JSON with 415.
func requireJSON(c *fiber.Ctx) error {
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	return nil
}

// decideWith answers a decision request parsed with opt: /v1/decide and the
// AuthZEN evaluation routes (e). idsInHeader moves every decision id from
// the body to the X-Verdict-Decision-Id header (comma-separated, in item
// order), as the AuthZEN routes answer.
func (s *Server) decideWith(c *fiber.Ctx, e pdp.Endpoint, opt pdp.ParseOptions, idsInHeader bool) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	// The body is parsed into fresh Go values here; nothing of Fiber's
	// buffers outlives the handler.
	res, err := s.dec.DecideBody(c.UserContext(), c.Body(), opt, decisionMeta(c, e))
	if err != nil {
		return err
	}
	if idsInHeader {
		ids := make([]string, len(res.Evaluations))
		reasons := s.cfg.AuthZENReasons || strings.EqualFold(c.Get(reasonsHeader), "true")
		for i := range res.Evaluations {
			ev := &res.Evaluations[i]
			ids[i] = ev.Context.DecisionID
			ev.Context.DecisionID = ""
			ev.Bare = !reasons && ev.Context.Error == "" && ev.Context.Code == "" &&
				len(ev.Context.Warnings) == 0 && len(ev.Context.Explain) == 0 &&
				ev.Context.TTL == 0 && ev.Context.Signature == ""
		}
		c.Set(decisionIDHeader, strings.Join(ids, ","))
	}
	buf := answerBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 64<<10 { // a large batch's buffer is left to the GC
			answerBuffers.Put(buf)
		}
	}()
	b, err := res.AppendJSON((*buf)[:0])
	if err != nil {
		return err
	}
	*buf = b
	// Only an answer that is sent may be kept: set last, so that an
	// error answer keeps guard's no-store.
	setDecisionCaching(c, res)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(b) // a copy: the buffer goes back to the pool
	return nil
}

// answerBuffers hold decision answers while they are copied into the
// response.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// decisionIDHeader carries the decision ids of an AuthZEN answer.
const decisionIDHeader = "X-Verdict-Decision-Id"

// reasonsHeader: "true" asks an AuthZEN route for every decision's
// context (reasons, revision), as server.authzen_reasons does for all.
const reasonsHeader = "X-Verdict-Reasons"

// subjectVerifier verifies subject tokens with the server's verifier for
// the decision service: a token that cannot be checked now is
// pdp.ErrUnavailable (a 503, never a pass), an invalid one the verifier's
// short reason.
type subjectVerifier struct{ v Verifier }

func (sv subjectVerifier) VerifySubject(ctx context.Context, tok string) (map[string]any, error) {
	claims, err := sv.v.Verify(ctx, tok)
	switch {
	case errors.Is(err, authn.ErrUnavailable):
		return nil, pdp.ErrUnavailable
	case err != nil:
		return nil, errors.New(reason(err))
	}
	return claims, nil
}

// Decide answers one input exactly as POST /v1/decide does, decision cache
// and metrics included (counted as endpoint "decide"), for callers that
// embed Verdict in their process. With no active bundle it denies with
// engine.ErrNoPolicy.
func (s *Server) Decide(ctx context.Context, in *engine.Input, explain bool) pdp.Response {
	return s.dec.Evaluate(ctx, in, explain, pdp.Meta{Endpoint: pdp.EndpointDecide})
}

// Decisions is the decision service the server's routes call.
func (s *Server) Decisions() *pdp.Service { return s.dec }
