// Package authn is what the request path needs of tokens: the [Verifier]
// of the bearer JWTs callers present and of the subject tokens in decision
// requests (Verdict's own access tokens and those of trusted external
// issuers, whose keys come from their JWKS), and the signing keys and their
// rotation. [ParseCompact], [Compact.VerifyJWKS] and [Claims.CheckTimes]
// are the one implementation of the JWS syntax, header policy, key pinning
// and time-claim checks; the authorization server (package oauth: clients,
// grants, refresh-token families, exchange, introspection, revocation) uses
// them for client assertions and imports this package, never the reverse.
//
// The signing keys live in a [Keyring]. The durable records are kept behind
// the small [KeyStore] interface (the wiring adapts the store package to it);
// the ring holds an immutable, parsed view of them in memory so that signing,
// verification and the JWKS never touch storage on the request path.
//
// Key lifecycle, for one replica or several sharing a store:
//
//   - On first start [Keyring.Load] generates a key that signs at once (no
//     verifier can hold a cached JWKS yet).
//   - [Keyring.Rotate] publishes a new key at once; it starts signing one
//     JWKS max-age later, so every verifier's cached JWKS already has it.
//   - [Keyring.Tick], run periodically, re-reads the store, retires the keys
//     a newer key has replaced, keeps them published for the longest access
//     token lifetime + clock skew + JWKS max-age, then deletes them, and
//     rotates automatically when configured.
//   - [Keyring.Revoke] is the emergency path: the key leaves the JWKS and
//     verification at once, and a replacement is generated if nothing else
//     can sign.
package authn
