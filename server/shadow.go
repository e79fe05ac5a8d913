package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictpdp/verdict/pdp"
	"github.com/verdictpdp/verdict/store"
)

// Shadow bundles: /v1/bundles/{revision}/shadow. A stored revision decides
// beside the active one on a sample of live decisions, off the request path
// (pdp's shadow); the state is the store's, so every replica shadows the
// same revision; each replica reports what it compared.

// ShadowAdmin keeps the shadow state (the app's follower of the store).
type ShadowAdmin interface {
	Start(ctx context.Context, rev string, ratio float64, examples int, by string) (store.ShadowState, error)
	Stop(ctx context.Context) error
	State(ctx context.Context) (store.ShadowState, error)
}

// WithShadows serves the shadow routes with a.
func WithShadows(a ShadowAdmin) Option {
	return func(s *Server) { s.shadows = a }
}

// shadowRoutes are the shadow rows of the route table.
func (s *Server) shadowRoutes() []route {
	write := []fiber.Handler{s.requireBundles(ScopeBundlesWrite)}
	read := []fiber.Handler{s.requireBundles(ScopeBundlesRead, ScopeBundlesWrite)}
	return []route{
		{fiber.MethodPost, "/v1/bundles/:revision/shadow", s.startShadow, write},
		{fiber.MethodGet, "/v1/bundles/:revision/shadow", s.shadowReport, read},
		{fiber.MethodDelete, "/v1/bundles/:revision/shadow", s.stopShadow, write},
		{fiber.MethodPost, "/v1/bundles/:revision/shadow/promote", s.promoteShadow, write},
	}
}

// shadowStart is the body of POST /v1/bundles/{revision}/shadow.
type shadowStart struct {
	// Ratio is the share of decisions shadowed (default 0.1).
	Ratio *float64 `json:"ratio"`
	// Examples is how many inputs each disagreement keeps (default 5).
	Examples *int `json:"examples"`
}

func (s *Server) shadowReady() error {
	if s.shadows == nil || s.bundleAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server keeps no revisions to shadow")
	}
	return nil
}

func (s *Server) startShadow(c *fiber.Ctx) error {
	if err := s.shadowReady(); err != nil {
		return err
	}
	rev, err := s.revisionParam(c)
	if err != nil {
		return err
	}
	var body shadowStart
	if len(c.Body()) > 0 {
		if err := requireJSON(c); err != nil {
			return err
		}
		doc, err := pdp.DecodeObject(c.Body(), s.cfg.MaxDepth)
		if err != nil {
			return err
		}
		if v, ok := doc["ratio"]; ok {
			r, isNum := number(v)
			if !isNum || r <= 0 || r > 1 {
				return newError(fiber.StatusBadRequest, CodeInvalidInput, "ratio: must be a number more than 0 and at most 1")
			}
			body.Ratio = &r
		}
		if v, ok := doc["examples"]; ok {
			n, isNum := number(v)
			if !isNum || n < 0 || n > 100 || n != float64(int(n)) {
				return newError(fiber.StatusBadRequest, CodeInvalidInput, "examples: must be a whole number from 0 to 100")
			}
			e := int(n)
			body.Examples = &e
		}
	}
	ratio, examples := 0.1, 5
	if body.Ratio != nil {
		ratio = *body.Ratio
	}
	if body.Examples != nil {
		examples = *body.Examples
	}
	st, err := s.shadows.Start(c.UserContext(), rev, ratio, examples, callerID(c))
	if errors.Is(err, store.ErrNotFound) {
		return newError(fiber.StatusNotFound, CodeNotFound, fmt.Sprintf("revision %s is not stored", rev))
	}
	if err != nil {
		return bundleError(err)
	}
	s.log.Info("bundle revision shadowed", "audit", true, "revision", rev, "ratio", ratio, "by", callerID(c))
	return c.Status(fiber.StatusCreated).JSON(st)
}

