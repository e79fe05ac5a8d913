package bundles

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/verdictpdp/verdict/engine"
)

// Overlay is data that is not a bundle's but that every bundle's policies
// see under data, such as the users and groups provisioned over SCIM: its
// top-level keys are added to each bundle's data document, except
// CatalogKey ("entities"), whose entity types are appended to the
// bundle's own lists (so that AuthZEN search finds them). A bundle that
// defines another key of the overlay itself does not compile (the message
// names the key). It must be JSON-shaped (objects, arrays, strings,
// float64 numbers, booleans), as a decoded data.json is.
type Overlay map[string]any

// mergeOverlay returns data with the overlay added, without changing
// either.
func mergeOverlay(data map[string]any, ov Overlay, where string) (map[string]any, error) {
	if len(ov) == 0 {
		return data, nil
	}
	out := maps.Clone(data)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range ov {
		if k == CatalogKey {
			merged, err := mergeEntities(out[k], v, where)
			if err != nil {
				return nil, err
			}
			out[k] = merged
			continue
		}
		if _, taken := out[k]; taken {
			return nil, engine.CompileErrors{{File: where, Message: fmt.Sprintf("data.%s is provided by the server (provisioned data); the bundle may not define it", k)}}
		}
		out[k] = v
	}
	return out, nil
}

// mergeEntities appends the overlay's entity lists to the bundle's.
func mergeEntities(own, add any, where string) (any, error) {
	addM, ok := add.(map[string]any)
	if !ok {
		return own, nil
	}
	if own == nil {
		return addM, nil
	}
	ownM, ok := own.(map[string]any)
	if !ok {
		return nil, engine.CompileErrors{{File: where, Message: "data." + CatalogKey + " must be an object of entity types"}}
	}
	out := maps.Clone(ownM)
	for typ, list := range addM {
		l, _ := list.([]any)
		prev, _ := out[typ].([]any)
		out[typ] = append(slices.Clone(prev), l...)
	}
	return out, nil
}

// SetOverlay replaces the overlay the next compilations see and returns
// its version (it counts the calls). Reapply brings the active bundles up
// to it.
func (m *Manager) SetOverlay(ov Overlay) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.overlay = ov
	m.overlayVersion++
	return m.overlayVersion
}

// overlayNow returns the overlay and its version.
func (m *Manager) overlayNow() (Overlay, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.overlay, m.overlayVersion
}

// Reapply compiles the active bundles again with the current overlay and
// activates the result (a new generation, so that no cached decision of
// the old data is served), unless they already have it. Their tests are
// not run again: they passed when the bundles were activated, and
// provisioned data changes are not a policy change. If another
// activation happens meanwhile, Reapply starts over with it (a few times
// at most). On a compile error (the overlay clashes with the bundles'
// data) the active bundles stay as they are.
func (m *Manager) Reapply(ctx context.Context) error {
	for range 5 {
		prev := m.Active()
		ov, ver := m.overlayNow()
		if prev == nil || prev.OverlayVersion == ver {
			return nil
		}
		c, err := CompileWith(ctx, prev.Bundles, CompileOptions{Limits: m.cfg.Engine, SchemaMode: m.cfg.SchemaMode, Overlay: ov})
		if err != nil {
			return m.rejectAt(StageCompile, err)
		}
		catalog, err := buildCatalog(prev.Bundles, c.Snapshot.Modules(), ov)
		if err != nil {
			return m.rejectAt(StageCompile, err)
		}
		next := *prev
		next.Snapshot, next.Catalog, next.OverlayVersion = c.Snapshot, catalog, ver
		if m.activateIf(prev, &next) {
			return nil
		}
	}
	return fmt.Errorf("bundles: the active bundles kept changing while the provisioned data was applied; it is applied with the next activation")
}

// activateIf activates a only if prev is still the active bundle.
func (m *Manager) activateIf(prev, a *Active) bool {
	m.mu.Lock()
	if m.active.Load() != prev {
		m.mu.Unlock()
		return false
	}
	m.mu.Unlock()
	m.Activate(a)
	return true
}
