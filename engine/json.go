package engine

import (
	"encoding/json"
	"strings"
)

// NormalizeJSON converts the json.Number values that a decoder in UseNumber
// mode produced, in place and recursively: integers that fit become int64,
// every other number float64. Policies thus see 3 as an int and 3.5 as a
// double, as the JSON text wrote them. A number that fits neither is kept as
// its string form.
func NormalizeJSON(v any) any {
	switch t := v.(type) {
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := t.Int64(); err == nil {
				return i
			}
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return s
	case map[string]any:
		for k, e := range t {
			t[k] = NormalizeJSON(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = NormalizeJSON(e)
		}
		return t
	default:
		return v
	}
}
