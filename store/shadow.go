package store

import (
	"context"
	"time"
)

// ChangeShadow: the shadowed bundle revision changed or ended (ID is the
// revision, "" when shadowing ended).
const ChangeShadow = "shadow"

// ShadowState is the stored revision every replica shadows (decides beside
// the active one on a sample of live decisions, off the request path). The
// zero state is none.
type ShadowState struct {
	Revision  string    `json:"revision"`
	Ratio     float64   `json:"ratio"`
	Examples  int       `json:"examples"`
	StartedAt time.Time `json:"started_at"`
	StartedBy string    `json:"started_by"`
}

// Shadows keeps the shadow state of the bundles. Both stores implement it;
// a shared one announces every change (ChangeShadow) like an activation.
type Shadows interface {
	// SetShadow records s (a zero Revision ends shadowing); a revision
	// that is not stored is ErrNotFound.
	SetShadow(ctx context.Context, ns string, s ShadowState) error
	// Shadow returns the shadow state, the zero state when none.
	Shadow(ctx context.Context, ns string) (ShadowState, error)
}
