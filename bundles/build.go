package bundles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
	celengine "github.com/verdictpdp/verdict/engine/cel"
	regoengine "github.com/verdictpdp/verdict/engine/rego"
	"github.com/verdictpdp/verdict/internal/strictjson"
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
		v, err := strictjson.Decode(raw, 0)
		if err != nil {
			return nil, engine.CompileErrors{jsonError(name, raw, err)}
		}
		return v, nil
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, celengine.YAMLErrors(name, raw, err)
	}
	return jsonShape(name, v)
}

// jsonError locates an error of decoding the JSON file raw (named name) at
// file:line:col when it is a syntax error.
func jsonError(name string, raw []byte, err error) engine.CompileError {
	ce := engine.CompileError{File: name, Message: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	offset := int64(-1)
	if se, ok := errors.AsType[*json.SyntaxError](err); ok && se.Offset > 0 {
		offset = se.Offset - 1 // Offset is just past the offending byte.
	}
	if se, ok := errors.AsType[*strictjson.Error](err); ok {
		offset = se.Offset
		ce.Message = "invalid JSON: " + se.Reason
		if se.Pointer != "" {
			ce.Message += " (in " + se.Pointer + ")"
		}
	}
	if offset >= 0 && offset <= int64(len(raw)) {
		before := raw[:offset]
		ce.Line = bytes.Count(before, []byte("\n")) + 1
		ce.Col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	}
	return ce
}

// jsonShape converts a decoded YAML value to the JSON-shaped values policies
// see: integers become int64 and floats stay float64 (so 3.0 in a test file
// is the double a JSON request would send), timestamps become RFC 3339
// strings, and a mapping with a non-string key is an error.
func jsonShape(name string, v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, string, float64, int64:
		return t, nil
	case int:
		return int64(t), nil
	case uint64:
		if t > math.MaxInt64 {
			return float64(t), nil
		}
		return int64(t), nil
	case float32:
		return float64(t), nil
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano), nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			c, err := jsonShape(name, e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			c, err := jsonShape(name, e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	default:
		return nil, engine.CompileErrors{{File: name, Message: fmt.Sprintf("value of type %T is not representable as JSON (mapping keys must be strings)", v)}}
	}
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

// Compiled is a set of bundles compiled together.
type Compiled struct {
	// Snapshot serves the whole set: every module of every bundle,
	// combined deny-overrides.
	Snapshot *engine.Snapshot
	// PerBundle holds, for each bundle in order, a snapshot of its own
	// modules only, against which that bundle's tests run: a bundle's tests
	// say what its own policies decide, whatever else is served beside it.
	PerBundle []*engine.Snapshot
}

// Compile turns the bundles into one snapshot: every CEL policy file and the
// Rego modules of each bundle (with that bundle's data) become modules that
// combine deny-overrides. It returns engine.CompileErrors listing every
// problem of every file, or another error for an unusable bundle; it never
// returns a partial snapshot.
func Compile(ctx context.Context, bs []*Bundle, limits engine.Limits) (*engine.Snapshot, error) {
	c, err := CompileEach(ctx, bs, limits)
	if err != nil {
		return nil, err
	}
	return c.Snapshot, nil
}

// CompileEach is Compile that also returns a snapshot per bundle. Schemas are
// enforced (see CompileWith).
func CompileEach(ctx context.Context, bs []*Bundle, limits engine.Limits) (*Compiled, error) {
	return CompileWith(ctx, bs, CompileOptions{Limits: limits})
}

// CompileOptions configure CompileWith.
type CompileOptions struct {
	// Limits bound every evaluation of the compiled policies.
	Limits engine.Limits
	// SchemaMode says what an input that does not match the schema of its
	// resource type (schemas/<type>.json) does; empty means enforce.
	SchemaMode engine.SchemaMode
	// Overlay is data every bundle sees besides its own (provisioned
	// users and groups); nil for none.
	Overlay Overlay
}

// CompileWith is CompileEach with options. Each bundle's schemas/*.json are
// compiled too and validate inputs before evaluation, in the set's snapshot
// (an input must match the schema of every bundle that has one for its
// resource type) and in each bundle's own; a bad schema is a CompileError
// naming its file.
func CompileWith(ctx context.Context, bs []*Bundle, opts CompileOptions) (*Compiled, error) {
	var (
		all     []engine.Evaluator
		sources []string // the revision of the bundle of each of all
		errs    engine.CompileErrors
		revs    []string
		counts  = map[string]int{}
		names   = map[string]string{}
		schemas = map[string]allOf{}
		out     = &Compiled{}
		limits  = opts.Limits
		// maxAge is the least metadata.verdict.max_cache_ttl of the
		// bundles: a bundle without one gives callers no caching hint,
		// and neither does the set.
		maxAge time.Duration
	)
	for i, b := range bs {
		revs = append(revs, b.Revision())
		own := map[string]int{}
		modules, ce, err := compileBundle(ctx, b, limits, names, own, opts.Overlay)
		if err != nil {
			return nil, err
		}
		errs = append(errs, ce...)
		age, err := b.MaxCacheTTL()
		if err != nil {
			errs = append(errs, engine.CompileError{File: ".manifest", Message: err.Error()})
		}
		if i == 0 || age < maxAge {
			maxAge = age
		}
		validators, err := b.Schemas()
		if err != nil {
			if se, ok := errors.AsType[engine.CompileErrors](err); ok {
				errs = append(errs, se...)
			} else {
				return nil, err
			}
		}
		for typ, v := range validators {
			schemas[typ] = append(schemas[typ], v)
		}
		for k, v := range own {
			counts[k] += v
		}
		all = append(all, modules...)
		for range modules {
			sources = append(sources, b.Revision())
		}
		out.PerBundle = append(out.PerBundle, engine.NewSnapshot(modules, engine.SnapshotOptions{
			Revision: b.Revision(), Limits: limits, Counts: own,
			Validators: validators, SchemaMode: opts.SchemaMode, MaxCacheAge: age,
		}))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(all) == 0 {
		return nil, engine.CompileErrors{{Message: "the bundle holds no policy: add a *.verdict.yaml or .rego file"}}
	}
	var validators map[string]engine.InputValidator
	if len(schemas) > 0 {
		validators = make(map[string]engine.InputValidator, len(schemas))
		for typ, vs := range schemas {
			validators[typ] = vs
			if len(vs) == 1 {
				validators[typ] = vs[0]
			}
		}
	}
	if len(bs) < 2 {
		sources = nil // one bundle: every trace is of it
	}
	out.Snapshot = engine.NewSnapshot(all, engine.SnapshotOptions{
		Revision:    strings.Join(revs, ","),
		Bundles:     sources,
		Limits:      limits,
		Counts:      counts,
		Validators:  validators,
		SchemaMode:  opts.SchemaMode,
		MaxCacheAge: maxAge,
	})
	return out, nil
}

// compileBundle compiles one bundle's CEL files and Rego modules. names holds
// the policy names already used (across bundles) and gains this bundle's;
// counts gains the number of policies per kind. Problems in the policies come
// back as CompileErrors; the error is for anything else.
func compileBundle(ctx context.Context, b *Bundle, limits engine.Limits, names map[string]string, counts map[string]int, ov Overlay) ([]engine.Evaluator, engine.CompileErrors, error) {
	var (
		modules []engine.Evaluator
		errs    engine.CompileErrors
	)
	collect := func(err error) error {
		if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
			errs = append(errs, ce...)
			return nil
		}
		return err
	}
	data, err := b.Data()
	if err == nil {
		data, err = mergeOverlay(data, ov, "data")
	}
	if err != nil {
		// collect keeps a CompileErrors in errs (evaluated before the
		// return reads errs) and returns anything else.
		if err := collect(err); err != nil {
			return nil, nil, err
		}
		return nil, errs, nil
	}
	comp, err := celengine.NewCompiler(limits, data)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range sortedNames(b.Files, IsPolicyFile) {
		p, err := comp.Compile(name, b.Files[name])
		if err != nil {
			if err := collect(err); err != nil {
				return nil, nil, err
			}
			continue
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
		return modules, errs, nil
	}
	ep, err := b.Entrypoint()
	if err != nil {
		return modules, append(errs, engine.CompileError{File: ".manifest", Message: err.Error()}), nil
	}
	cacheTD, err := b.metaBool("cacheTimeDependent")
	if err != nil {
		return modules, append(errs, engine.CompileError{File: ".manifest", Message: err.Error()}), nil
	}
	v0 := b.Manifest.RegoVersion != nil && *b.Manifest.RegoVersion == 0
	rp, err := regoengine.Compile(ctx, mods, regoengine.Options{Entrypoint: ep, Data: data, Limits: limits, V0: v0})
	if err != nil {
		return modules, errs, collect(err)
	}
	var ev engine.Evaluator = rp
	if cacheTD {
		ev = cachedAnyway{rp}
	}
	counts[KindRego] += len(mods)
	return append(modules, ev), errs, nil
}

// cachedAnyway marks a Rego module whose bundle allows caching decisions
// although the policy reads the time (metadata.verdict.cacheTimeDependent).
type cachedAnyway struct{ engine.Evaluator }

func (cachedAnyway) TimeDependent() bool { return false }

// MaxCacheTTLLimit is the largest metadata.verdict.max_cache_ttl a bundle
// may set: a day. A longer hint is more likely a unit mistake (milliseconds
// for seconds) than a wish.
const MaxCacheTTLLimit = 24 * time.Hour

// MaxCacheTTL is the manifest's metadata.verdict.max_cache_ttl: how long,
// at most, a caller may keep a decision of this bundle (whole seconds,
// 0..MaxCacheTTLLimit). Absent means 0: no caching hint. Anything else
// (a string, a fraction, a negative number, more than a day) is an error.
func (b *Bundle) MaxCacheTTL() (time.Duration, error) {
	m, _ := b.Manifest.Metadata["verdict"].(map[string]any)
	v, ok := m["max_cache_ttl"]
	if !ok {
		return 0, nil
	}
	var n int64
	var err error
	switch t := v.(type) {
	case json.Number:
		n, err = t.Int64()
	case int64:
		n = t
	default:
		err = errors.New("not a number")
	}
	limit := int64(MaxCacheTTLLimit / time.Second)
	if err != nil || n < 0 || n > limit {
		return 0, fmt.Errorf("metadata.verdict.max_cache_ttl must be a whole number of seconds from 0 to %d, got %v", limit, v)
	}
	return time.Duration(n) * time.Second, nil
}

// metaBool reads metadata.verdict.<key> of the manifest: false when absent,
// an error when present but not a boolean.
func (b *Bundle) metaBool(key string) (bool, error) {
	m, _ := b.Manifest.Metadata["verdict"].(map[string]any)
	v, ok := m[key]
	if !ok {
		return false, nil
	}
	bv, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("metadata.verdict.%s must be true or false, got %v", key, v)
	}
	return bv, nil
}
