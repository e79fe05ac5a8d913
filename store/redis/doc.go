// Package redisstore is the Store that several Verdict replicas share: every
// record in Redis (standalone, Sentinel or Cluster, through go-redis's
// UniversalClient), every cache-relevant write announced on a pub/sub
// channel with a store-wide generation (store.Notifier).
//
// Layout. With the key prefix P (default "verdict:") every key carries the
// hash tag {P}, so that all keys live in one Cluster hash slot and a write
// can be atomic with the generation it increments:
//
//	{P}gen                     the generation (INCR on every announced write)
//	{P}<ns>/keys               hash kid -> SigningKey JSON
//	{P}<ns>/clients            hash id -> Client JSON
//	{P}<ns>/refresh/<family>   RefreshToken JSON, expires at ExpiresAt
//	{P}<ns>/revoked/<jti>      expiry JSON, expires at the token's exp
//	{P}<ns>/revoked-index      sorted set jti -> exp (unix ms), for listing;
//	                           Revoke adds and prunes it in its transaction
//	{P}<ns>/once/<jti>         expiry JSON, expires at the assertion's exp
//	{P}<ns>/bundles            hash revision -> BundleRevision JSON
//	{P}<ns>/archives           hash revision -> archive bytes
//	{P}<ns>/active             the active revision
//
// and changes are published on the channel "P changes" without the space
// ("verdict:changes"). Namespaces cannot contain "/", so no two namespaces'
// keys can collide.
//
// Which writes are announced. A write that a replica may hold in a cache
// increments {P}gen and publishes a store.Change in the same MULTI/EXEC
// transaction: signing keys (kind key), clients (client), a revoked access
// token (revocation), a revoked refresh family (refresh) and the active
// bundle revision (bundle). Writes no replica caches, because every use
// reads them from the store anyway, are not announced: refresh-family
// creation and rotation, one-time assertion ids and stored (not activated)
// bundle revisions. Announcing them would bump the generation on every
// token refresh and every private_key_jwt login and so throw away the
// decision caches of every replica for nothing.
//
// Atomicity. Every write that reads before it writes (create-if-absent,
// Rotate's compare-and-swap, UseOnce, Revoke keeping the later expiry,
// PutRevision's digest check) runs as WATCH, read, MULTI, write, EXEC and is
// retried when a concurrent writer touched the watched key, so the rules are
// exactly those of the embedded store (they live in package store). Reads
// never write.
package redisstore
