package scim

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// front wraps the library's server: it refuses an over-long filter before
// anything parses it, sets the ETag header of a single resource from its
// meta.version, and keeps only the attributes an "attributes" query asks
// for (id, schemas and meta always stay).
type front struct {
	next http.Handler
	log  *slog.Logger
}

// recorder buffers the library's answer so that front can finish it.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if f := q.Get("filter"); len(f) > MaxFilterLength {
		writeError(w, http.StatusBadRequest, "invalidFilter", "filter is longer than "+strconv.Itoa(MaxFilterLength)+" characters")
		return
	} else if filterDepth(f) > MaxFilterDepth {
		writeError(w, http.StatusBadRequest, "invalidFilter", "filter nests deeper than "+strconv.Itoa(MaxFilterDepth)+" levels")
		return
	}
	rec := &recorder{h: http.Header{}, status: http.StatusOK}
	f.next.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status < 300 && len(body) > 0 {
		var doc map[string]any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if d.Decode(&doc) == nil {
			if meta, ok := doc["meta"].(map[string]any); ok {
				if v, ok := meta["version"].(string); ok && v != "" {
					rec.h.Set("ETag", v)
				}
			}
			if strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") {
				// The library always says no; these resources have ETags.
				doc["etag"] = map[string]bool{"supported": true}
				if b, err := json.Marshal(doc); err == nil {
					body = b
				}
			}
			if attrs := q.Get("attributes"); attrs != "" {
				keep := strings.Split(attrs, ",")
				if list, ok := doc["Resources"].([]any); ok {
					for _, res := range list {
						if m, ok := res.(map[string]any); ok {
							project(m, keep)
						}
					}
				} else if _, ok := doc["id"]; ok {
					project(doc, keep)
				}
				if b, err := json.Marshal(doc); err == nil {
					body = b
				}
			}
		}
	}
	for k, v := range rec.h {
		w.Header()[k] = v
	}
	if rec.status >= 500 {
		f.log.Error("SCIM request failed", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.status)
	w.Write(body)
}

// project keeps the attributes of keep (top-level names; "name.givenName"
// keeps name) and id, schemas and meta.
func project(m map[string]any, keep []string) {
	want := map[string]bool{"id": true, "schemas": true, "meta": true}
	for _, k := range keep {
		top, _, _ := strings.Cut(strings.TrimSpace(k), ".")
		want[strings.ToLower(top)] = true
	}
	for k := range m {
		if !want[strings.ToLower(k)] {
			delete(m, k)
		}
	}
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	b, _ := json.Marshal(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  strconv.Itoa(status), "scimType": scimType, "detail": detail,
	})
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	w.Write(b)
}

// MaxFilterDepth bounds how deep a filter's parentheses and brackets
// nest, so that a hostile filter cannot make the parser recurse without
// end.
const MaxFilterDepth = 8

// filterDepth is the deepest nesting of ( and [ in f, outside quoted
// strings.
func filterDepth(f string) int {
	depth, deepest, quoted := 0, 0, false
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == ')' || c == ']':
			depth--
		}
	}
	return deepest
}