// shadowed is the revision of the route, which must be the shadowed one,
// and the shadow state.
func (s *Server) shadowed(c *fiber.Ctx) (string, store.ShadowState, error) {
	if err := s.shadowReady(); err != nil {
		return "", store.ShadowState{}, err
	}
	rev, err := s.revisionParam(c)
	if err != nil {
		return "", store.ShadowState{}, err
	}
	st, err := s.shadows.State(c.UserContext())
	if err != nil {
		return "", store.ShadowState{}, err
	}
	if st.Revision != rev {
		return "", store.ShadowState{}, newError(fiber.StatusNotFound, CodeNotFound, fmt.Sprintf("revision %s is not shadowed", rev))
	}
	return rev, st, nil
}

// number reads a JSON number.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// shadowReport is this replica's report of the shadowed revision.
func (s *Server) shadowReport(c *fiber.Ctx) error {
	rev, st, err := s.shadowed(c)
	if err != nil {
		return err
	}
	r, err := s.dec.ShadowReport()
	if errors.Is(err, pdp.ErrNoShadow) {
		r = pdp.ShadowReport{Revision: rev, Disagreements: []pdp.ShadowDisagreement{}, Agreements: []pdp.ShadowAgreement{}} // this replica has not caught up yet
	}
	out := shadowAcross(s.replicas(c.UserContext()), rev)
	return c.JSON(fiber.Map{"state": st, "report": r, "replicas": out.Replicas, "total": out.Total})
}

// ShadowCounts are the totals of dec's running shadow, as a replica
// reports them to the roster; nil while none runs.
func ShadowCounts(dec *pdp.Service) *store.ShadowCounts {
	r, err := dec.ShadowReport()
	if err != nil {
		return nil
	}
	return &store.ShadowCounts{Revision: r.Revision, Started: r.Started, Sampled: r.Sampled, Agreed: r.Agreed,
		Disagreed: r.Disagreed, ReasonsChanged: r.ReasonsChanged, Dropped: r.Dropped}
}

// shadowReplica is one replica's counts of the shadowed revision, as the
// replicas report them to the shared store (every poll).
type shadowReplica struct {
	ID   string `json:"id"`
	Host string `json:"host,omitempty"`
	Self bool   `json:"self"`
	// Seen is when the replica reported these counts.
	Seen time.Time `json:"seen"`
	store.ShadowCounts
}

// shadowTotal sums the counts of every replica that shadows the revision.
type shadowTotal struct {
	Replicas       int    `json:"replicas"`
	Sampled        uint64 `json:"sampled"`
	Agreed         uint64 `json:"agreed"`
	Disagreed      uint64 `json:"disagreed"`
	ReasonsChanged uint64 `json:"reasons_changed"`
	Dropped        uint64 `json:"dropped"`
}

// shadowAcross is the counts of rev's shadow on each replica v lists
// (this one's fresh, the others' as of their last report) and their sum.
func shadowAcross(v replicasView, rev string) (out struct {
	Replicas []shadowReplica
	Total    shadowTotal
}) {
	out.Replicas = []shadowReplica{}
	for _, m := range v.Replicas {
		if m.Shadow == nil || m.Shadow.Revision != rev {
			continue
		}
		out.Replicas = append(out.Replicas, shadowReplica{ID: m.ID, Host: m.Host, Self: m.Self, Seen: m.Seen, ShadowCounts: *m.Shadow})
		t := &out.Total
		t.Replicas++
		t.Sampled += m.Shadow.Sampled
		t.Agreed += m.Shadow.Agreed
		t.Disagreed += m.Shadow.Disagreed
		t.ReasonsChanged += m.Shadow.ReasonsChanged
		t.Dropped += m.Shadow.Dropped
	}
	return out
}

