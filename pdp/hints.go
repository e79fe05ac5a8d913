package pdp

import (
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// Cache hints: a decision that depends on nothing but its input and the
// active bundles says how long its caller may keep it (context.ttl, and
// over HTTP Cache-Control: private, max-age). The bound is the bundles'
// metadata.verdict.max_cache_ttl (engine.Snapshot.MaxCacheAge; 0, the
// default, gives no hint). There is none, ttl 0, for
//
//   - a snapshot that is not Cacheable (a policy reads the time),
//   - an input whose context carries a time (Config.NoCacheContextKeys),
//   - a request with a subject_token (the token expires, or is revoked,
//     while the answer would be kept),
//   - an answer with an error (a failed evaluation, a schema violation,
//     an invalid batch item) and an explained one.
//
// A hint never outlives an activation the caller can see: every answer
// names its revision, and a caller drops what it kept of another one.

// cacheTTL is the context.ttl, in seconds, of resp, the answer on in
// (nil: an invalid item) made with active.
func (s *Service) cacheTTL(active *bundles.Active, in *engine.Input, resp *Response, explain, subjectToken bool) int {
	if active == nil || in == nil || explain || subjectToken || resp.Context.Error != "" {
		return 0
	}
	snap := active.Snapshot
	if !snap.Cacheable() || s.timeInContext(in) {
		return 0
	}
	return int(snap.MaxCacheAge().Seconds())
}

// MaxAge is how long, in seconds, a caller may keep the whole answer: the
// least context.ttl of its decisions; 0 (no-store) when any has none.
func (r Result) MaxAge() int {
	if len(r.Evaluations) == 0 {
		return 0
	}
	age := r.Evaluations[0].Context.TTL
	for _, ev := range r.Evaluations[1:] {
		age = min(age, ev.Context.TTL)
	}
	return max(age, 0)
}
