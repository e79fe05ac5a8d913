package decisionlog

import (
	"fmt"
	"maps"
	"strings"

	"github.com/verdictpdp/verdict/engine"
)

// subjectToken is removed wherever it appears in a logged input.
const subjectToken = "subject_token"

// parsePath splits a JSON-pointer-like path (RFC 6901 escapes ~0 and ~1)
// into segments and checks that it names something redaction can remove.
func parsePath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q: a path starts with /", p)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%q: empty segment", p)
		}
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	switch segs[0] {
	case "subject", "resource":
		if len(segs) == 2 && segs[1] == "id" {
			return segs, nil
		}
		fallthrough
	case "action":
		if len(segs) < 3 || segs[1] != "properties" {
			return nil, fmt.Errorf("%q: under /%s a path names properties/... or, for subject and resource, id", p, segs[0])
		}
	case "context", "token":
		if len(segs) < 2 {
			return nil, fmt.Errorf("%q: name a key under /%s", p, segs[0])
		}
	default:
		return nil, fmt.Errorf("%q: a path starts with /subject, /resource, /action, /context or /token", p)
	}
	return segs, nil
}

// redactor removes what must not be logged from an input.
type redactor struct {
	paths [][]string
	// claims is the allow-list of token claims.
	claims map[string]bool
}

func newRedactor(cfg Config) (redactor, error) {
	r := redactor{claims: make(map[string]bool, len(cfg.TokenClaims))}
	for _, c := range cfg.TokenClaims {
		r.claims[c] = true
	}
	for _, p := range cfg.Redact {
		segs, err := parsePath(p)
		if err != nil {
			return r, err
		}
		r.paths = append(r.paths, segs)
	}
	return r, nil
}

// Redact returns in redacted as the log redacts what it writes (a copy
// where something is removed; in is never changed): for other places that
// keep inputs, such as shadow examples.
// A nil Logger returns in.
func (l *Logger) Redact(in *engine.Input) *engine.Input {
	if l == nil {
		return in
	}
	return l.redact.input(in)
}

// input returns a redacted copy of in; in itself, whose maps a batch's items
// may share, is never changed (maps are copied where something is removed).
func (r redactor) input(in *engine.Input) *engine.Input {
	out := *in
	if in.Token != nil {
		tok := make(map[string]any, len(r.claims))
		for k, v := range in.Token {
			if r.claims[k] {
				tok[k] = v
			}
		}
		out.Token = tok
	}
	out.Subject.Properties = scrub(in.Subject.Properties)
	out.Resource.Properties = scrub(in.Resource.Properties)
	out.Action.Properties = scrub(in.Action.Properties)
	out.Context = scrub(in.Context)
	for _, p := range r.paths {
		switch p[0] {
		case "subject":
			if p[1] == "id" {
				out.Subject.ID = ""
			} else {
				out.Subject.Properties = remove(out.Subject.Properties, p[2:])
			}
		case "resource":
			if p[1] == "id" {
				out.Resource.ID = ""
			} else {
				out.Resource.Properties = remove(out.Resource.Properties, p[2:])
			}
		case "action":
			out.Action.Properties = remove(out.Action.Properties, p[2:])
		case "context":
			out.Context = remove(out.Context, p[1:])
		case "token":
			out.Token = remove(out.Token, p[1:])
		}
	}
	return &out
}

// remove returns m without the value at path, copying every map on the way
// that changes; m is returned as is when path names nothing.
func remove(m map[string]any, path []string) map[string]any {
	v, ok := m[path[0]]
	if !ok {
		return m
	}
	c := maps.Clone(m)
	if len(path) == 1 {
		delete(c, path[0])
		return c
	}
	child, ok := v.(map[string]any)
	if !ok {
		return m
	}
	c[path[0]] = remove(child, path[1:])
	return c
}

// scrub returns m without any subject_token key at any depth; when there is
// none, m itself (nothing is copied).
func scrub(m map[string]any) map[string]any {
	out, changed := scrubValue(m)
	if !changed {
		return m
	}
	return out.(map[string]any)
}

func scrubValue(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		var c map[string]any
		for k, e := range x {
			if k == subjectToken {
				if c == nil {
					c = maps.Clone(x)
				}
				delete(c, k)
				continue
			}
			if ne, changed := scrubValue(e); changed {
				if c == nil {
					c = maps.Clone(x)
				}
				c[k] = ne
			}
		}
		if c == nil {
			return x, false
		}
		return c, true
	case []any:
		var c []any
		for i, e := range x {
			if ne, changed := scrubValue(e); changed {
				if c == nil {
					c = append([]any(nil), x...)
				}
				c[i] = ne
			}
		}
		if c == nil {
			return x, false
		}
		return c, true
	}
	return v, false
}
