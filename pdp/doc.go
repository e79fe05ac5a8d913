// Package pdp is Verdict's decision service: everything a decision needs
// between a transport and the engine, with no transport in it (no Fiber,
// fasthttp or net/http).
//
// A transport (the HTTP server, the CLI, a Go program that embeds Verdict)
// binds its wire format to a Request with Parse (the /v1/decide and AuthZEN
// JSON, read as I-JSON), calls Service.Decide once, and renders the Result
// it gets back. On the way the service verifies a subject token (through
// SubjectVerifier), looks the input up in the decision cache (keyed by
// bundle generation and canonical input), evaluates the active bundle's
// snapshot within the request's deadline, applies the batch semantics,
// hands a record to the decision log and tells an Observer (metrics,
// traces). A decision that may be kept gets a cache hint (hints.go), and
// one asked for signed a JWS by a Signer (sign.go) over the canonical hash
// of its input (inputhash.go). Errors a caller may see are *Error values
// with a stable Code; everything else is a deny.
//
// For a Go program, Open loads bundles and returns a Service ready to
// decide in process (see docs/embedding.md).
package pdp
