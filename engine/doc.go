// Package engine defines what every policy engine in Verdict agrees on: the
// decision Input (the AuthZEN information model plus token, data and now),
// the Decision, the Evaluator contract that compiled policy modules satisfy,
// and the immutable Snapshot that combines the modules of one bundle with
// deny-overrides.
//
// Nothing here parses policy sources: engine/cel and engine/rego compile them
// into prepared, goroutine-safe Evaluators once, when a bundle is loaded. Every
// failure on the evaluation path (an engine error, a deadline, a cost limit, an
// undefined result, no policy at all) becomes a deny with its cause recorded in
// the decision's reasons; nothing here ever allows by default.
package engine
