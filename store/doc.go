// Package store keeps Verdict's durable state behind small interfaces:
// signing keys, OAuth clients, refresh-token families, revoked token ids and
// one-time token ids. Every key is namespaced (one namespace, "default",
// today) so that tenants need no migration later.
//
// Bolt (store/bolt.go) is the embedded default: one bbolt file in the data
// directory. Every write is one bbolt transaction, so a crash loses nothing
// that was acknowledged and leaves nothing half-written. A Redis
// implementation with the same interfaces comes with several replicas.
package store
