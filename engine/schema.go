package engine

import (
	"fmt"
	"strings"
)

// InputValidator checks a decision input before any policy sees it. The
// bundles package builds one per resource type from the bundle's JSON
// Schemas; the engine knows nothing of schemas beyond this.
type InputValidator interface {
	// ValidateInput returns nil when doc (the input as SchemaDoc shapes it)
	// conforms, else the problems in words fit for the caller, at most a
	// handful. It must be safe for concurrent use.
	ValidateInput(doc map[string]any) []string
}

// SchemaMode says what a schema violation does to a decision.
type SchemaMode string

const (
	// SchemaEnforce denies an input that does not match its schema with
	// reason schema_violation, without evaluating any policy. It is the
	// meaning of the zero value.
	SchemaEnforce SchemaMode = "enforce"
	// SchemaWarn decides as if there were no schema and records the
	// violation on the decision (Decision.Violation) for the caller's log.
	SchemaWarn SchemaMode = "warn"
)

// Validate reports an unknown mode; the empty mode is SchemaEnforce.
func (m SchemaMode) Validate() error {
	switch m {
	case "", SchemaEnforce, SchemaWarn:
		return nil
	}
	return fmt.Errorf("schema mode must be %q or %q, got %q", SchemaEnforce, SchemaWarn, string(m))
}

// ReasonSchemaViolation is the reason of a deny for an input that does not
// match the JSON Schema of its resource type.
const ReasonSchemaViolation = "schema_violation"

// SchemaViolation is an input that did not match the schema of its resource
// type. It describes the caller's input only, never a policy, so it may be
// shown to any caller.
type SchemaViolation struct {
	// ResourceType is the input's resource.type, whose schema was applied.
	ResourceType string
	// Problems are the first few validation errors, each naming the
	// offending location of the input.
	Problems []string
	// Enforced is true when the violation denied the decision, false when
	// it was only recorded (SchemaWarn).
	Enforced bool
}

// Error returns a one-line summary naming the resource type and problems.
func (v *SchemaViolation) Error() string {
	return fmt.Sprintf("input does not match the schema of resource type %q: %s",
		v.ResourceType, strings.Join(v.Problems, "; "))
}

// SchemaDoc returns what a resource type's schema validates: the object
// {subject, action, resource, context} in the shape policies see it
// (properties and context are objects, never null). The token and the
// evaluation time are not part of it: callers do not send them.
func (in *Input) SchemaDoc() map[string]any {
	ctx := in.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	return map[string]any{
		"subject":  EntityDoc(in.Subject),
		"action":   ActionDoc(in.Action),
		"resource": EntityDoc(in.Resource),
		"context":  ctx,
	}
}

// validate applies the schema of in's resource type, if any.
func (s *Snapshot) validate(in *Input) *SchemaViolation {
	v, ok := s.validators[in.Resource.Type]
	if !ok {
		return nil
	}
	problems := v.ValidateInput(in.SchemaDoc())
	if len(problems) == 0 {
		return nil
	}
	return &SchemaViolation{ResourceType: in.Resource.Type, Problems: problems, Enforced: s.schemaMode != SchemaWarn}
}
