package engine

import (
	"fmt"
	"time"
)

// InputError is a problem with the shape of a decision input: a missing or
// wrongly typed field. Field is the dotted path of the field.
type InputError struct {
	Field   string
	Message string
}

// Error returns "field: message".
func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// ParseInput builds an Input from its JSON-shaped form (the AuthZEN request
// object: subject, action, resource, context, and optionally token). subject
// needs string type and id, action a string name, resource string type and
// id; properties and context must be objects when present. prefix is put in
// front of field names in errors (e.g. "evaluations[2]."). On error it
// returns an *InputError and no input.
func ParseInput(doc map[string]any, prefix string) (*Input, error) {
	in := &Input{}
	var err error
	if in.Subject, err = parseEntity(doc, "subject", prefix); err != nil {
		return nil, err
	}
	if in.Resource, err = parseEntity(doc, "resource", prefix); err != nil {
		return nil, err
	}
	a, err := object(doc, "action", prefix, true)
	if err != nil {
		return nil, err
	}
	if in.Action.Name, err = str(a, "name", prefix+"action."); err != nil {
		return nil, err
	}
	if in.Action.Properties, err = object(a, "properties", prefix+"action.", false); err != nil {
		return nil, err
	}
	if in.Context, err = object(doc, "context", prefix, false); err != nil {
		return nil, err
	}
	if tok, ok := doc["token"]; ok && tok != nil {
		m, ok := tok.(map[string]any)
		if !ok {
			return nil, &InputError{Field: prefix + "token", Message: "must be an object or null"}
		}
		in.Token = m
	}
	return in, nil
}

func parseEntity(doc map[string]any, name, prefix string) (Entity, error) {
	var e Entity
	m, err := object(doc, name, prefix, true)
	if err != nil {
		return e, err
	}
	p := prefix + name + "."
	if e.Type, err = str(m, "type", p); err != nil {
		return e, err
	}
	if e.ID, err = str(m, "id", p); err != nil {
		return e, err
	}
	e.Properties, err = object(m, "properties", p, false)
	return e, err
}

func object(doc map[string]any, name, prefix string, required bool) (map[string]any, error) {
	v, ok := doc[name]
	if !ok || v == nil {
		if required {
			return nil, &InputError{Field: prefix + name, Message: "is required"}
		}
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &InputError{Field: prefix + name, Message: fmt.Sprintf("must be an object, got %s", typeName(v))}
	}
	return m, nil
}

func str(doc map[string]any, name, prefix string) (string, error) {
	v, ok := doc[name]
	if !ok || v == nil {
		return "", &InputError{Field: prefix + name, Message: "is required"}
	}
	s, ok := v.(string)
	if !ok {
		return "", &InputError{Field: prefix + name, Message: fmt.Sprintf("must be a string, got %s", typeName(v))}
	}
	if s == "" {
		return "", &InputError{Field: prefix + name, Message: "must not be empty"}
	}
	return s, nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64, int:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// Doc returns the JSON-shaped form of in that Rego and the decision log see:
// subject, action, resource, context (never null), token (null when absent)
// and now (RFC 3339 with nanoseconds, UTC).
func (in *Input) Doc() map[string]any {
	ctx := in.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	var tok any
	if in.Token != nil {
		tok = in.Token
	}
	return map[string]any{
		"subject":  EntityDoc(in.Subject),
		"action":   ActionDoc(in.Action),
		"resource": EntityDoc(in.Resource),
		"context":  ctx,
		"token":    tok,
		"now":      in.Now.UTC().Format(time.RFC3339Nano),
	}
}
