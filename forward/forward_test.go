package forward

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestForwardAuthConfigValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"bad cidr":                 func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} },
		"envoy prefix elsewhere":   func(c *Config) { c.EnvoyPrefix = "/envoy" },
		"envoy prefix slash":       func(c *Config) { c.EnvoyPrefix = "/v1/forward-auth/envoy/" },
		"authorization in context": func(c *Config) { c.ContextHeaders = []string{"Authorization"} },
		"secret in context": func(c *Config) {
			c.SharedSecret = "x"
			c.ContextHeaders = []string{"x-verdict-proxy-secret"}
		},
		"bad source":         func(c *Config) { c.ResponseHeaders = map[string]string{"X-A": "subject.password"} },
		"bad header name":    func(c *Config) { c.ResponseHeaders = map[string]string{"X A": "subject.id"} },
		"partial segment":    func(c *Config) { c.Routes = []Route{{Path: "/files/{name}.json"}} },
		"relative template":  func(c *Config) { c.Routes = []Route{{Path: "todos"}} },
		"conflicting routes": func(c *Config) { c.Routes = []Route{{Path: "/a/{x}"}, {Path: "/a/{y}"}} },
		"bad method":         func(c *Config) { c.Routes = []Route{{Path: "/a", Methods: []string{"GE T"}}} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			mutate(&c)
			if c.Validate() == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
}

func TestRouteMatcher(t *testing.T) {
	m, err := newRouteMatcher([]Route{
		{Path: "/todos/{id}"}, {Path: "/todos/new"}, {Path: "/users/{user-id}/todos/{todo_id}", Methods: []string{"GET"}},
		{Path: "/dir/"}, {Path: "/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, template string
		params                 map[string]string
	}{
		{"GET", "/todos/42", "/todos/{id}", map[string]string{"id": "42"}},
		{"GET", "/todos/new", "/todos/new", map[string]string{}},
		{"GET", "/todos/a%2Fb", "/todos/{id}", map[string]string{"id": "a/b"}},
		{"GET", "/users/u1/todos/t2", "/users/{user-id}/todos/{todo_id}", map[string]string{"user-id": "u1", "todo_id": "t2"}},
		{"HEAD", "/users/u1/todos/t2", "/users/{user-id}/todos/{todo_id}", map[string]string{"user-id": "u1", "todo_id": "t2"}},
		{"DELETE", "/users/u1/todos/t2", "", nil},
		{"GET", "/dir/", "/dir/", map[string]string{}},
		{"GET", "/dir/x", "", nil},
		{"GET", "/", "/", map[string]string{}},
		{"GET", "/todos", "", nil},
		{"GET", "/todos/42/x", "", nil},
		{"GET", "/todos/../todos/new", "", nil},
		{"GET", "//todos/42", "", nil},
	}
	for _, tc := range cases {
		got, ok := m.match(context.Background(), tc.method, tc.path)
		if tc.template == "" {
			if ok {
				t.Errorf("%s %s matched %v", tc.method, tc.path, got)
			}
			continue
		}
		if !ok || got.template != tc.template || len(got.params) != len(tc.params) {
			t.Errorf("%s %s: %v %v, want %s %v", tc.method, tc.path, got, ok, tc.template, tc.params)
			continue
		}
		for k, v := range tc.params {
			if got.params[k] != v {
				t.Errorf("%s %s: param %s = %q, want %q", tc.method, tc.path, k, got.params[k], v)
			}
		}
	}
}

func TestOpenAPIRoutes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "api.yaml")
	doc := `openapi: 3.0.3
info: {title: todos, version: "1"}
paths:
  /health:
    get: {responses: {"200": {description: ok}}}
  /todos/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {responses: {"200": {description: ok}}}
    delete: {responses: {"204": {description: gone}}}
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.OpenAPI = file
	fa, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, want string
	}{{"GET", "/todos/7", "/todos/{id}"}, {"DELETE", "/todos/7", "/todos/{id}"}, {"PUT", "/todos/7", ""}, {"GET", "/health", "/health"}} {
		got, _ := fa.routes.match(context.Background(), tc.method, tc.path)
		if got.template != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got.template, tc.want)
		}
	}
	cfg.OpenAPI = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := New(cfg); err == nil {
		t.Fatal("a missing OpenAPI file was accepted")
	}
}
