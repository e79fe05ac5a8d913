package store

import (
	"context"
	"errors"
	"time"
)

// DefaultNamespace is the only namespace today.
const DefaultNamespace = "default"

// Errors callers branch on.
var (
	// ErrNotFound means no record has that id.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the write lost a race or the record already exists.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the store could not be reached (a connection
	// refused or reset, a timeout): nothing was read or written, and the
	// caller may retry. Shared stores wrap their connectivity errors with
	// it so that the server answers 503 with Retry-After, never 500.
	ErrUnavailable = errors.New("store unavailable")
)

// SigningKey is one key Verdict signs tokens with, and its lifecycle. The
// private key is kept as its JWK JSON.
type SigningKey struct {
	// KID is the RFC 7638 thumbprint of the public key.
	KID string `json:"kid"`
	// Alg is ES256, EdDSA or RS256.
	Alg string `json:"alg"`
	// PrivateJWK is the private key as a JWK (JSON).
	PrivateJWK []byte `json:"private_jwk"`
	// CreatedAt is when the key was made and first published.
	CreatedAt time.Time `json:"created_at"`
	// SignFrom is when the key may start signing (published for at least a
	// JWKS max-age before).
	SignFrom time.Time `json:"sign_from"`
	// RetiredAt, when set, is when the key stopped signing.
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// PublishUntil, when set, is when the retired key leaves the JWKS.
	PublishUntil time.Time `json:"publish_until,omitzero"`
	// Revoked keys are gone from the JWKS at once and verify nothing.
	Revoked bool `json:"revoked,omitempty"`
}

// Keys stores signing keys.
type Keys interface {
	// PutKey inserts or replaces the key with k.KID.
	PutKey(ctx context.Context, ns string, k SigningKey) error
	// Keys lists every key, oldest first.
	Keys(ctx context.Context, ns string) ([]SigningKey, error)
	// DeleteKey removes a key; ErrNotFound if there is none.
	DeleteKey(ctx context.Context, ns, kid string) error
}

