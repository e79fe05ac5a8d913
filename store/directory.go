package store

import (
	"context"
	"encoding/json"
	"time"
)

// DirectoryEntry is one provisioned resource (a SCIM User or Group): its
// attributes as the provisioning client sent them, with the unique key of
// its type (a user's userName, a group's displayName, lower-cased) and a
// version that changes with every write (the ETag).
type DirectoryEntry struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	ExternalID string          `json:"external_id,omitempty"`
	Key        string          `json:"key"`
	Attributes json.RawMessage `json:"attributes"`
	Version    int64           `json:"version"`
	Created    time.Time       `json:"created"`
	Modified   time.Time       `json:"modified"`
}

// Directory stores provisioned users and groups. Every write is
// announced (kind directory) so that replicas and decision caches move to
// the new facts together.
type Directory interface {
	// CreateEntry adds e with version 1; ErrConflict if its id, or its key
	// among entries of its type, is taken.
	CreateEntry(ctx context.Context, ns string, e DirectoryEntry) (DirectoryEntry, error)
	// ReplaceEntry replaces an existing entry and bumps its version;
	// ErrNotFound if none, ErrConflict if ifVersion is not 0 and differs
	// from the stored version, or the new key is another entry's.
	ReplaceEntry(ctx context.Context, ns string, e DirectoryEntry, ifVersion int64) (DirectoryEntry, error)
	// Entry returns one entry; ErrNotFound if none.
	Entry(ctx context.Context, ns, typ, id string) (DirectoryEntry, error)
	// Entries lists the entries of a type by id.
	Entries(ctx context.Context, ns, typ string) ([]DirectoryEntry, error)
	// DeleteEntry removes an entry; ErrNotFound if none, ErrConflict if
	// ifVersion is not 0 and differs.
	DeleteEntry(ctx context.Context, ns, typ, id string, ifVersion int64) error
}

// ChangeDirectory: a provisioned user or group changed (ID is
// "<type>/<id>").
const ChangeDirectory = "directory"
