package bundles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
	celengine "github.com/verdictpdp/verdict/engine/cel"
	regoengine "github.com/verdictpdp/verdict/engine/rego"
)

// File kinds inside a bundle.
const (
	KindCEL  = "cel"
	KindRego = "rego"
)

// IsPolicyFile reports whether name is a Verdict CEL policy file.
func IsPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".verdict.yaml") || strings.HasSuffix(name, ".verdict.yml")
}

// IsTestFile reports whether name holds Verdict test cases.
func IsTestFile(name string) bool {
	return !IsPolicyFile(name) && (strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml"))
}

func isDataFile(name string) bool {
	base := path.Base(name)
	return base == "data.json" || base == "data.yaml" || base == "data.yml"
}

// Entrypoint returns the Rego rule whose value is the decision: the manifest's
// metadata.verdict.entrypoint, else data.verdict.decision.
func (b *Bundle) Entrypoint() (string, error) {
	v, ok := b.Manifest.Metadata["verdict"]
	if !ok {
		return "data.verdict.decision", nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", errors.New(".manifest: metadata.verdict must be an object")
	}
	ep, ok := m["entrypoint"]
	if !ok {
		return "data.verdict.decision", nil
	}
	s, ok := ep.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", errors.New(".manifest: metadata.verdict.entrypoint must be a non-empty string")
	}
	return s, nil
}

// Data merges every data.json / data.yaml of the bundle into one document:
// a file in directory a/b lands at data.a.b. Two files that set the same key
// are an error.
func (b *Bundle) Data() (map[string]any, error) {
	root := map[string]any{}
	names := sortedNames(b.Files, isDataFile)
	for _, name := range names {
		v, err := decodeDoc(name, b.Files[name])
		if err != nil {
			return nil, err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, engine.CompileErrors{{File: name, Message: "a data document must be an object"}}
		}
		dir := path.Dir(name)
		target := root
		if dir != "." {
			for _, seg := range strings.Split(dir, "/") {
				next, ok := target[seg]
				if !ok {
					m := map[string]any{}
					target[seg] = m
					target = m
					continue
				}
				m, ok := next.(map[string]any)
				if !ok {
					return nil, engine.CompileErrors{{File: name, Message: fmt.Sprintf("data path %s conflicts with a value set by another data file", dir)}}
				}
				target = m
			}
		}
		if err := merge(target, obj, dir); err != nil {
			return nil, engine.CompileErrors{{File: name, Message: err.Error()}}
		}
	}
	return root, nil
}

func merge(dst, src map[string]any, at string) error {
	for k, v := range src {
		cur, ok := dst[k]
		if !ok {
			dst[k] = v
			continue
		}
		cm, ok1 := cur.(map[string]any)
		vm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("data key %s/%s is set by more than one data file", at, k)
		}
		if err := merge(cm, vm, at+"/"+k); err != nil {
			return err
		}
	}
	return nil
}

// decodeDoc reads a JSON or YAML document into JSON-shaped Go values (int64
// for integers, float64 for other numbers).
func decodeDoc(name string, raw []byte) (any, error) {
	if strings.HasSuffix(name, ".json") {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, engine.CompileErrors{{File: name, Message: "invalid JSON: " + err.Error()}}
		}
		return engine.NormalizeJSON(v), nil
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, engine.CompileErrors{{File: name, Message: "invalid YAML: " + err.Error()}}
	}
	return jsonShape(name, v)
}

// jsonShape converts a YAML value to the JSON-shaped values policies see.
func jsonShape(name string, v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, engine.CompileErrors{{File: name, Message: "not representable as JSON: " + err.Error()}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return engine.NormalizeJSON(out), nil
}

func sortedNames(files map[string][]byte, keep func(string) bool) []string {
	var names []string
	for n := range files {
		if keep(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Compile turns the bundles into one snapshot: every CEL policy file and the
// Rego modules of each bundle (with that bundle's data) become modules that
// combine deny-overrides. It returns engine.CompileErrors listing every
// problem of every file, or another error for an unusable bundle; it never
// returns a partial snapshot.
func Compile(ctx context.Context, bs []*Bundle, limits engine.Limits) (*engine.Snapshot, error) {
	var (
		modules []engine.Evaluator
		errs    engine.CompileErrors
		revs    []string
		counts  = map[string]int{}
		names   = map[string]string{}
	)
	for _, b := range bs {
		revs = append(revs, b.Revision())
		data, err := b.Data()
		if err != nil {
			if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
				errs = append(errs, ce...)
				continue
			}
			return nil, err
		}
		comp, err := celengine.NewCompiler(limits, data)
		if err != nil {
			return nil, err
		}
		for _, name := range sortedNames(b.Files, IsPolicyFile) {
			p, err := comp.Compile(name, b.Files[name])
			if err != nil {
				if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
					errs = append(errs, ce...)
					continue
				}
				return nil, err
			}
			if other, dup := names[p.Name()]; dup {
				errs = append(errs, engine.CompileError{File: name, Line: 1, Message: fmt.Sprintf("policy name %q is already used by %s", p.Name(), other)})
				continue
			}
			names[p.Name()] = name
			modules = append(modules, p)
			counts[KindCEL]++
		}
		var mods []regoengine.Module
		for _, name := range sortedNames(b.Files, func(n string) bool { return strings.HasSuffix(n, ".rego") }) {
			mods = append(mods, regoengine.Module{Path: name, Source: b.Files[name]})
		}
		if len(mods) == 0 {
			continue
		}
		ep, err := b.Entrypoint()
		if err != nil {
			errs = append(errs, engine.CompileError{File: ".manifest", Message: err.Error()})
			continue
		}
		v0 := b.Manifest.RegoVersion != nil && *b.Manifest.RegoVersion == 0
		rp, err := regoengine.Compile(ctx, mods, regoengine.Options{Entrypoint: ep, Data: data, Limits: limits, V0: v0})
		if err != nil {
			if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
				errs = append(errs, ce...)
				continue
			}
			return nil, err
		}
		var ev engine.Evaluator = rp
		if b.metaBool("cacheTimeDependent") {
			ev = cachedAnyway{rp}
		}
		modules = append(modules, ev)
		counts[KindRego] += len(mods)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(modules) == 0 {
		return nil, engine.CompileErrors{{Message: "the bundle holds no policy: add a *.verdict.yaml or .rego file"}}
	}
	return engine.NewSnapshot(modules, engine.SnapshotOptions{
		Revision: strings.Join(revs, ","),
		Limits:   limits,
		Counts:   counts,
	}), nil
}

// cachedAnyway marks a Rego module whose bundle allows caching decisions
// although the policy reads the time (metadata.verdict.cacheTimeDependent).
type cachedAnyway struct{ engine.Evaluator }

func (cachedAnyway) TimeDependent() bool { return false }

func (b *Bundle) metaBool(key string) bool {
	m, _ := b.Manifest.Metadata["verdict"].(map[string]any)
	v, _ := m[key].(bool)
	return v
}
