package server

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/store"
)

// The replicas sharing the store, as GET /v1/admin/replicas and the
// console's overview show them: every replica reports itself to a shared
// store every poll (replica.Syncer with a Roster), with the bundle
// revision it serves and the store generation it applied; a replica that
// stops reporting drops out within three polls. With the embedded store
// there is one replica, this one.

// Roster lists the replicas that report to the shared store
// (store.Roster in one namespace) and reads the store's generation.
type Roster interface {
	Members(ctx context.Context) ([]store.Member, error)
	Generation(ctx context.Context) (uint64, error)
}

// WithRoster lists the replicas that report to a shared store.
func WithRoster(r Roster) Option {
	return func(s *Server) { s.roster = r }
}

// WithSelf describes this replica as it reports itself (its ID marks it
// in the list, and it is listed even before its first report lands);
// without it the server describes itself from what it knows.
func WithSelf(self func() store.Member) Option {
	return func(s *Server) { s.self = self }
}

// replicaView is one replica as GET /v1/admin/replicas lists it.
type replicaView struct {
	store.Member
	// Self marks the replica that answered.
	Self bool `json:"self"`
	// Behind is how many store generations it has not applied yet.
	Behind uint64 `json:"behind"`
	// InStep is whether it applied the store's generation and is healthy.
	InStep bool `json:"in_step"`
}

// replicasView is the answer of GET /v1/admin/replicas.
type replicasView struct {
	// Shared is false with the embedded store (one replica).
	Shared bool `json:"shared"`
	// Generation is the store's generation (shared stores).
	Generation uint64        `json:"generation,omitempty"`
	Replicas   []replicaView `json:"replicas"`
	// Problem says why only this replica is listed, when the store did
	// not answer.
	Problem string `json:"problem,omitempty"`
}

// replicas lists the replicas. A store that does not answer leaves the
// list at this replica, with the problem said (the answer is still 200:
// it is a view of what is known).
func (s *Server) replicas(ctx context.Context) replicasView {
	self := s.selfMember()
	if s.roster == nil {
		return replicasView{Replicas: []replicaView{{Member: self, Self: true, InStep: self.Healthy}}}
	}
	v := replicasView{Shared: true}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	gen, err := s.roster.Generation(ctx)
	var members []store.Member
	if err == nil {
		members, err = s.roster.Members(ctx)
	}
	if err != nil {
		v.Problem = "the store did not answer: only this replica is listed (" + err.Error() + ")"
		gen = self.Generation
		members = nil
	}
	v.Generation = gen
	if !slices.ContainsFunc(members, func(m store.Member) bool { return m.ID == self.ID }) {
		members = append(members, self)
	}
	for _, m := range members {
		if m.ID == self.ID {
			m = self // the freshest view of this one
		}
		r := replicaView{Member: m, Self: m.ID == self.ID}
		if gen > m.Generation {
			r.Behind = gen - m.Generation
		}
		r.InStep = r.Behind == 0 && m.Healthy
		v.Replicas = append(v.Replicas, r)
	}
	slices.SortFunc(v.Replicas, func(a, b replicaView) int { return strings.Compare(a.ID, b.ID) })
	return v
}

// selfMember describes this replica: as it reports itself to the roster
// (WithSelf), with what this server knows filled in where that says
// nothing (the embedded store: no sync to report).
func (s *Server) selfMember() store.Member {
	var m store.Member
	if s.self != nil {
		m = s.self()
	}
	if m.ID == "" {
		m.ID = "this"
	}
	if m.Version == "" {
		m.Version = s.version
	}
	if m.Started.IsZero() {
		m.Started = s.started
	}
	if m.Seen.IsZero() {
		m.Seen = time.Now()
	}
	if a := s.bundles.Active(); a != nil && m.Revision == "" {
		m.Revision = a.Snapshot.Revision()
	}
	if m.Shadow == nil {
		m.Shadow = ShadowCounts(s.dec)
	}
	switch r := s.replica; {
	case s.roster != nil:
		// The report carries the sync state.
	case r != nil:
		m.Generation, m.Healthy = r.Generation(), r.Healthy()
		m.LastSync = time.Now().Add(-r.SinceSync())
	default:
		m.Healthy = true // nothing to be out of step with
	}
	return m
}

// listReplicas is GET /v1/admin/replicas.
func (s *Server) listReplicas(c *fiber.Ctx) error {
	return c.JSON(s.replicas(c.UserContext()))
}

// consoleReplicas is the overview's table of replicas.
type consoleReplicas struct {
	Shared     bool
	Generation uint64
	Problem    string
	Rows       []consoleReplica
	// Lagging counts the replicas not in step.
	Lagging int
}

type consoleReplica struct {
	ID, Host, Version, Revision string
	Self, InStep, Healthy       bool
	Generation, Behind          uint64
	// SinceSync and Up are ages ("4s"); SinceSync is "never" before the
	// first sync.
	SinceSync, Up string
}

func (s *Server) consoleReplicas(ctx context.Context) consoleReplicas {
	v := s.replicas(ctx)
	out := consoleReplicas{Shared: v.Shared, Generation: v.Generation, Problem: v.Problem}
	now := time.Now()
	age := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return max(now.Sub(t), 0).Round(time.Second).String()
	}
	for _, r := range v.Replicas {
		out.Rows = append(out.Rows, consoleReplica{ID: r.ID, Host: r.Host, Version: r.Version, Revision: r.Revision,
			Self: r.Self, InStep: r.InStep, Healthy: r.Healthy, Generation: r.Generation, Behind: r.Behind,
			SinceSync: age(r.LastSync), Up: age(r.Started)})
		if !r.InStep {
			out.Lagging++
		}
	}
	return out
}