// Client is an OAuth client. The secret is kept only as an HMAC.
type Client struct {
	ID string `json:"id"`
	// SecretHMAC is HMAC-SHA256(pepper, secret); empty for a client that
	// authenticates with private_key_jwt only.
	SecretHMAC []byte `json:"secret_hmac,omitempty"`
	// JWKS is the client's public keys for private_key_jwt, as JSON.
	JWKS      []byte    `json:"jwks,omitempty"`
	Scopes    []string  `json:"scopes"`
	Grants    []string  `json:"grants"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// The authorization-code flow's settings (see oauth.Client).
	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	FirstParty             bool     `json:"first_party,omitempty"`
	Public                 bool     `json:"public,omitempty"`
	Name                   string   `json:"name,omitempty"`
}

// Clients stores OAuth clients.
type Clients interface {
	// CreateClient adds c; ErrConflict if the id exists.
	CreateClient(ctx context.Context, ns string, c Client) error
	// UpdateClient replaces an existing client; ErrNotFound if none.
	UpdateClient(ctx context.Context, ns string, c Client) error
	// Client returns one client; ErrNotFound if none.
	Client(ctx context.Context, ns, id string) (Client, error)
	// ListClients lists every client by id.
	ListClients(ctx context.Context, ns string) ([]Client, error)
	// DeleteClient removes a client; ErrNotFound if none.
	DeleteClient(ctx context.Context, ns, id string) error
}

// RefreshToken is the current member of a refresh-token family. Only a hash
// of the token is stored.
type RefreshToken struct {
	// Family identifies the chain of rotated refresh tokens.
	Family string `json:"family"`
	// TokenHash is SHA-256 of the refresh token presented now.
	TokenHash []byte `json:"token_hash"`
	// PrevHash is SHA-256 of the token TokenHash replaced; empty before the
	// first rotation. Rotate sets it.
	PrevHash []byte `json:"prev_hash,omitempty"`
	// RotatedAt is when the family was last rotated (zero before the first
	// rotation), as the rotating caller's clock said.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"subject"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
	// AccessJTIs are the ids of access tokens issued from the family, so
	// that revoking the family revokes them too.
	AccessJTIs []string `json:"access_jtis,omitempty"`
	Revoked    bool     `json:"revoked,omitempty"`
	// Claims are extra claims (such as act) every access token of the
	// family carries.
	Claims map[string]any `json:"claims,omitempty"`
}

// Refresh stores refresh-token families.
type Refresh interface {
	// CreateFamily stores the first token of a new family; ErrConflict if
	// the family exists.
	CreateFamily(ctx context.Context, ns string, t RefreshToken) error
	// Rotate replaces the family's token if its current hash is oldHash,
	// atomically: of two concurrent rotations of the same token exactly one
	// succeeds; the other gets ErrConflict. A family that is revoked or whose
	// current hash differs (reuse of a rotated token) gives ErrConflict too.
	// The stored record's PrevHash becomes the replaced hash, whatever
	// next.PrevHash says, so that a late concurrent refresh can be told
	// from a reuse.
	Rotate(ctx context.Context, ns, family string, oldHash []byte, next RefreshToken) error
	// Family returns a family; ErrNotFound if none.
	Family(ctx context.Context, ns, family string) (RefreshToken, error)
	// RevokeFamily marks the family revoked and returns it (with the access
	// token ids issued from it); ErrNotFound if none.
	RevokeFamily(ctx context.Context, ns, family string) (RefreshToken, error)
}

// RevokedToken is one revoked access-token id and when its revocation
// ends (the token fails on its own by then).
type RevokedToken struct {
	JTI string    `json:"jti"`
	Exp time.Time `json:"exp"`
}

// Revocations stores revoked access-token ids until the tokens expire.
type Revocations interface {
	// Revoke records jti as revoked until exp (after which the token fails
	// on its own).
	Revoke(ctx context.Context, ns, jti string, exp time.Time) error
	// Revoked reports whether jti is revoked.
	Revoked(ctx context.Context, ns, jti string) (bool, error)
	// RevokedTokens lists the revocations in force (Revoked would report
	// true for each: its Exp is after the store's clock), ordered by jti,
	// so that a replica can keep a copy and answer from it while the store
	// cannot be reached. Exp may be rounded up to the store's precision (a
	// millisecond in Redis), never down. An unknown namespace has none.
	RevokedTokens(ctx context.Context, ns string) ([]RevokedToken, error)
}

// OneTime records token ids that may be used once (private_key_jwt
// assertions).
type OneTime interface {
	// UseOnce records jti until exp and reports whether this was its first
	// use; a second use reports false.
	UseOnce(ctx context.Context, ns, jti string, exp time.Time) (bool, error)
}

// BundleTests counts the test cases a bundle revision passed and failed
// when it was pushed.
type BundleTests struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// BundleRevision describes one pushed bundle revision. The archive itself is
// kept apart (see Bundles.Archive) so that listing never reads archives.
type BundleRevision struct {
	// Revision is the manifest's revision (or the digest when it has none).
	Revision string `json:"revision"`
	// Digest is the bundle's content digest ("sha256:...").
	Digest string `json:"digest"`
	// Size is the archive's length in bytes, compressed as pushed.
	Size int64 `json:"size"`
	// PushedAt is when the revision was first stored.
	PushedAt time.Time `json:"pushed_at"`
	// PushedBy is the client id that pushed it ("cli" or "dev" otherwise).
	PushedBy string      `json:"pushed_by"`
	Tests    BundleTests `json:"tests"`
}

// Bundles stores pushed bundle revisions and which one is active.
type Bundles interface {
	// PutRevision stores r with its archive and reports whether it was
	// new. The same revision with the same digest is a no-op (false, nil);
	// with another digest it is ErrConflict, whatever the order of
	// concurrent callers.
	PutRevision(ctx context.Context, ns string, r BundleRevision, archive []byte) (bool, error)
	// Revisions lists every revision, newest first.
	Revisions(ctx context.Context, ns string) ([]BundleRevision, error)
	// Revision returns one revision's record; ErrNotFound if none.
	Revision(ctx context.Context, ns, revision string) (BundleRevision, error)
	// Archive returns a revision's archive as pushed; ErrNotFound if none.
	Archive(ctx context.Context, ns, revision string) ([]byte, error)
	// SetActive records revision as the active one, atomically;
	// ErrNotFound if it is not stored.
	SetActive(ctx context.Context, ns, revision string) error
	// ActiveRevision returns the active revision; ErrNotFound if none was
	// ever set.
	ActiveRevision(ctx context.Context, ns string) (string, error)
}

// Store is everything durable.
type Store interface {
	Keys
	Clients
	Refresh
	Revocations
	OneTime
	Bundles
	People
	APIKeys
	Directory
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Kinds of change a shared store announces.
const (
	// ChangeBundle: the active bundle revision changed (ID is the revision).
	ChangeBundle = "bundle"
	// ChangeRevocation: an access token was revoked (ID is its jti).
	ChangeRevocation = "revocation"
	// ChangeRefresh: a refresh family was revoked (ID is the family).
	ChangeRefresh = "refresh"
	// ChangeClient: a client was added, changed or removed (ID is its id).
	ChangeClient = "client"
	// ChangeKey: a signing key was added, changed or removed (ID is its kid).
	ChangeKey = "key"
)

// Change is one write to a shared store, as it announces it: Gen is the
// store-wide generation the write set (strictly increasing, one per write),
// Kind one of the Change* constants, ID what changed.
type Change struct {
	Gen  uint64 `json:"gen"`
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Namespace is the namespace of the write.
	Namespace string `json:"ns"`
}

// Notifier is what a store shared by several replicas adds: every write
// increments a generation in the same transaction and then announces the
// change. Announcements are at-most-once (a hint): consumers compare
// Generation with what they applied and repair any gap.
type Notifier interface {
	// Generation returns the store's current generation (0 before any
	// write); an error when the store cannot be reached.
	Generation(ctx context.Context) (uint64, error)
	// Subscribe calls fn for every change announced, in order, until ctx
	// ends; it calls resync after every (re)subscription, when changes may
	// have been missed, so that the consumer compares generations. It
	// returns ctx's error when ctx ends; it keeps resubscribing (with
	// backoff) through failures of the store.
	Subscribe(ctx context.Context, fn func(Change), resync func()) error
}

// Member is one replica as it reports itself to a shared store (Roster).
type Member struct {
	// ID names the replica for its life (host and a random suffix).
	ID      string    `json:"id"`
	Host    string    `json:"host,omitempty"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Revision is the bundle revision it serves ("" for none).
	Revision string `json:"revision"`
	// Generation is the store generation it has applied.
	Generation uint64 `json:"generation"`
	// LastSync is when it was last known to be in step with the store.
	LastSync time.Time `json:"last_sync,omitzero"`
	// Healthy is whether it synced within its staleness bound.
	Healthy bool `json:"healthy"`
	// Seen is when it made this report.
	Seen time.Time `json:"seen"`
	// Shadow is what its shadow of a revision counted so far, nil while
	// it shadows none.
	Shadow *ShadowCounts `json:"shadow,omitempty"`
}

// ShadowCounts are one replica's counts of the shadowed revision (the
// totals of its shadow report), so that any replica can sum them.
type ShadowCounts struct {
	Revision       string    `json:"revision"`
	Started        time.Time `json:"started"`
	Sampled        uint64    `json:"sampled"`
	Agreed         uint64    `json:"agreed"`
	Disagreed      uint64    `json:"disagreed"`
	ReasonsChanged uint64    `json:"reasons_changed"`
	Dropped        uint64    `json:"dropped"`
}

// Roster is what a store shared by several replicas keeps of them: each
// reports itself every few seconds, and a replica that stops reporting
// drops out when its last report expires. Reports are not announced and
// do not change the generation.
type Roster interface {
	// Report records m, replacing the member's previous report, for ttl.
	Report(ctx context.Context, ns string, m Member, ttl time.Duration) error
	// Leave removes member id at once (a replica that stops cleanly).
	Leave(ctx context.Context, ns, id string) error
	// Members lists the members whose last report has not expired, by ID.
	Members(ctx context.Context, ns string) ([]Member, error)
}
