package pdp

import (
	"context"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// Endpoint is where a decision was asked for: the endpoint label of
// metrics, spans and decision logs.
type Endpoint int

// The endpoints, in the order of their names.
const (
	EndpointDecide Endpoint = iota
	EndpointAuthZEN
	EndpointForwardAuth
	EndpointSearch
	// EndpointExtAuthz is Envoy's ext_authz over gRPC.
	EndpointExtAuthz
	// EndpointPlan is a query plan (POST /v1/plan).
	EndpointPlan
	// NumEndpoints is the number of endpoints, for arrays indexed by them.
	NumEndpoints
)

var endpointNames = [NumEndpoints]string{"decide", "authzen", "forward_auth", "search", "ext_authz", "plan"}

// String is the endpoint's label: decide, authzen, forward_auth, search,
// ext_authz or plan.
func (e Endpoint) String() string {
	if e < 0 || e >= NumEndpoints {
		return "unknown"
	}
	return endpointNames[e]
}

// CacheOutcome is how the decision cache answered one decision.
type CacheOutcome string

// Cache outcomes.
const (
	CacheHit    CacheOutcome = "hit"
	CacheMiss   CacheOutcome = "miss"
	CacheBypass CacheOutcome = "bypass"
)

// Observer watches decisions for metrics and traces. Its methods run on the
// decision path and must return at once; they never change a decision.
type Observer interface {
	// DecisionStarted begins one decision of endpoint e. The context it
	// returns is the one the decision runs in (a tracer starts a span in
	// it) and the one DecisionFinished gets.
	DecisionStarted(ctx context.Context, e Endpoint) context.Context
	// DecisionFinished ends the decision DecisionStarted began, with the
	// decision and how the cache answered.
	DecisionFinished(ctx context.Context, e Endpoint, d engine.Decision, cache CacheOutcome)
	// Evaluated is the engine time of a decision the cache did not answer.
	Evaluated(took time.Duration)
	// Counted is a decision made without DecisionStarted: a search
	// candidate.
	Counted(e Endpoint, d engine.Decision)
	// InvalidItem is a batch item refused before evaluation (a deny with
	// ReasonInvalidInput).
	InvalidItem(e Endpoint)
}

// noObserver watches nothing.
type noObserver struct{}

func (noObserver) DecisionStarted(ctx context.Context, _ Endpoint) context.Context { return ctx }
func (noObserver) DecisionFinished(context.Context, Endpoint, engine.Decision, CacheOutcome) {
}
func (noObserver) Evaluated(time.Duration)           {}
func (noObserver) Counted(Endpoint, engine.Decision) {}
func (noObserver) InvalidItem(Endpoint)              {}

var _ Observer = noObserver{}
