// Package bench holds Verdict's latency benchmarks and budgets.
//
//	go test -run '^$' -bench . -benchmem ./bench   # the numbers (make bench)
//	go test ./bench                                # the budgets
//
// Benchmarks measure one decision in process (the compiled snapshot alone,
// and through the server's cache) and over HTTP on loopback, for a CEL and a
// Rego bundle with the same logic. TestLatencyBudgets runs them and fails if a
// generous ceiling or an expected ratio is broken; it skips under -race and
// -short, where timings mean nothing.
package bench
