package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// InputError is a problem with the shape of a decision input: a missing or
// wrongly typed field. Field is the dotted path of the field.
type InputError struct {
	Field   string
	Message string
	// Unknown lists, when Field is missing, the members of the same object
	// that no input has (sorted), most likely the missing one misspelt or
	// misnamed: an input ignores unknown members, so only a missing one
	// brings them up. A caller whose object holds members of its own
	// (explain, options) removes them before rendering the error.
	Unknown []string
	// known are the members the object may have, for "did you mean".
	known []string
	// fit are the unknown members whose value has the shape the missing
	// one needs: the only unknown member, if it fits, is most likely the
	// missing one under another name.
	fit []string
}

// maxUnknown bounds how many unknown members an error names, and
// maxNameLen how much of each: both come from the caller.
const (
	maxUnknown = 5
	maxNameLen = 64
)

// Error returns "field: message", followed for a missing field by the
// unknown members beside it, each with the member it most likely stands for:
// a close spelling, or the missing field when it is the only unknown one and
// of the right shape ("subject: is required; unknown member \"user\" (did
// you mean \"subject\"?)").
func (e *InputError) Error() string {
	if len(e.Unknown) == 0 {
		return e.Field + ": " + e.Message
	}
	parent, missing := "", e.Field
	if i := strings.LastIndexByte(e.Field, '.'); i >= 0 {
		parent, missing = e.Field[:i+1], e.Field[i+1:]
	}
	var b strings.Builder
	b.WriteString(e.Field + ": " + e.Message + "; unknown member")
	if len(e.Unknown) > 1 {
		b.WriteString("s")
	}
	for i, u := range e.Unknown {
		if i == maxUnknown {
			fmt.Fprintf(&b, " and %d more", len(e.Unknown)-i)
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		name := u
		if utf8.RuneCountInString(name) > maxNameLen {
			name = string([]rune(name)[:maxNameLen]) + "…"
		}
		fmt.Fprintf(&b, " %q", parent+name)
		s, ok := Closest(u, e.known)
		if !ok && len(e.Unknown) == 1 && slices.Contains(e.fit, u) {
			s, ok = missing, true
		}
		if ok {
			fmt.Fprintf(&b, " (did you mean %q?)", parent+s)
		}
	}
	return b.String()
}

// Members an input and its parts may have.
var (
	inputMembers  = []string{"subject", "action", "resource", "context", "token"}
	entityMembers = []string{"type", "id", "properties"}
	actionMembers = []string{"name", "properties"}
)

// missing is the error for the required member name of doc, which lacks
// it; known are the members doc may have, and shape tells a value that
// could stand for the missing one.
func missing(doc map[string]any, name, prefix string, known []string, shape func(any) bool) *InputError {
	e := &InputError{Field: prefix + name, Message: "is required", known: known}
	for k := range doc {
		if !slices.Contains(known, k) {
			e.Unknown = append(e.Unknown, k)
		}
	}
	slices.Sort(e.Unknown)
	for _, u := range e.Unknown {
		if shape(doc[u]) {
			e.fit = append(e.fit, u)
		}
	}
	return e
}

func isObject(v any) bool { _, ok := v.(map[string]any); return ok }

func isString(v any) bool { _, ok := v.(string); return ok }

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
	a, err := object(doc, "action", prefix, inputMembers)
	if err != nil {
		return nil, err
	}
	if in.Action.Name, err = str(a, "name", prefix+"action.", actionMembers); err != nil {
		return nil, err
	}
	if in.Action.Properties, err = object(a, "properties", prefix+"action.", nil); err != nil {
		return nil, err
	}
	if in.Context, err = object(doc, "context", prefix, nil); err != nil {
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
	m, err := object(doc, name, prefix, inputMembers)
	if err != nil {
		return e, err
	}
	p := prefix + name + "."
	if e.Type, err = str(m, "type", p, entityMembers); err != nil {
		return e, err
	}
	if e.ID, err = str(m, "id", p, entityMembers); err != nil {
		return e, err
	}
	e.Properties, err = object(m, "properties", p, nil)
	return e, err
}

// object reads the object member name of doc: required when known, the
// members doc may have, is not nil.
func object(doc map[string]any, name, prefix string, known []string) (map[string]any, error) {
	v, ok := doc[name]
	if !ok || v == nil {
		if known != nil {
			return nil, missing(doc, name, prefix, known, isObject)
		}
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &InputError{Field: prefix + name, Message: fmt.Sprintf("must be an object, got %s", typeName(v))}
	}
	return m, nil
}

// str reads the required string member name of doc; known are the members
// doc may have.
func str(doc map[string]any, name, prefix string, known []string) (string, error) {
	v, ok := doc[name]
	if !ok || v == nil {
		return "", missing(doc, name, prefix, known, isString)
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
		return "an unsupported value"
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
