// Package decisionlog records every decision Verdict makes as one JSON line,
// asynchronously and redacted, and keeps the last inputs it logged for
// impact previews (pdp.DecisionHistory).
//
// Logs are best-effort: Logger.Log never blocks the decision path. A record
// goes into a bounded buffer; when the buffer is full it is dropped and
// counted (Logger.Dropped). Verdict's promise that nothing acknowledged is
// lost applies to state changes (bundles, keys, clients, revocations), not
// to decision logs. Redaction runs on the logging goroutine, never on the
// request: configured JSON-pointer paths are removed, token claims are kept
// only when allow-listed, and any subject_token is dropped.
package decisionlog
