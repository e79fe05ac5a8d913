package client

import (
	"context"
	"time"
)

// Subject is who asks: an AuthZEN subject. Type and ID identify it;
// Properties are any attributes the policies read. An empty field is left
// out of the request, so that an evaluation item without a subject takes
// the request's default, and a search needs only the searched entity's
// Type.
type Subject struct {
	Type       string         `json:"type,omitempty"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Resource is what is acted on: an AuthZEN resource, shaped as Subject.
type Resource struct {
	Type       string         `json:"type,omitempty"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Action is what the subject wants to do with the resource.
type Action struct {
	Name       string         `json:"name,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Context is anything else about a request (time, address, ...), as the
// policies see it in context. Nil sends none.
type Context map[string]any

// Evaluation is one access request (POST /access/v1/evaluation), or one
// item of Evaluations. A zero Subject, Action or Resource is left out of
// the request: Verdict answers a single evaluation without one with a 400
// (*Error, code invalid_input), and an item without one takes the
// request's default.
type Evaluation struct {
	Subject  Subject  `json:"subject,omitzero"`
	Action   Action   `json:"action,omitzero"`
	Resource Resource `json:"resource,omitzero"`
	Context  Context  `json:"context,omitempty"`
	// SubjectToken is the end user's access token (a JWT), which Verdict
	// verifies and gives the policies as token; Subject then defaults to
	// {type: "user", id: <sub>}. It belongs to a request, never to an item
	// of Evaluations (Evaluations refuses one there before sending).
	SubjectToken string `json:"subject_token,omitempty"`
}

// Semantic is how a batch of evaluations is decided
// (options.evaluations_semantic).
type Semantic string

// The semantics of Evaluations. A short-circuit semantic decides items in
// order and stops after the first deny (or permit): the answer then holds
// the decisions up to and including that item.
const (
	// ExecuteAll decides every item (the server's default).
	ExecuteAll Semantic = "execute_all"
	// DenyOnFirstDeny stops after the first deny.
	DenyOnFirstDeny Semantic = "deny_on_first_deny"
	// PermitOnFirstPermit stops after the first permit.
	PermitOnFirstPermit Semantic = "permit_on_first_permit"
)

// EvaluationsOptions are the options of a batch. The zero value is the
// server's default (execute_all).
type EvaluationsOptions struct {
	Semantic Semantic `json:"evaluations_semantic,omitempty"`
}

// Evaluations is a batch (POST /access/v1/evaluations): the top-level
// Subject, Action, Resource and Context are defaults, and each item that
// has one of them replaces that default whole, except that an item's
// subject or resource without Type or ID (action without Name) takes them
// from the default. Without items the defaults are one evaluation.
type Evaluations struct {
	Subject      Subject            `json:"subject,omitzero"`
	Action       Action             `json:"action,omitzero"`
	Resource     Resource           `json:"resource,omitzero"`
	Context      Context            `json:"context,omitempty"`
	SubjectToken string             `json:"subject_token,omitempty"`
	Evaluations  []Evaluation       `json:"evaluations,omitempty"`
	Options      EvaluationsOptions `json:"options,omitzero"`
}

// Decision is Verdict's answer to one evaluation. A failed decision (an
// engine error, a timeout, an item that was no valid input) is a deny with
// Error set, never an error of the call.
type Decision struct {
	// Decision is true for an allow.
	Decision bool
	// ID identifies the decision in Verdict's logs (the
	// X-Verdict-Decision-Id header); "" when the server sent none.
	ID string
	// Reasons are the ids of the rules that decided, or one verdict:* code
	// on a deny. Verdict sends them when the client asks (WithReasons), or
	// when the decision carries an error; otherwise nil.
	Reasons []string
	// Revision is the active bundle's revision, when Reasons are sent.
	Revision string
	// Error says why a deny was not a policy's answer (context.error):
	// an engine error, a timeout, an invalid batch item. "" otherwise.
	Error string
	// TTL is how long the caller may keep the decision (context.ttl, the
	// bundles' max_cache_ttl at most): 0 when the answer gave no hint, and
	// then it is not to be kept. A kept decision is only good while the
	// server's revision is Revision: drop it when any answer names another.
	TTL time.Duration
	// Signature is the decision signed (context.signature): a compact JWS
	// (typ verdict-decision+jwt) that verifies against the server's
	// /.well-known/jwks.json, whose claims name the decision, its
	// decision_id and the hash of its input. "" unless asked for
	// (WithSignedDecisions) or the server signs every decision
	// (server.sign_decisions).
	Signature string
	// Context is the decision's context object as sent, nil when the
	// answer had none.
	Context map[string]any
}

// Page asks for one page of search results. The zero value asks for every
// result at once.
type Page struct {
	// Token is the previous answer's PageInfo.NextToken; "" for the first
	// page. A follow-up must repeat the same query.
	Token string `json:"token,omitempty"`
	// Limit is the page size; 0 is the server's (all results, or the first
	// page's limit on a follow-up).
	Limit int `json:"limit,omitempty"`
}

// PageInfo describes a page of search results.
type PageInfo struct {
	// NextToken asks for the next page (Page.Token); "" on the last page.
	NextToken string `json:"next_token"`
	// Count is the number of results on this page.
	Count int `json:"count"`
	// Total is the number of results of the whole search.
	Total int `json:"total"`
}

// SearchQuery is an AuthZEN search: the entity searched for needs only its
// Type (a subject search's Subject.Type, a resource search's
// Resource.Type; an action search ignores Action), the others are as in an
// Evaluation. Verdict evaluates every candidate its bundles declare and
// answers those allowed.
type SearchQuery struct {
	Subject  Subject  `json:"subject,omitzero"`
	Action   Action   `json:"action,omitzero"`
	Resource Resource `json:"resource,omitzero"`
	Context  Context  `json:"context,omitempty"`
	Page     Page     `json:"page,omitzero"`
}

// Entity is what a search finds: a Subject, a Resource or an Action.
type Entity interface {
	Subject | Resource | Action
}

// SearchResult is one page of a search: the identities (Type and ID, or an
// action's Name) of the entities allowed, in id (name) order.
type SearchResult[T Entity] struct {
	Page    PageInfo `json:"page"`
	Results []T      `json:"results"`
}

// Decider decides access requests. *Client does over HTTP; a gRPC client
// answers the same types.
type Decider interface {
	// Evaluation decides one request.
	Evaluation(ctx context.Context, e Evaluation) (Decision, error)
	// Evaluations decides a batch: one Decision per item decided, in
	// order.
	Evaluations(ctx context.Context, e Evaluations) ([]Decision, error)
}

// Searcher answers AuthZEN searches.
type Searcher interface {
	SearchSubject(ctx context.Context, q SearchQuery) (SearchResult[Subject], error)
	SearchResource(ctx context.Context, q SearchQuery) (SearchResult[Resource], error)
	SearchAction(ctx context.Context, q SearchQuery) (SearchResult[Action], error)
}

var (
	_ Decider  = (*Client)(nil)
	_ Searcher = (*Client)(nil)
)
