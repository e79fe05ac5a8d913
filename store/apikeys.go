package store

import (
	"context"
	"time"
)

// APIKey is an API key as stored: only an HMAC of its secret (and, for a
// while after a rotation, of the secret before).
type APIKey struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	SecretHMAC []byte `json:"secret_hmac"`
	// PrevHMAC is the HMAC of the secret a rotation replaced; it works
	// until PrevUntil.
	PrevHMAC  []byte    `json:"prev_hmac,omitempty"`
	PrevUntil time.Time `json:"prev_until,omitzero"`
	Scopes    []string  `json:"scopes"`
	// ClientID is the OAuth client the key acts as ("" for the key's own
	// identity).
	ClientID  string    `json:"client_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// ExpiresAt is zero for a key that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// APIKeyUse is how often and when a key was last used, kept apart from
// the key so that counting never rewrites it.
type APIKeyUse struct {
	Count      int64     `json:"count"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// APIKeys stores API keys.
type APIKeys interface {
	// CreateAPIKey adds k; ErrConflict if the id exists.
	CreateAPIKey(ctx context.Context, ns string, k APIKey) error
	// UpdateAPIKey replaces an existing key; ErrNotFound if none.
	UpdateAPIKey(ctx context.Context, ns string, k APIKey) error
	// APIKey returns one key; ErrNotFound if none.
	APIKey(ctx context.Context, ns, id string) (APIKey, error)
	// ListAPIKeys lists every key by id.
	ListAPIKeys(ctx context.Context, ns string) ([]APIKey, error)
	// AddAPIKeyUse adds n uses of key id, the last at last (kept if later
	// than the stored one), atomically.
	AddAPIKeyUse(ctx context.Context, ns, id string, n int64, last time.Time) error
	// APIKeyUse returns a key's use; the zero value if never used.
	APIKeyUse(ctx context.Context, ns, id string) (APIKeyUse, error)
}

// ChangeAPIKey: an API key was added, rotated or revoked (ID is its id).
const ChangeAPIKey = "apikey"
