// Package apikeys is Verdict's API keys, for callers that cannot run an
// OAuth client: a key's format (a fixed prefix, an id, 256 random bits and
// a checksum, so that a secret scanner recognises a leaked key and a typo
// is refused before any lookup), its storage as an HMAC-SHA256 with the
// server pepper, creation, listing, rotation with an overlap window and
// revocation (through the revocation store every replica mirrors), and
// the hot-path Verifier: a short cache of key records, a constant-time
// comparison, the revocation check, and use counts kept in memory and
// flushed now and then instead of a write per request.
//
// It knows nothing of HTTP; the server turns a valid key into the
// caller's claims, which the routes check like a token's. Durable state
// is kept behind the small Store interface declared here.
package apikeys
