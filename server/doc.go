// Package server is Verdict's HTTP API on Fiber: the decision route, health
// and status routes, request ids, body and depth limits, the decision cache,
// one mapper from errors to JSON responses, and graceful shutdown.
package server
