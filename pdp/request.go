package pdp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/engine"
)

// Batch semantics of AuthZEN evaluations.
const (
	ExecuteAll          = "execute_all"
	DenyOnFirstDeny     = "deny_on_first_deny"
	PermitOnFirstPermit = "permit_on_first_permit"
)

// Request is a decoded, validated decision request: one input or a batch.
type Request struct {
	// Inputs holds one input, or the items of a batch in request order.
	Inputs []*engine.Input
	// Batch is true when the body had a non-empty "evaluations" array.
	Batch bool
	// Semantic is the batch's evaluations_semantic (execute_all by default).
	Semantic string
	// Explain asks for a trace of every rule evaluated.
	Explain bool
	// Signed asks for every decision signed ("options": {"signed": true};
	// sign.go).
	Signed bool
	// Errs, when not nil, holds for each item the error that made it no
	// valid input (its Inputs entry is then nil); such an item is a deny
	// carrying the error. Only ParseOptions.ItemErrors makes them.
	Errs []error

	// subjectToken: the body had a subject_token (whose verification is
	// not to be remembered with the body).
	subjectToken bool
}

// Limits bound what Parse accepts.
type Limits struct {
	// MaxDepth is the deepest JSON nesting accepted (too_deep beyond).
	MaxDepth int
	// MaxBatch is the most evaluations one request may hold.
	MaxBatch int
}

// ParseOptions are the differences between /v1/decide and the AuthZEN
// routes, which share one parser. The zero value is /v1/decide's.
type ParseOptions struct {
	// Single reads one evaluation and ignores "evaluations" and "options"
	// (POST /access/v1/evaluation, where they are unknown fields).
	Single bool
	// ItemErrors makes an item that is no valid input after its defaults a
	// deny carrying the error (Request.Errs), instead of an error for the
	// whole request: AuthZEN's evaluation-level errors.
	ItemErrors bool
	// InheritIDs lets an item's subject or resource that lacks type or id,
	// or its action that lacks name, take them from the top-level entity;
	// properties are never merged (AuthZEN certification §3.2.7).
	InheritIDs bool
}

// SubjectVerifier verifies a request's subject_token and returns its
// claims. An error wrapping ErrUnavailable refuses the request for now
// (CodeUnavailable); any other error is an invalid token, and its message
// is shown to the caller.
type SubjectVerifier interface {
	VerifySubject(ctx context.Context, token string) (map[string]any, error)
}

// entities are the fields an evaluation item may override as a whole.
var entities = []string{"subject", "action", "resource", "context"}

// Parse validates a decision request body (/v1/decide, or an AuthZEN
// evaluation with opt): at most l.MaxDepth levels of JSON and l.MaxBatch
// evaluations. Any caller-sent "token" is dropped: token claims come only
// from verified credentials, here a subject_token verified by tokens (nil:
// subject_token is refused). Errors are *Error naming the field.
func Parse(ctx context.Context, body []byte, l Limits, opt ParseOptions, tokens SubjectVerifier) (*Request, error) {
	doc, err := DecodeObject(body, l.MaxDepth)
	if err != nil {
		return nil, err
	}
	delete(doc, "token")
	_, hasToken := doc["subject_token"]
	if err := applySubjectToken(ctx, doc, tokens); err != nil {
		return nil, err
	}
	r := &Request{Semantic: ExecuteAll, subjectToken: hasToken}
	if v, ok := doc["explain"]; ok {
		b, ok := v.(bool)
		if !ok {
			return nil, newError(CodeInvalidInput, "explain: must be a boolean")
		}
		r.Explain = b
	}
	if opt.Single {
		// An evaluation's options are not AuthZEN's: only Verdict's
		// "signed" is read from them, and anything else is ignored.
		if opts, ok := doc["options"].(map[string]any); ok {
			signed, err := signedOption(opts)
			if err != nil {
				return nil, err
			}
			r.Signed = signed
		}
		delete(doc, "options")
		delete(doc, "evaluations")
	}
	if v, ok := doc["options"]; ok && v != nil {
		opts, ok := v.(map[string]any)
		if !ok {
			return nil, newError(CodeInvalidInput, "options: must be an object")
		}
		if r.Signed, err = signedOption(opts); err != nil {
			return nil, err
		}
		if sem, ok := opts["evaluations_semantic"]; ok {
			str, ok := sem.(string)
			if !ok || (str != ExecuteAll && str != DenyOnFirstDeny && str != PermitOnFirstPermit) {
				return nil, newError(CodeInvalidInput, fmt.Sprintf(
					"options.evaluations_semantic: must be %q, %q or %q", ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit))
			}
			r.Semantic = str
		}
	}
	var items []any
	if v, ok := doc["evaluations"]; ok && v != nil {
		items, ok = v.([]any)
		if !ok {
			return nil, newError(CodeInvalidInput, "evaluations: must be an array")
		}
	}
	if len(items) == 0 {
		in, err := engine.ParseInput(doc, "")
		if err != nil {
			return nil, newError(CodeInvalidInput, inputMessage(err, requestMembers...))
		}
		in.SizeBound = len(body)
		r.Inputs = []*engine.Input{in}
		return r, nil
	}
	if len(items) > l.MaxBatch {
		return nil, newError(CodeInvalidInput, fmt.Sprintf("evaluations: at most %d items are allowed, got %d", l.MaxBatch, len(items)))
	}
	r.Batch = true
	r.Inputs = make([]*engine.Input, len(items))
	for i, it := range items {
		prefix := fmt.Sprintf("evaluations[%d]", i)
		item, ok := it.(map[string]any)
		var in *engine.Input
		if !ok {
			err = &engine.InputError{Field: prefix, Message: "must be an object"}
		} else {
			in, err = engine.ParseInput(mergeItem(doc, item, opt.InheritIDs), prefix+".")
		}
		if err != nil {
			if !opt.ItemErrors {
				return nil, newError(CodeInvalidInput, err.Error())
			}
			if r.Errs == nil {
				r.Errs = make([]error, len(items))
			}
			r.Errs[i] = err
			continue
		}
		in.SizeBound = len(body)
		r.Inputs[i] = in
	}
	return r, nil
}

