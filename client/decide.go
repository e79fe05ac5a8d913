package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The routes of the AuthZEN Authorization API 1.0, under the base URL.
const (
	pathEvaluation     = "/access/v1/evaluation"
	pathEvaluations    = "/access/v1/evaluations"
	pathSearchSubject  = "/access/v1/search/subject"
	pathSearchResource = "/access/v1/search/resource"
	pathSearchAction   = "/access/v1/search/action"
)

// decisionIDHeader carries the ids of an answer's decisions, comma
// separated in item order.
const decisionIDHeader = "X-Verdict-Decision-Id"

// Evaluation asks whether e's subject may do its action on its resource
// (POST /access/v1/evaluation). A deny is a Decision, not an error. The
// error is an *Error when Verdict refused the request (400 for an invalid
// one, 401/403 for the credentials, 429, 503 once retries are spent), the
// context's error when the call ran out of time, or another error when
// the network failed or the answer was not a decision: never a Decision
// that allows.
func (c *Client) Evaluation(ctx context.Context, e Evaluation) (Decision, error) {
	var req any = e
	if c.signed {
		req = struct {
			Evaluation
			Options wireOptions `json:"options"`
		}{e, wireOptions{Signed: true}}
	}
	h, body, err := c.post(ctx, pathEvaluation, req)
	if err != nil {
		return Decision{}, err
	}
	var w wireDecision
	if err := json.Unmarshal(body, &w); err != nil {
		return Decision{}, malformed(pathEvaluation, err)
	}
	d, err := w.decision()
	if err != nil {
		return Decision{}, malformed(pathEvaluation, err)
	}
	if ids := decisionIDs(h); len(ids) > 0 {
		d.ID = ids[0]
	}
	return d, nil
}

// Allowed is Evaluation of subject, action and resource without context:
// true only for an allow, false with the error on any failure.
func (c *Client) Allowed(ctx context.Context, subject Subject, action Action, resource Resource) (bool, error) {
	d, err := c.Evaluation(ctx, Evaluation{Subject: subject, Action: action, Resource: resource})
	if err != nil {
		return false, err
	}
	return d.Decision, nil
}

// Evaluations decides a batch (POST /access/v1/evaluations): one Decision
// per item, in order, or one for the defaults when e has no items. Under a
// short-circuit semantic the answer ends with the item that decided (its
// Context holds "code": "200" and "reason": the semantic), so it may hold
// fewer decisions than items; under execute_all it holds one per item. An
// item that is no valid input after its defaults is a deny with Error set,
// not an error of the call. Errors are as Evaluation's; an item with a
// SubjectToken is refused before anything is sent.
func (c *Client) Evaluations(ctx context.Context, e Evaluations) ([]Decision, error) {
	for i, it := range e.Evaluations {
		if it.SubjectToken != "" {
			return nil, fmt.Errorf("verdict: evaluations[%d]: subject_token belongs to the request's top level", i)
		}
	}
	var req any = e
	if c.signed {
		// The outer Options hides e.Options, whose semantic it carries.
		req = struct {
			Evaluations
			Options wireOptions `json:"options"`
		}{e, wireOptions{Semantic: e.Options.Semantic, Signed: true}}
	}
	h, body, err := c.post(ctx, pathEvaluations, req)
	if err != nil {
		return nil, err
	}
	var w struct {
		Evaluations *[]wireDecision `json:"evaluations"`
		wireDecision
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, malformed(pathEvaluations, err)
	}
	items := []wireDecision{w.wireDecision}
	if w.Evaluations != nil {
		items = *w.Evaluations
	}
	want := max(1, len(e.Evaluations))
	short := e.Options.Semantic == DenyOnFirstDeny || e.Options.Semantic == PermitOnFirstPermit
	if len(items) == 0 || len(items) > want || (!short && len(items) != want) {
		return nil, malformed(pathEvaluations, fmt.Errorf("%d decisions for %d evaluations", len(items), want))
	}
	ids := decisionIDs(h)
	out := make([]Decision, len(items))
	for i, it := range items {
		d, err := it.decision()
		if err != nil {
			return nil, malformed(pathEvaluations, fmt.Errorf("evaluations[%d]: %w", i, err))
		}
		if i < len(ids) {
			d.ID = ids[i]
		}
		out[i] = d
	}
	return out, nil
}

