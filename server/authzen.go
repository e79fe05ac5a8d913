package server

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/pdp"
)

// The AuthZEN Authorization API 1.0 routes (their default paths).
const (
	authzenEvaluation     = "/access/v1/evaluation"
	authzenEvaluations    = "/access/v1/evaluations"
	authzenSearchSubject  = "/access/v1/search/subject"
	authzenSearchResource = "/access/v1/search/resource"
	authzenSearchAction   = "/access/v1/search/action"
)

// authzenEvaluation answers one AuthZEN access evaluation exactly as
// /v1/decide answers a single request; "evaluations" and "options" are
// unknown fields here and ignored.
func (s *Server) authzenEvaluation(c *fiber.Ctx) error {
	return s.decideWith(c, pdp.EndpointAuthZEN, pdp.ParseOptions{Single: true}, true)
}

// authzenEvaluations answers AuthZEN boxcarred evaluations: /v1/decide's
// batch, except that an item that is no valid input after its defaults is a
// deny with the error in its context (HTTP 200), and an item's subject or
// resource without type or id (action without name) takes them from the
// top-level default.
func (s *Server) authzenEvaluations(c *fiber.Ctx) error {
	return s.decideWith(c, pdp.EndpointAuthZEN, pdp.ParseOptions{ItemErrors: true, InheritIDs: true}, true)
}

// search answers an AuthZEN search (pdp.Service.Search).
func (s *Server) search(kind pdp.SearchKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := requireJSON(c); err != nil {
			return err
		}
		out, err := s.dec.Search(c.UserContext(), kind, c.Body())
		if err != nil {
			return err
		}
		return c.JSON(out)
	}
}

// authzenConfiguration is the PDP metadata document; the struct keeps
// policy_decision_point first.
type authzenConfiguration struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
}

// authzenMetadata serves the PDP metadata (AuthZEN 1.0 §"Policy Decision
// Point Metadata"): every endpoint under the public base URL. Values are
// never empty.
func (s *Server) authzenMetadata(c *fiber.Ctx) error {
	base := s.publicURL(c)
	return c.JSON(authzenConfiguration{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + authzenEvaluation,
		AccessEvaluationsEndpoint: base + authzenEvaluations,
		SearchSubjectEndpoint:     base + authzenSearchSubject,
		SearchResourceEndpoint:    base + authzenSearchResource,
		SearchActionEndpoint:      base + authzenSearchAction,
	})
}

// publicURL is server.public_url, else the token issuer, else the scheme
// and host the request came to.
func (s *Server) publicURL(c *fiber.Ctx) string {
	switch {
	case s.cfg.PublicURL != "":
		return s.cfg.PublicURL
	case s.issuer != "":
		return s.issuer
	}
	return strings.TrimSuffix(c.BaseURL(), "/")
}

// validPublicURL accepts an absolute http(s) URL without query, fragment,
// user info or trailing slash (AuthZEN compares policy_decision_point as a
// string).
func validPublicURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("must be an http or https URL")
	case u.Host == "":
		return errors.New("must have a host")
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "?#"):
		return errors.New("must have no query or fragment")
	case u.User != nil:
		return errors.New("must have no user info")
	case strings.HasSuffix(raw, "/"):
		return errors.New("must not end with a slash")
	}
	return nil
}
