// Package authn is Verdict's token service and token verification: the
// signing keys and their rotation, JWT verification against Verdict's own
// keys and trusted external issuers, OAuth clients, grants, refresh-token
// families, introspection and revocation.
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
