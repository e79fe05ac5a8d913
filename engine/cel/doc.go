// Package cel compiles Verdict policy files (*.verdict.yaml: named rules with
// CEL conditions) into engine.Evaluators.
//
// Every expression is parsed and type-checked once by Compile; a syntax error,
// an unknown variable or a condition that cannot be a bool rejects the file
// with file:line:col. Evaluation runs the prepared programs with a cost limit
// and honours the context deadline. Any evaluation error is reported in the
// outcome and so becomes a deny: a rule that fails never grants access.
package cel