// signedOption reads options.signed: false when absent, an error when not
// a boolean (a caller that asks for a signature in a way not understood
// hears so instead of getting an answer unsigned).
func signedOption(opts map[string]any) (bool, error) {
	v, ok := opts["signed"]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, newError(CodeInvalidInput, "options.signed: must be a boolean")
	}
	return b, nil
}

// applySubjectToken verifies doc's subject_token, if any, with tokens: its
// claims become the input's token, and the subject defaults to
// {type: "user", id: <sub>} (an id the request gives wins).
func applySubjectToken(ctx context.Context, doc map[string]any, tokens SubjectVerifier) error {
	raw, ok := doc["subject_token"]
	if !ok || raw == nil {
		return nil
	}
	delete(doc, "subject_token")
	tok, ok := raw.(string)
	if !ok || tok == "" {
		return newError(CodeInvalidInput, "subject_token: must be a non-empty string (a JWT)")
	}
	if tokens == nil {
		return newError(CodeInvalidInput, "subject_token: not supported here (it needs a server that verifies tokens)")
	}
	claims, err := tokens.VerifySubject(ctx, tok)
	switch {
	case errors.Is(err, ErrUnavailable):
		return newError(CodeUnavailable, "the subject token cannot be checked now; retry")
	case err != nil:
		return newError(CodeInvalidSubjectToken, "subject_token: "+err.Error())
	}
	doc["token"] = claims
	subject, _ := doc["subject"].(map[string]any)
	if _, present := doc["subject"]; present && subject == nil {
		return nil // a wrongly typed subject is reported by ParseInput
	}
	if subject == nil {
		subject = map[string]any{"type": "user"}
		doc["subject"] = subject
	}
	if _, ok := subject["id"]; !ok {
		sub, _ := claims["sub"].(string)
		subject["id"] = sub
	}
	return nil
}

// requestMembers are the top-level members of a decision request that are
// not the input's.
var requestMembers = []string{"explain", "options", "evaluations", "subject_token"}

// inputMessage renders an error of engine.ParseInput over a request's top
// level. Unknown members are ignored, but one that stands beside a missing
// member is named (a misspelt or misnamed "subject"), unless it is one of
// own, the request's own members.
func inputMessage(err error, own ...string) string {
	if ie, ok := errors.AsType[*engine.InputError](err); ok && !strings.Contains(ie.Field, ".") {
		ie.Unknown = slices.DeleteFunc(ie.Unknown, func(k string) bool { return slices.Contains(own, k) })
	}
	return err.Error()
}

// identity are the fields of an entity an item inherits with InheritIDs.
var identity = map[string][]string{"subject": {"type", "id"}, "resource": {"type", "id"}, "action": {"name"}}

// mergeItem is an evaluation item with the top-level entities of doc as
// defaults: an entity the item has replaces the default whole (with
// inheritIDs, save for the identity fields it lacks).
func mergeItem(doc, item map[string]any, inheritIDs bool) map[string]any {
	merged := make(map[string]any, len(entities))
	for _, k := range entities {
		if v, ok := doc[k]; ok {
			merged[k] = v
		}
	}
	for _, k := range entities {
		v, ok := item[k]
		if !ok {
			continue
		}
		top, topOK := doc[k].(map[string]any)
		own, ownOK := v.(map[string]any)
		if inheritIDs && topOK && ownOK {
			var filled map[string]any
			for _, f := range identity[k] {
				if _, has := own[f]; !has {
					if tv, ok := top[f]; ok {
						if filled == nil {
							filled = maps.Clone(own)
						}
						filled[f] = tv
					}
				}
			}
			if filled != nil {
				v = filled
			}
		}
		merged[k] = v
	}
	return merged
}
