package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Entity is a subject or a resource of the AuthZEN information model. Type and
// ID identify it; Properties carries whatever attributes the caller sends. A
// nil Properties is seen by policies as an empty object.
type Entity struct {
	Type       string
	ID         string
	Properties map[string]any
}

// Action is the action of the AuthZEN information model.
type Action struct {
	Name       string
	Properties map[string]any
}

// Input is everything a policy sees for one decision. Token holds the verified
// claims of the caller's or subject's JWT, nil when there is none. Now is the
// evaluation time; the zero value is replaced by the current time when the
// decision is made.
type Input struct {
	Subject  Entity
	Action   Action
	Resource Entity
	Context  map[string]any
	Token    map[string]any
	Now      time.Time
	// SizeBound, when positive, is at least the length of every string and
	// the number of members of every list and map the input holds (the
	// length of the request body it was decoded from will do). Engines may
	// skip run-time cost tracking for expressions that are cheap for an
	// input of that size; 0 means unknown, and every expression is tracked.
	SizeBound int
}

// EntityDoc returns the JSON-shaped form of an entity ({type, id, properties}).
// It never returns a nil properties map.
func EntityDoc(e Entity) map[string]any {
	p := e.Properties
	if p == nil {
		p = map[string]any{}
	}
	return map[string]any{"type": e.Type, "id": e.ID, "properties": p}
}

// ActionDoc returns the JSON-shaped form of an action ({name, properties}).
func ActionDoc(a Action) map[string]any {
	p := a.Properties
	if p == nil {
		p = map[string]any{}
	}
	return map[string]any{"name": a.Name, "properties": p}
}

// Effect is what one policy module concluded.
type Effect int

const (
	// NotApplicable means no rule of the module matched the input.
	NotApplicable Effect = iota
	// Allow means the module permits the request.
	Allow
	// Deny means the module forbids the request.
	Deny
)

// String returns "allow", "deny" or "not-applicable".
func (e Effect) String() string {
	switch e {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	default:
		return "not-applicable"
	}
}

// RuleTrace records one rule evaluated, for explain output.
type RuleTrace struct {
	Policy  string `json:"policy"`
	Rule    string `json:"rule"`
	Effect  string `json:"effect"`
	Matched bool   `json:"matched"`
	Error   string `json:"error,omitempty"`
	// Bundle is the revision of the bundle the rule is in, when the
	// decision was made by several bundles together; empty otherwise.
	Bundle string `json:"bundle,omitempty"`
}

// Outcome is the result of one policy module. A non-nil Err means the module
// failed; the snapshot turns that into a deny whatever Effect says.
type Outcome struct {
	Policy string
	Effect Effect
	// Rules are the ids of the rules that decided the module's effect.
	Rules []string
	Err   error
	// Trace is filled only when explain was requested.
	Trace []RuleTrace
}

// Evaluator is one compiled policy module (a CEL policy file, or the prepared
// Rego query of a bundle). Implementations are immutable after construction
// and safe for concurrent use.
type Evaluator interface {
	// Name identifies the module in reasons and traces.
	Name() string
	// Evaluate decides for in. It must honour ctx's deadline and report any
	// failure in Outcome.Err rather than panic.
	Evaluate(ctx context.Context, in *Input, explain bool) Outcome
	// TimeDependent reports whether the module reads the evaluation time, which
	// makes its decisions unsafe to cache.
	TimeDependent() bool
}

// Sentinel causes recorded on denies that no rule decided. Callers may test a
// Decision's Err with errors.Is.
var (
	// ErrTimeout means an evaluation passed its deadline.
	ErrTimeout = errors.New("evaluation deadline exceeded")
	// ErrCostLimit means a CEL evaluation passed its cost limit.
	ErrCostLimit = errors.New("evaluation cost limit exceeded")
	// ErrNoPolicy means no bundle or an empty bundle is active.
	ErrNoPolicy = errors.New("no policy loaded")
	// ErrUndefined means a Rego entrypoint had no value for the input.
	ErrUndefined = errors.New("policy decision is undefined")
)

// Reason codes put in Decision.Reasons when no rule decided.
const (
	ReasonNoPolicy  = "verdict:no-policy"
	ReasonNoMatch   = "verdict:no-matching-allow"
	ReasonError     = "verdict:error"
	ReasonTimeout   = "verdict:timeout"
	ReasonCostLimit = "verdict:cost-limit"
	ReasonUndefined = "verdict:undefined"
)

// Decision is the answer to one Input. The zero value is a deny.
type Decision struct {
	Allow    bool
	Reasons  []string
	Revision string
	// Err is the cause of a deny that came from a failure (nil otherwise).
	Err error
	// Explain lists every rule evaluated when explain was requested.
	Explain []RuleTrace
	// Violation is set when the input did not match its resource type's
	// schema: the cause of the deny under SchemaEnforce (Reasons is then
	// [schema_violation]), a warning under SchemaWarn. Nil otherwise.
	Violation *SchemaViolation
}

// Limits bound every evaluation.
type Limits struct {
	// Timeout is the deadline of one decision across all modules.
	Timeout time.Duration `yaml:"timeout"`
	// CostLimit is the CEL runtime cost budget of one expression evaluation.
	CostLimit uint64 `yaml:"cost_limit"`
	// MaxExpressionSize is the largest CEL expression accepted, in code points.
	MaxExpressionSize int `yaml:"max_expression_size"`
	// MaxRecursionDepth bounds the nesting of a CEL expression.
	MaxRecursionDepth int `yaml:"max_recursion_depth"`
}

// DefaultLimits returns the limits used when a configuration sets none.
func DefaultLimits() Limits {
	return Limits{
		Timeout:           50 * time.Millisecond,
		CostLimit:         1_000_000,
		MaxExpressionSize: 16 * 1024,
		MaxRecursionDepth: 64,
	}
}

// Validate reports every problem with l, joined.
func (l Limits) Validate() error {
	var errs []error
	if l.Timeout <= 0 {
		errs = append(errs, errors.New("engine timeout must be positive"))
	}
	if l.CostLimit == 0 {
		errs = append(errs, errors.New("engine cost limit must be positive"))
	}
	if l.MaxExpressionSize <= 0 {
		errs = append(errs, errors.New("engine max expression size must be positive"))
	}
	if l.MaxRecursionDepth <= 0 {
		errs = append(errs, errors.New("engine max recursion depth must be positive"))
	}
	return errors.Join(errs...)
}

// ClassifyErr maps an evaluation error to its reason code.
func ClassifyErr(err error) string {
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, ErrCostLimit):
		return ReasonCostLimit
	case errors.Is(err, ErrUndefined):
		return ReasonUndefined
	case errors.Is(err, ErrNoPolicy):
		return ReasonNoPolicy
	default:
		return ReasonError
	}
}

// Describe says what kind of failure err is, in words safe to show any
// caller: it names no policy, rule or value.
func Describe(err error) string {
	switch ClassifyErr(err) {
	case ReasonTimeout:
		return ErrTimeout.Error()
	case ReasonCostLimit:
		return ErrCostLimit.Error()
	case ReasonUndefined:
		return ErrUndefined.Error()
	case ReasonNoPolicy:
		return ErrNoPolicy.Error()
	default:
		return "policy evaluation failed"
	}
}

// ModuleError wraps err with the name of the module it came from.
func ModuleError(module string, err error) error {
	return fmt.Errorf("%s: %w", module, err)
}
