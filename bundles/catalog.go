package bundles

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/verdictpdp/verdict/engine"
)

// CatalogKey is the top-level data key under which a bundle declares the
// entities that AuthZEN search offers as candidates:
// data.entities.<type> is a list of {id, properties} for subject and
// resource search, and data.entities.actions a list of action names or
// {name, properties} for action search (so "actions" is no entity type).
const CatalogKey = "entities"

// CatalogActions is the key under data.entities that lists actions.
const CatalogActions = "actions"

// CatalogEntry is one search candidate: an entity's id (or an action's
// name) and the properties the bundle stores for it, which policies see
// when the candidate is evaluated.
type CatalogEntry struct {
	ID         string
	Properties map[string]any
}

// Catalog is what the active bundles declare for AuthZEN search. Its zero
// value declares nothing: every search finds no candidate.
type Catalog struct {
	// Entities are the subject and resource candidates by type, sorted by
	// id, without repeats.
	Entities map[string][]CatalogEntry
	// Actions are the action candidates sorted by name: the actions that CEL
	// rules list plus data.entities.actions.
	Actions []CatalogEntry
}

// actionLister is what the catalog needs of a module that names its actions
// (a CEL policy).
type actionLister interface {
	Actions() []string
}

// buildCatalog reads data.entities of every bundle and the actions of every
// module. A malformed data.entities is a CompileError naming the bundle's
// data; an entry declared twice keeps the properties of its first
// declaration.
func buildCatalog(bs []*Bundle, modules []engine.Evaluator, ov Overlay) (Catalog, error) {
	entities := map[string]map[string]CatalogEntry{}
	actions := map[string]CatalogEntry{}
	var errs engine.CompileErrors
	for i, b := range bs {
		data, err := b.Data()
		if err != nil {
			return Catalog{}, err
		}
		if i == 0 {
			// The overlay's entities count once, with the first bundle.
			if data, err = mergeOverlay(data, Overlay{CatalogKey: ov[CatalogKey]}, "data"); err != nil {
				return Catalog{}, err
			}
		}
		raw, ok := data[CatalogKey]
		if !ok || raw == nil {
			continue
		}
		where := "data." + CatalogKey
		if b.Source != "" {
			where = b.Source + ": " + where
		}
		byType, ok := raw.(map[string]any)
		if !ok {
			errs = append(errs, engine.CompileError{Message: where + " must be an object of entity types"})
			continue
		}
		for typ, list := range byType {
			items, ok := list.([]any)
			if !ok {
				errs = append(errs, engine.CompileError{Message: fmt.Sprintf("%s.%s must be a list", where, typ)})
				continue
			}
			into := actions
			if typ != CatalogActions {
				if entities[typ] == nil {
					entities[typ] = map[string]CatalogEntry{}
				}
				into = entities[typ]
			}
			for i, it := range items {
				e, err := catalogEntry(it, typ == CatalogActions)
				if err != nil {
					errs = append(errs, engine.CompileError{Message: fmt.Sprintf("%s.%s[%d]: %v", where, typ, i, err)})
					continue
				}
				if _, dup := into[e.ID]; !dup {
					into[e.ID] = e
				}
			}
		}
	}
	if len(errs) > 0 {
		return Catalog{}, errs
	}
	for _, m := range modules {
		if l, ok := m.(actionLister); ok {
			for _, a := range l.Actions() {
				if _, dup := actions[a]; !dup {
					actions[a] = CatalogEntry{ID: a}
				}
			}
		}
	}
	c := Catalog{Actions: sorted(actions)}
	if len(entities) > 0 {
		c.Entities = make(map[string][]CatalogEntry, len(entities))
		for typ, m := range entities {
			c.Entities[typ] = sorted(m)
		}
	}
	return c, nil
}

// catalogEntry reads {id, properties} (or, for an action, a name or
// {name, properties}).
func catalogEntry(v any, action bool) (CatalogEntry, error) {
	key := "id"
	if action {
		key = "name"
		if s, ok := v.(string); ok && s != "" {
			return CatalogEntry{ID: s}, nil
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return CatalogEntry{}, fmt.Errorf("must be an object with %s and optional properties", key)
	}
	id, ok := m[key].(string)
	if !ok || id == "" {
		return CatalogEntry{}, fmt.Errorf("%s must be a non-empty string", key)
	}
	e := CatalogEntry{ID: id}
	if p, ok := m["properties"]; ok && p != nil {
		if e.Properties, ok = p.(map[string]any); !ok {
			return CatalogEntry{}, fmt.Errorf("properties must be an object")
		}
	}
	return e, nil
}

func sorted(m map[string]CatalogEntry) []CatalogEntry {
	out := make([]CatalogEntry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b CatalogEntry) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
