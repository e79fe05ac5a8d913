package forward

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Route is one route template of the route table.
type Route struct {
	// Path is an OpenAPI-style path template: literal segments and whole
	// segments "{name}" that match one non-empty segment ("/todos/{id}").
	// A template ending in "/" matches only that path, not its subtree.
	Path string `yaml:"path"`
	// Methods are the HTTP methods the route is for; none means any. A
	// request whose method is not listed does not match the route.
	Methods []string `yaml:"methods"`
}

// routeMatcher finds the route template of a request path. It is the
// standard library's http.ServeMux (Go 1.22 patterns): the same precedence
// rules (the most specific template wins, so /todos/new beats /todos/{id}),
// path cleaning and wildcard decoding that Go servers use, with no
// dependency. kin-openapi's routers would add about ten modules and a
// gorilla/mux router for the same answer. Safe for concurrent use.
type routeMatcher struct {
	mux *http.ServeMux
	n   int
}

// routeMatch is the result of one match: the template and its parameters.
type routeMatch struct {
	template string
	params   map[string]string
}

type matchSlot struct{}

// newRouteMatcher compiles routes. It fails on a template that is not
// absolute, holds a parameter that is not a whole segment, or conflicts with
// another one (two templates that match the same paths with neither more
// specific, such as /a/{x} and /a/{y}).
func newRouteMatcher(routes []Route) (*routeMatcher, error) {
	m := &routeMatcher{mux: http.NewServeMux(), n: len(routes)}
	var errs []error
	for i, r := range routes {
		pattern, names, err := muxPattern(r.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("forward_auth route %d (%q): %w", i, r.Path, err))
			continue
		}
		tpl := r.Path
		h := http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
			slot, _ := req.Context().Value(matchSlot{}).(*routeMatch)
			if slot == nil {
				return
			}
			slot.template = tpl
			slot.params = make(map[string]string, len(names))
			for j, name := range names {
				slot.params[name] = req.PathValue(fmt.Sprintf("p%d", j))
			}
		})
		methods := r.Methods
		if len(methods) == 0 {
			methods = []string{""}
		}
		for _, meth := range methods {
			meth = strings.ToUpper(strings.TrimSpace(meth))
			if meth != "" && !ValidToken(meth) {
				errs = append(errs, fmt.Errorf("forward_auth route %q: method %q is not an HTTP method token", r.Path, meth))
				continue
			}
			if err := handle(m.mux, strings.TrimSpace(meth+" "+pattern), h); err != nil {
				errs = append(errs, fmt.Errorf("forward_auth route %q: %w", r.Path, err))
			}
		}
	}
	return m, errors.Join(errs...)
}

// handle registers a pattern; ServeMux reports a bad or conflicting
// pattern only by panicking, so the panic becomes the error it describes.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// muxPattern turns an OpenAPI template into a ServeMux pattern whose
// wildcards are p0, p1, ... (OpenAPI names such as {todo-id} are not Go
// identifiers), and returns the template's parameter names in order.
func muxPattern(tpl string) (string, []string, error) {
	if !strings.HasPrefix(tpl, "/") {
		return "", nil, errors.New("a path template must start with /")
	}
	segs := strings.Split(tpl[1:], "/")
	var names []string
	for i, seg := range segs {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' || strings.ContainsAny(seg[1:len(seg)-1], "{}") {
			return "", nil, fmt.Errorf("segment %q: a parameter must be a whole segment, {name}", seg)
		}
		name := seg[1 : len(seg)-1]
		if slices.Contains(names, name) {
			return "", nil, fmt.Errorf("parameter {%s} appears twice", name)
		}
		segs[i] = fmt.Sprintf("{p%d}", len(names))
		names = append(names, name)
	}
	pattern := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(pattern, "/") {
		// Exactly this path: a ServeMux pattern ending in / would match
		// its whole subtree.
		pattern += "{$}"
	}
	return pattern, names, nil
}

// match returns the route of method and path (the escaped path of the
// original request, without its query), or false when none matches: no
// template fits, the method is not one the template lists, or the path is
// not clean (a "..", "." or empty segment, which ServeMux would redirect).
func (m *routeMatcher) match(ctx context.Context, method, escapedPath string) (routeMatch, bool) {
	var slot routeMatch
	if m == nil || m.n == 0 {
		return slot, false
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, matchSlot{}, &slot), method, "http://route.match"+escapedPath, nil)
	if err != nil || req.URL.RawQuery != "" || req.URL.Fragment != "" {
		return slot, false
	}
	m.mux.ServeHTTP(discardResponse{}, req)
	return slot, slot.params != nil
}

// discardResponse is the ResponseWriter of a match: the handlers write
// nothing, and ServeMux's redirects and 404/405 answers are dropped.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

// openAPIRoutes reads the path templates and their operations from an
// OpenAPI 3 (or Swagger 2) document, YAML or JSON: one route per path with
// the methods it has operations for.
func openAPIRoutes(file string) ([]Route, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("forward_auth openapi: %w", err)
	}
	var doc struct {
		Paths yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("forward_auth openapi %s: %w", file, err)
	}
	if doc.Paths.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("forward_auth openapi %s: no paths object", file)
	}
	var routes []Route
	for i := 0; i+1 < len(doc.Paths.Content); i += 2 {
		r := Route{Path: doc.Paths.Content[i].Value}
		item := doc.Paths.Content[i+1]
		for j := 0; item.Kind == yaml.MappingNode && j+1 < len(item.Content); j += 2 {
			if k := item.Content[j].Value; slices.Contains(openAPIMethods, k) {
				r.Methods = append(r.Methods, strings.ToUpper(k))
			}
		}
		if len(r.Methods) > 0 {
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// validMethod reports whether m is an HTTP method token (RFC 9110 tchar).
func ValidToken(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r > 127 || !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
