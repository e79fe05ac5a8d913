package server

import (
	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/pdp"
)

// PlanPath is the query-plan route: which resources of one type may the
// subject act on, as a condition over their attributes (docs/plans.md).
const PlanPath = "/v1/plan"

// plan is POST /v1/plan: the same caller authentication (verdict:decide),
// rate limits (the decide group), in-flight bound and body rules as
// /v1/decide; the answer from the decision service.
func (s *Server) plan(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	in, err := s.dec.ParsePlan(c.UserContext(), c.Body())
	if err != nil {
		return err
	}
	out, err := s.dec.Plan(c.UserContext(), in, pdp.Meta{Endpoint: pdp.EndpointPlan, RequestID: requestID(c)})
	if err != nil {
		return err
	}
	return c.JSON(out)
}
