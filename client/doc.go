// Package client is a Go client of Verdict's OpenID AuthZEN Authorization
// API 1.0: single evaluations, boxcarred evaluations and the subject,
// resource and action searches, over HTTP.
//
// Quick start, with a client registered on the server (`verdict client add
// --id my-service --scope verdict:decide`):
//
//	c, err := client.New("https://verdict.internal:8700",
//		client.WithClientCredentials("my-service", os.Getenv("VERDICT_CLIENT_SECRET")))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	d, err := c.Evaluation(ctx, client.Evaluation{
//		Subject:  client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}},
//		Action:   client.Action{Name: "update"},
//		Resource: client.Resource{Type: "document", ID: "42"},
//	})
//	if err != nil {
//		return err // never treat an error as an allow
//	}
//	if d.Decision { ... }
//
// Make one Client and share it: it is safe for concurrent use, keeps its
// connections alive between calls (one transport, up to 64 idle
// connections), and keeps its access token.
//
// # Credentials
//
// WithClientCredentials fetches an access token from Verdict's own token
// endpoint (POST /oauth2/token, client_secret_basic) on first use, reuses
// it across calls, and replaces it DefaultRefreshMargin (30s) before it
// expires, or half-way through its lifetime if that is shorter. A token
// the server refuses with 401 is dropped and the call sent once more with
// a new one. WithTokenSource does the same for any oauth2.TokenSource;
// WithBearerToken and WithAPIKey send a fixed credential.
//
// # Retries and deadlines
//
// Every call is bounded by its context, and by WithTimeout (default 10s)
// when the context has no earlier deadline. Decisions and searches change
// nothing on the server, so a call that meets a 503, 502, 504 or 429, or a
// network failure, is sent again (three attempts in all by default) after
// an exponential back-off with jitter that is never shorter than the
// answer's Retry-After; a wait that would end past the deadline is not
// begun. See RetryPolicy.
//
// # Errors
//
// A deny is a Decision, never an error. Verdict's refusals are *Error,
// with the HTTP status, the stable code and the Retry-After (use errors.As,
// or IsUnavailable, IsRateLimited, IsUnauthorized, IsForbidden); a call
// that ran out of time wraps the context's error. No error comes with an
// allowing Decision.
//
// A gRPC client of the same API answers the same types: code written
// against Decider works with either.
//
// # Query plans
//
// A query plan (Plan, POST /v1/plan) says which resources of a type a
// subject may act on: always_allowed, always_denied, or conditional with a
// condition over the resources' attributes (PlanNode; the semantics are
// package engine/plan's: a comparison with an absent or null attribute is
// false, "ne" included, and "not" is plain negation). Three functions
// apply one, none of them calling the server:
//
// PlanSQL writes the plan as a WHERE clause for PostgreSQL or SQLite,
// every value a placeholder argument, given where each attribute is
// (SQLOptions.Columns: a column name or expression, whether it holds a
// list, the type of its values). Its rows are exactly the resources the
// condition allows, NULL standing for an absent attribute; an attribute
// without a column, or an operator the column cannot answer, is an error
// rather than a guess.
//
// PlanPredicate is the plan as a Go predicate over resource objects
// ({"type", "id", "properties"}), for resources already in memory, or
// those a query could not filter.
//
// PlanMatch applies the plan to one resource given as an application's
// struct (or a Resource, or a map), read through its JSON form.
package client
