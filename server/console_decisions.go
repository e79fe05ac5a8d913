package server

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/pdp"
)

// The console's decision-log tail: the last decisions the decision log
// kept (decision_logs.history of them, redacted as the log writes them),
// newest first, filtered by decision, reason, subject type, resource type
// and revision.

// tailFilter is the tail's query.
type tailFilter struct {
	Decision, Reason, SubjectType, ResourceType, Revision string
	Limit                                                 int
}

func (f tailFilter) keep(d pdp.LoggedDecision) bool {
	switch {
	case f.Decision == "allow" && !d.Allow, f.Decision == "deny" && d.Allow:
		return false
	case f.Revision != "" && d.Revision != f.Revision:
		return false
	case f.Reason != "" && !containsReason(d, f.Reason):
		return false
	}
	if f.SubjectType != "" && (d.Input == nil || d.Input.Subject.Type != f.SubjectType) {
		return false
	}
	if f.ResourceType != "" && (d.Input == nil || d.Input.Resource.Type != f.ResourceType) {
		return false
	}
	return true
}

func containsReason(d pdp.LoggedDecision, r string) bool {
	if d.Error == r {
		return true
	}
	for _, x := range d.Reasons {
		if x == r {
			return true
		}
	}
	return false
}

// consoleDecisions shows the tail.
func (s *Server) consoleDecisions(c *fiber.Ctx) error {
	p := s.newConsolePage(c, "Recent decisions", "decisions")
	f := tailFilter{Decision: c.Query("decision"), Reason: strings.TrimSpace(c.Query("reason")),
		SubjectType: strings.TrimSpace(c.Query("subject_type")), ResourceType: strings.TrimSpace(c.Query("resource_type")),
		Revision: strings.TrimSpace(c.Query("revision")), Limit: 100}
	if n, err := strconv.Atoi(c.Query("limit")); err == nil && n > 0 {
		f.Limit = min(n, 1000)
	}
	var rows []pdp.LoggedDecision
	tail, ok := s.history.(pdp.DecisionTail)
	if !ok {
		p.Error = "The decision log is off (decision_logs): there are no recent decisions to show."
	} else {
		rows = tail.RecentDecisions(c.UserContext(), f.Limit, f.keep)
	}
	return s.render(c, fiber.StatusOK, "console_decisions.html", pageCSP(false), struct {
		consolePage
		F    tailFilter
		Rows []pdp.LoggedDecision
	}{p, f, rows})
}
