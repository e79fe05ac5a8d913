// Package rego is Verdict's Rego engine: it compiles the Rego modules and the
// data document of one bundle into a single prepared query on the bundle's
// entrypoint (data.verdict.decision unless configured otherwise) and exposes
// it as an engine.Evaluator.
//
// Compile does all the work once. Modules are parsed as Rego v1 (the if and
// contains keywords are required) and compiled together against capabilities
// with no network access: http.send, net.lookup_ip_addr and opa.runtime do not
// exist, and allow_net is empty so JSON-schema built-ins cannot fetch remote
// references either. Every parse or compile problem, and an entrypoint that no
// rule defines, comes back as engine.CompileErrors with file:line:col.
//
// Evaluate runs the prepared query with the decision input
//
//	{"subject", "action", "resource", "context", "token", "now"}
//
// under the earlier of the caller's deadline and Limits.Timeout. The
// entrypoint's value must be a boolean, or an object {"decision": bool,
// "reasons": [string]}. Anything else, an undefined value, a built-in error
// (built-in errors are strict, so a failing built-in cannot silently make a
// "not" succeed), a conflict or a deadline is reported in Outcome.Err, which
// the snapshot turns into a deny: a policy that fails never grants access.
//
// Plan answers query plans (engine.Planner) with OPA's partial evaluation of
// the entrypoint, the resource's id and properties unknown; the residual is
// translated to an engine-neutral condition, exactly or not at all (see
// plan.go).
package rego
