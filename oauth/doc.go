// Package oauth is Verdict's authorization server: OAuth clients and their
// authentication (client_secret_basic/post and private_key_jwt assertions),
// the token issuer, the client_credentials, refresh_token and token-exchange
// grants, refresh-token families with rotation and reuse detection,
// introspection (RFC 7662) and revocation (RFC 7009), and the audit
// records of all of them.
//
// It sits above package authn: tokens are signed with authn's [authn.Keyring]
// and checked with its [authn.Verifier]; the JWS parsing, key pinning and
// time-claim checks of client assertions are authn's too, so there is one
// implementation of each. Durable state is kept behind the small store
// interfaces defined here (ClientStore, RefreshStore, RevocationStore,
// OneTimeIDs);
// the application wiring (internal/app) adapts package store to them.
package oauth
