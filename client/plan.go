package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdictpdp/verdict/engine/plan"
)

// Plan is a query plan as POST /v1/plan answers it: Kind is
// plan.AlwaysAllowed, plan.AlwaysDenied or plan.Conditional, and a
// conditional plan's Condition is a tree of PlanNodes over the resource's
// attributes. The package github.com/verdictpdp/verdict/engine/plan
// documents its semantics.
type Plan = plan.Plan

// PlanNode is one node of a Plan's condition.
type PlanNode = plan.Node

// validatePlan reports what makes p unusable: an unknown kind, a conditional
// plan without a condition, or a condition that does not Validate.
func validatePlan(p Plan) error {
	switch p.Kind {
	case plan.AlwaysAllowed, plan.AlwaysDenied:
		return nil
	case plan.Conditional:
	default:
		return fmt.Errorf("unknown plan kind %q", p.Kind)
	}
	if p.Condition == nil {
		return errors.New("a conditional plan without a condition")
	}
	if err := p.Condition.Validate(); err != nil {
		return fmt.Errorf("invalid plan condition: %w", err)
	}
	return nil
}

// PlanPredicate is p as a Go predicate over resource objects
// ({"type", "id", "properties": {...}}, as decoded from JSON with
// UseNumber, so that ints and doubles stay apart for the "type" operator):
// true for every resource when p is always_allowed, for none when
// always_denied, and where the condition holds (plan.Node.Eval) when
// conditional. A plan that is not valid (an unknown kind, a conditional
// plan without a condition, a condition that does not Validate) gives a
// predicate that is false for every resource: check plans from elsewhere
// with PlanSQL or PlanMatch first to see the error. The predicate is safe
// for concurrent use.
func PlanPredicate(p Plan) func(resource map[string]any) bool {
	if validatePlan(p) != nil {
		return func(map[string]any) bool { return false }
	}
	switch p.Kind {
	case plan.AlwaysAllowed:
		return func(map[string]any) bool { return true }
	case plan.AlwaysDenied:
		return func(map[string]any) bool { return false }
	}
	c := p.Condition
	return c.Eval
}

// PlanMatch reports whether p allows resource, which is a Resource, a
// map, or a struct of the application's: it is marshalled to JSON and
// decoded back (numbers as json.Number), so it must marshal to the
// resource object, {"type": ..., "id": ..., "properties": {...}}, with
// the attribute names the policies use as its json tags, as in
//
//	type Document struct {
//		Type       string        `json:"type"`
//		ID         string        `json:"id"`
//		Properties DocumentProps `json:"properties"`
//	}
//	type DocumentProps struct {
//		Owner  string   `json:"owner"`
//		Public *bool    `json:"public,omitempty"` // nil: absent
//		Tags   []string `json:"tags,omitempty"`
//	}
//
// A field left out (omitempty, omitzero) or null is an absent attribute.
// A number written without a fraction is an int for the "type" operator,
// as it would be once sent to Verdict: a float64 field holding 2.0 reads
// as int. The resource is read only for a conditional plan. It returns an
// error, and false, when p is not valid (see PlanPredicate) or resource
// does not marshal to a JSON object.
func PlanMatch(p Plan, resource any) (bool, error) {
	if err := validatePlan(p); err != nil {
		return false, fmt.Errorf("client: PlanMatch: %w", err)
	}
	switch p.Kind {
	case plan.AlwaysAllowed:
		return true, nil
	case plan.AlwaysDenied:
		return false, nil
	}
	obj, err := resourceObject(resource)
	if err != nil {
		return false, err
	}
	return p.Condition.Eval(obj), nil
}

// resourceObject is v through JSON, numbers kept as json.Number.
func resourceObject(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: PlanMatch: the resource does not marshal to JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("client: PlanMatch: the resource must marshal to a JSON object ({\"type\", \"id\", \"properties\"}), not %.40s", b)
	}
	return obj, nil
}
