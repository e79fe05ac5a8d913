package engine

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Snapshot is the compiled, immutable form of one bundle: every policy module
// ready to evaluate, plus the bundle's revision. It is safe for concurrent use
// and is swapped as a whole when another bundle is activated.
type Snapshot struct {
	revision      string
	modules       []Evaluator
	limits        Limits
	timeDependent bool
	counts        map[string]int
	validators    map[string]InputValidator
	schemaMode    SchemaMode
	bundles       []string
	maxCacheAge   time.Duration
}

// SnapshotOptions carries what NewSnapshot needs besides the modules.
type SnapshotOptions struct {
	// Revision names the bundle the snapshot was built from.
	Revision string
	// Limits bound each decision; a zero Timeout means DefaultLimits().Timeout.
	Limits Limits
	// CacheTimeDependent lets decisions be cached even though a module reads
	// the evaluation time (the policy author accepts answers as old as the
	// cache keeps them).
	CacheTimeDependent bool
	// Counts records how many policies of each engine kind the bundle holds,
	// for status reports.
	Counts map[string]int
	// Validators check inputs before evaluation, by resource type: an input
	// whose resource.type has one is validated first (see SchemaMode).
	// Nil means no input is validated.
	Validators map[string]InputValidator
	// SchemaMode says what a failed validation does; empty is SchemaEnforce.
	SchemaMode SchemaMode
	// MaxCacheAge is the longest a caller may keep a decision of the
	// snapshot (the bundles' metadata.verdict.max_cache_ttl); 0, or
	// negative, gives callers no caching hint.
	MaxCacheAge time.Duration
	// Bundles names, for each module in order, the bundle it came from (its
	// revision), when the snapshot serves several: explain traces then say
	// which bundle each rule is in. Nil, or a length other than the
	// modules', leaves traces without it.
	Bundles []string
}

// NewSnapshot builds a snapshot over modules. A snapshot with no modules
// denies everything with ErrNoPolicy.
func NewSnapshot(modules []Evaluator, opts SnapshotOptions) *Snapshot {
	lim := opts.Limits
	if lim.Timeout <= 0 {
		lim.Timeout = DefaultLimits().Timeout
	}
	td := false
	for _, m := range modules {
		if m.TimeDependent() {
			td = true
		}
	}
	var bundles []string
	if len(opts.Bundles) == len(modules) {
		bundles = slices.Clone(opts.Bundles)
	}
	counts := make(map[string]int, len(opts.Counts))
	for k, v := range opts.Counts {
		counts[k] = v
	}
	return &Snapshot{
		revision:      opts.Revision,
		modules:       append([]Evaluator(nil), modules...),
		limits:        lim,
		timeDependent: td && !opts.CacheTimeDependent,
		counts:        counts,
		validators:    maps.Clone(opts.Validators),
		schemaMode:    opts.SchemaMode,
		bundles:       bundles,
		maxCacheAge:   max(opts.MaxCacheAge, 0),
	}
}

// Revision returns the revision of the bundle the snapshot came from.
func (s *Snapshot) Revision() string { return s.revision }

// Cacheable reports whether decisions of this snapshot depend only on their
// input, so that they may be cached.
func (s *Snapshot) Cacheable() bool { return !s.timeDependent }

// MaxCacheAge is the longest a caller may keep a decision of the
// snapshot, SnapshotOptions.MaxCacheAge: an upper bound that holds only
// while the snapshot is Cacheable. 0 for a nil snapshot.
func (s *Snapshot) MaxCacheAge() time.Duration {
	if s == nil {
		return 0
	}
	return s.maxCacheAge
}

// Timeout is the deadline Decide sets on every decision (engine.timeout).
func (s *Snapshot) Timeout() time.Duration { return s.limits.Timeout }

// Modules returns the snapshot's modules in evaluation order, in a new
// slice. Tools use it to reach engine-specific features (test coverage);
// the serving path never needs it.
func (s *Snapshot) Modules() []Evaluator {
	if s == nil {
		return nil
	}
	return append([]Evaluator(nil), s.modules...)
}

// Counts returns a copy of the number of policies per engine kind.
func (s *Snapshot) Counts() map[string]int {
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Decide evaluates every module for in and combines their outcomes with
// deny-overrides: a failed module or an applicable deny wins, else an allow
// permits, else the answer is deny. The reasons name each deciding rule id
// once, in module order, however many modules (or bundles) have a rule of
// that id; the explain trace keeps every rule apart. Every module is evaluated even after a
// deny, so that the reasons (every matching deny rule) and a failure are the
// same whatever the module order and whether explain is asked for. A nil snapshot denies with ErrNoPolicy.
// Before any module, the input is checked against its resource type's
// validator: under SchemaEnforce a violation is a deny with reason
// schema_violation (Err stays nil: it depends only on the input, so it may be
// cached); under SchemaWarn the decision is made normally and carries the
// violation.
// The decision never takes longer than the snapshot's timeout plus the time
// an engine needs to notice cancellation.
func (s *Snapshot) Decide(ctx context.Context, in *Input, explain bool) Decision {
	if s == nil || len(s.modules) == 0 {
		d := Decision{Reasons: []string{ReasonNoPolicy}, Err: ErrNoPolicy}
		if s != nil {
			d.Revision = s.revision
		}
		return d
	}
	if in.Now.IsZero() {
		in.Now = time.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(ctx, s.limits.Timeout)
	defer cancel()

	d := Decision{Revision: s.revision}
	if v := s.validate(in); v != nil {
		d.Violation = v
		if explain {
			effect := "warn"
			if v.Enforced {
				effect = Deny.String()
			}
			d.Explain = []RuleTrace{{Policy: "schema", Rule: v.ResourceType, Effect: effect, Matched: true, Error: v.Error()}}
		}
		if v.Enforced {
			d.Reasons = []string{ReasonSchemaViolation}
			return d
		}
	}
	var allowRules, denyRules []string
	denied, allowed := false, false
	for i, m := range s.modules {
		out := m.Evaluate(ctx, in, explain)
		if explain {
			if s.bundles != nil {
				for j := range out.Trace {
					out.Trace[j].Bundle = s.bundles[i]
				}
			}
			d.Explain = append(d.Explain, out.Trace...)
		}
		if out.Err == nil && ctx.Err() != nil {
			out.Err = ModuleError(m.Name(), ErrTimeout)
		}
		if out.Err != nil {
			return Decision{
				Revision:  s.revision,
				Reasons:   []string{ClassifyErr(out.Err)},
				Err:       out.Err,
				Explain:   d.Explain,
				Violation: d.Violation,
			}
		}
		switch out.Effect {
		case Deny:
			denied = true
			denyRules = appendNew(denyRules, out.Rules)
		case Allow:
			allowed = true
			allowRules = appendNew(allowRules, out.Rules)
		}
	}
	switch {
	case denied:
		d.Reasons = denyRules
	case allowed:
		d.Allow = true
		d.Reasons = allowRules
	default:
		d.Reasons = []string{ReasonNoMatch}
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	return d
}

// appendNew appends the ids of add that reasons does not hold yet, in order:
// two bundles (a CEL and a Rego one, say) allowing through rules of the same
// id give that reason once.
func appendNew(reasons, add []string) []string {
	for _, r := range add {
		if !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	return reasons
}