func (s *Server) stopShadow(c *fiber.Ctx) error {
	rev, _, err := s.shadowed(c)
	if err != nil {
		return err
	}
	last, _ := s.dec.ShadowReport()
	if err := s.shadows.Stop(c.UserContext()); err != nil {
		return err
	}
	s.log.Info("bundle shadow stopped", "audit", true, "revision", rev, "by", callerID(c))
	return c.JSON(fiber.Map{"stopped": rev, "report": last})
}

// promoteShadow activates the shadowed revision (as POST
// /v1/bundles/{revision}/activate) and ends shadowing.
func (s *Server) promoteShadow(c *fiber.Ctx) error {
	rev, _, err := s.shadowed(c)
	if err != nil {
		return err
	}
	res, err := s.bundleAdmin.Activate(c.UserContext(), rev)
	if err != nil {
		return err
	}
	if err := s.shadows.Stop(c.UserContext()); err != nil {
		return err
	}
	s.log.Info("shadowed bundle revision promoted", "audit", true, "revision", rev, "by", callerID(c))
	return c.JSON(pushResponse{PushResult: res, Message: fmt.Sprintf("revision %s is active; shadowing ended", rev)})
}

// shadowMetrics exports the running shadow's counts: gauges, as they start
// again with every shadow (0 while none runs).
func shadowMetrics(f factory, s *Server) {
	for _, m := range []struct {
		name, help string
		of         func(pdp.ShadowReport) uint64
	}{
		{"verdict_shadow_sampled", "Live decisions the shadowed revision decided too (since the shadow started; 0: none runs).", func(r pdp.ShadowReport) uint64 { return r.Sampled }},
		{"verdict_shadow_disagreed", "Shadowed decisions the candidate revision would answer with the other decision.", func(r pdp.ShadowReport) uint64 { return r.Disagreed }},
		{"verdict_shadow_reasons_changed", "Shadowed decisions the candidate would answer the same with other reasons.", func(r pdp.ShadowReport) uint64 { return r.ReasonsChanged }},
		{"verdict_shadow_dropped", "Decisions sampled for the shadow but dropped: its queue was full.", func(r pdp.ShadowReport) uint64 { return r.Dropped }},
	} {
		of := m.of
		f.gaugeFunc(m.name, m.help, func() float64 {
			r, err := s.dec.ShadowReport()
			if err != nil {
				return 0
			}
			return float64(of(r))
		})
	}
	f.reg.MustRegister(shadowOutcomes{s})
}

// shadowOutcomes is verdict_shadow_outcomes: the running shadow's
// decisions by the outcome on each side (decision and reasons, that is by
// rule), agreements and disagreements alike; no series while none runs.
// The groups are bounded by the shadow (pdp's maxShadowGroups).
type shadowOutcomes struct{ s *Server }

var shadowOutcomesDesc = prometheus.NewDesc("verdict_shadow_outcomes",
	"Shadowed decisions by the outcome of the active and of the candidate revision: decision (allow, deny) and reasons (comma-separated rule ids or verdict:* codes).",
	[]string{"active_decision", "active_reasons", "candidate_decision", "candidate_reasons"}, nil)

func (shadowOutcomes) Describe(ch chan<- *prometheus.Desc) { ch <- shadowOutcomesDesc }

func (o shadowOutcomes) Collect(ch chan<- prometheus.Metric) {
	r, err := o.s.dec.ShadowReport()
	if err != nil {
		return
	}
	emit := func(a, c pdp.ShadowOutcome, n uint64) {
		ch <- prometheus.MustNewConstMetric(shadowOutcomesDesc, prometheus.GaugeValue, float64(n),
			decisionLabel(a.Decision), strings.Join(a.Reasons, ","), decisionLabel(c.Decision), strings.Join(c.Reasons, ","))
	}
	for _, g := range r.Agreements {
		emit(g.Outcome, g.Outcome, g.Count)
	}
	for _, g := range r.Disagreements {
		emit(g.Active, g.Candidate, g.Count)
	}
}

func decisionLabel(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}
