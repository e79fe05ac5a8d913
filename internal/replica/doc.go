// Package replica keeps one Verdict replica in step with a store shared by
// several replicas (Redis): it applies the changes the store announces, in
// order, evicting exactly what changed, and treats the announcements as a
// hint only. On every (re)subscription, whenever an announcement skips a
// generation, and on a short poll, it compares the generation it applied
// with the store's; on any gap it repairs in full (the active bundle, the
// signing keys, the mirror of revoked token ids, every cached token
// verification). Nothing here is on the decision path: when the store
// cannot be reached, the replica keeps serving what it has (fail-static)
// and reports how long ago it last synced, for readiness; until it is
// stale, FailStatic answers revocation checks from the Mirror, so that
// caller tokens it has not seen before still verify and revoked ones are
// still rejected.
package replica