// SearchSubject finds the subjects of q.Subject.Type that may do q.Action
// on q.Resource (POST /access/v1/search/subject), one page at a time:
// while the result's Page.NextToken is not "", set q.Page.Token to it and
// search again. Errors are as Evaluation's (a page token of another query
// or bundle is a 400, code invalid_page_token).
func (c *Client) SearchSubject(ctx context.Context, q SearchQuery) (SearchResult[Subject], error) {
	return search[Subject](ctx, c, pathSearchSubject, q)
}

// SearchResource finds the resources of q.Resource.Type on which
// q.Subject may do q.Action (POST /access/v1/search/resource), paged as
// SearchSubject.
func (c *Client) SearchResource(ctx context.Context, q SearchQuery) (SearchResult[Resource], error) {
	return search[Resource](ctx, c, pathSearchResource, q)
}

// SearchAction finds the actions q.Subject may do on q.Resource (POST
// /access/v1/search/action; q.Action is ignored), paged as SearchSubject.
func (c *Client) SearchAction(ctx context.Context, q SearchQuery) (SearchResult[Action], error) {
	return search[Action](ctx, c, pathSearchAction, q)
}

func search[T Entity](ctx context.Context, c *Client, path string, q SearchQuery) (SearchResult[T], error) {
	_, body, err := c.post(ctx, path, q)
	if err != nil {
		return SearchResult[T]{}, err
	}
	var w struct {
		Page    *PageInfo `json:"page"`
		Results *[]T      `json:"results"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return SearchResult[T]{}, malformed(path, err)
	}
	if w.Page == nil || w.Results == nil {
		return SearchResult[T]{}, malformed(path, errors.New("page or results missing"))
	}
	return SearchResult[T]{Page: *w.Page, Results: *w.Results}, nil
}

// wireOptions are a request's options as sent when WithSignedDecisions
// adds Verdict's "signed" to them.
type wireOptions struct {
	Semantic Semantic `json:"evaluations_semantic,omitempty"`
	Signed   bool     `json:"signed,omitempty"`
}

// wireDecision is a decision as the AuthZEN routes answer it.
type wireDecision struct {
	Decision *bool           `json:"decision"`
	Context  json.RawMessage `json:"context"`
}

// decision reads w; an answer without a boolean decision is an error,
// never a deny or an allow.
func (w wireDecision) decision() (Decision, error) {
	if w.Decision == nil {
		return Decision{}, errors.New("no decision")
	}
	d := Decision{Decision: *w.Decision}
	if len(w.Context) == 0 || string(w.Context) == "null" {
		return d, nil
	}
	var known struct {
		Reasons   []string `json:"reasons"`
		Revision  string   `json:"revision"`
		Error     string   `json:"error"`
		TTL       int64    `json:"ttl"`
		Signature string   `json:"signature"`
	}
	if err := json.Unmarshal(w.Context, &known); err != nil {
		return Decision{}, fmt.Errorf("context: %w", err)
	}
	if err := json.Unmarshal(w.Context, &d.Context); err != nil {
		return Decision{}, fmt.Errorf("context: %w", err)
	}
	d.Reasons, d.Revision, d.Error = known.Reasons, known.Revision, known.Error
	d.TTL, d.Signature = time.Duration(max(known.TTL, 0))*time.Second, known.Signature
	return d, nil
}

// decisionIDs are the ids of X-Verdict-Decision-Id, in item order.
func decisionIDs(h http.Header) []string {
	v := h.Get(decisionIDHeader)
	if v == "" {
		return nil
	}
	ids := strings.Split(v, ",")
	for i := range ids {
		ids[i] = strings.TrimSpace(ids[i])
	}
	return ids
}

func malformed(path string, err error) error {
	return fmt.Errorf("verdict: POST %s: the answer is not what the AuthZEN API sends: %w", path, err)
}
