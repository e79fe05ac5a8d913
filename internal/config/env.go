package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the name of every environment variable that sets a
// configuration key.
const EnvPrefix = "VERDICT_"

// EnvName is the environment variable that sets the key at the dotted path
// (e.g. "server.read_timeout" → VERDICT_SERVER_READ_TIMEOUT): the prefix,
// then the path upper-cased with its dots as underscores.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// Env sets keys of v (a pointer to a configuration struct, already holding
// the defaults and the file) from environ ("NAME=value" entries, as
// os.Environ gives): each variable named EnvName(path) for a key path of
// v's type. A string, number, boolean or duration is the variable's text as
// it is (no quoting, no YAML: a secret may hold '#' or ': '); a list, a
// mapping or a whole section is YAML flow style, as in the file
// (VERDICT_BUNDLES_PATHS='[/b/one, /b/two]'): a list replaces the file's,
// a mapping or section sets the keys it names. A section's variable is
// applied before the variables of keys in it.
//
// A VERDICT_ variable that names no key but starts with the name of a
// section (VERDICT_SERVER_ADR) is an error, with the key it probably meant;
// other VERDICT_ variables belong to other tools (VERDICT_CLIENT_SECRET of
// verdict bundle push) and are ignored. Every problem is reported, joined,
// each naming its variable; the value of a variable never appears in an
// error (it may be a secret).
func Env(environ []string, v any) error {
	root := reflect.TypeOf(v).Elem()
	keys := envKeys(root)
	var errs []error
	names := make([]string, 0, len(environ))
	values := make(map[string]string, len(environ))
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if _, seen := values[name]; !seen {
			names = append(names, name)
		}
		values[name] = val
	}
	slices.Sort(names) // a section before its keys, and a stable order of errors
	for _, name := range names {
		k, ok := keys[name]
		if !ok {
			if section := sectionOf(root, name); section != "" {
				errs = append(errs, fmt.Errorf("environment %s: no configuration key %s%s", name, strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), suggestEnv(name, keys)))
			}
			continue
		}
		if err := setEnv(v, k, values[name]); err != nil {
			errs = append(errs, fmt.Errorf("environment %s (%s): %w", name, strings.Join(k.path, "."), err))
		}
	}
	return errors.Join(errs...)
}

// envKey is a key that a variable sets: its path and whether its value is
// written literally (a scalar) or as YAML (a list, mapping or section).
type envKey struct {
	path []string
	kind envKind
}

type envKind int

const (
	envYAML   envKind = iota // a list, mapping or section, in YAML flow style
	envString                // a string: the text exactly
	envScalar                // a number, boolean or duration: the text, resolved as YAML resolves a plain scalar
)

// EnvNames lists the variable of every key of v's type (a configuration
// struct or a pointer to one), sorted. Two keys whose paths would share a
// variable (a.b_c and a_b.c) are an error: the rule would be ambiguous.
func EnvNames(v any) ([]string, error) {
	keys, dup := envKeyList(reflect.TypeOf(v))
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(dup) > 0 {
		return names, fmt.Errorf("config: keys share a variable name: %s", strings.Join(dup, ", "))
	}
	return names, nil
}

func envKeys(t reflect.Type) map[string]envKey {
	keys, _ := envKeyList(t)
	return keys
}

// envKeyList lists every key of the struct type t (sections and the keys
// in them, to any depth) by variable name, and the paths that collide.
func envKeyList(t reflect.Type) (map[string]envKey, []string) {
	out := map[string]envKey{}
	var dup []string
	var walk func(t reflect.Type, path []string)
	walk = func(t reflect.Type, path []string) {
		for _, f := range fields(t) {
			p := append(slices.Clone(path), f.name)
			ft := deref(f.typ)
			name := EnvName(strings.Join(p, "."))
			if prev, ok := out[name]; ok {
				dup = append(dup, strings.Join(prev.path, ".")+" and "+strings.Join(p, "."))
			}
			out[name] = envKey{path: p, kind: kindOf(ft)}
			if ft.Kind() == reflect.Struct && ft != timeType {
				walk(ft, p)
			}
		}
	}
	walk(deref(t), nil)
	return out, dup
}

type field struct {
	name string
	typ  reflect.Type
}

// fields are the exported fields of struct type t that have a yaml name.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			out = append(out, field{name, f.Type})
		}
	}
	return out
}

var timeType = reflect.TypeOf(time.Time{})

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// kindOf says how a variable's text becomes a value of t.
func kindOf(t reflect.Type) envKind {
	if t == durationType {
		return envScalar
	}
	switch t.Kind() {
	case reflect.String:
		return envString
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return envScalar
	}
	return envYAML
}

// sectionOf returns the top-level key whose variable name starts name, if
// any: a variable meant for the configuration.
func sectionOf(root reflect.Type, name string) string {
	for _, f := range fields(deref(root)) {
		if p := EnvName(f.name); name == p || strings.HasPrefix(name, p+"_") {
			return f.name
		}
	}
	return ""
}

// suggestEnv proposes the closest variable name, when one is close.
func suggestEnv(name string, keys map[string]envKey) string {
	best, bestD := "", 4
	for k := range keys {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// setEnv decodes one variable's value into v at k's path, through the same
// strict YAML decoding as the file (unknown keys inside a section are
// errors).
func setEnv(v any, k envKey, val string) error {
	var value yaml.Node
	switch k.kind {
	case envString:
		value = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
	case envScalar:
		if strings.TrimSpace(val) == "" {
			return errors.New("empty (unset the variable to keep the file's or the default value)")
		}
		value = yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(val)}
	default:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
			return fmt.Errorf("not valid YAML (a list or mapping is written in flow style, e.g. [a, b] or {key: value}): %s", yamlMessage(err))
		}
		if len(doc.Content) == 0 {
			value = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		} else {
			value = *doc.Content[0]
		}
	}
	tree := &value
	for i := len(k.path) - 1; i >= 0; i-- {
		tree = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.path[i]}, tree}}
	}
	raw, err := yaml.Marshal(tree)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return errors.New(quoted.ReplaceAllString(yamlMessage(err), "the value"))
	}
	return nil
}

// quoted is how YAML errors quote the text they could not decode; the
// environment's errors leave it out (it may be a secret).
var quoted = regexp.MustCompile("`[^`]*`")

// yamlMessage is a YAML error without its "yaml: line N:" locations, which
// point into text the user never wrote, and without Go type names.
func yamlMessage(err error) string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if rest, ok := strings.CutPrefix(m, "line "); ok {
			if _, after, found := strings.Cut(rest, ": "); found {
				m = after
			}
		}
		m = strings.ReplaceAll(m, "!!str `", "`")
		if j := strings.Index(m, " in type "); j >= 0 {
			m = m[:j]
		}
		if j := strings.Index(m, " into "); j >= 0 {
			m = m[:j] + " into " + goTypeWord(m[j+len(" into "):])
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

// goTypeWord names a Go type in an error the way a configuration reader
// understands it.
func goTypeWord(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration (e.g. 10s)"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "this key"
}
