package bundles

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

const catalogPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: p
rules:
  - id: r
    effect: allow
    actions: [write, read]
  - id: any
    effect: allow
    actions: ["*"]
  - id: none
    effect: deny
`

func prepareFiles(t *testing.T, sets ...map[string]string) (*Active, error) {
	t.Helper()
	var bs []*Bundle
	for _, files := range sets {
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = []byte(v)
		}
		b, err := FromFiles(fs, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	return NewManager(DefaultConfig(), nil).Prepare(context.Background(), bs)
}

func TestCatalog(t *testing.T) {
	a, err := prepareFiles(t,
		map[string]string{"p.verdict.yaml": catalogPolicy, "data.json": `{"entities":{
			"user":[{"id":"bob","properties":{"role":"admin"}},{"id":"alice"},{"id":"bob","properties":{"role":"ignored"}}],
			"actions":["delete",{"name":"read","properties":{"x":1}}]}}`},
		map[string]string{"q.verdict.yaml": strings.Replace(catalogPolicy, "name: p", "name: q", 1), "data.json": `{"entities":{"user":[{"id":"carol"}],"record":[]}}`},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := Catalog{
		Entities: map[string][]CatalogEntry{
			"user":   {{ID: "alice"}, {ID: "bob", Properties: map[string]any{"role": "admin"}}, {ID: "carol"}},
			"record": {},
		},
		Actions: []CatalogEntry{{ID: "delete"}, {ID: "read", Properties: map[string]any{"x": int64(1)}}, {ID: "write"}},
	}
	if !reflect.DeepEqual(a.Catalog, want) {
		t.Fatalf("catalog\n%#v\nwant\n%#v", a.Catalog, want)
	}
	// No data.entities: only the actions of the rules.
	a, err = prepareFiles(t, map[string]string{"p.verdict.yaml": catalogPolicy, "data.json": `{"users":{}}`})
	if err != nil {
		t.Fatal(err)
	}
	if a.Catalog.Entities != nil || !reflect.DeepEqual(a.Catalog.Actions, []CatalogEntry{{ID: "read"}, {ID: "write"}}) {
		t.Fatalf("catalog %#v", a.Catalog)
	}
}

// A malformed data.entities rejects the bundle at activation, naming the
// entry, rather than serving searches that silently find nothing.
func TestCatalogRejectsMalformedEntities(t *testing.T) {
	for data, msg := range map[string]string{
		`{"entities":[]}`:                                    "data.entities must be an object",
		`{"entities":{"user":{"id":"a"}}}`:                   "data.entities.user must be a list",
		`{"entities":{"user":["alice"]}}`:                    "data.entities.user[0]: must be an object",
		`{"entities":{"user":[{"id":""}]}}`:                  "data.entities.user[0]: id must be a non-empty string",
		`{"entities":{"user":[{"id":1}]}}`:                   "data.entities.user[0]: id must be",
		`{"entities":{"user":[{"id":"a","properties":[]}]}}`: "properties must be an object",
		`{"entities":{"actions":[{"id":"read"}]}}`:           "data.entities.actions[0]: name must be",
		`{"entities":{"actions":[""]}}`:                      "data.entities.actions[0]",
	} {
		_, err := prepareFiles(t, map[string]string{"p.verdict.yaml": catalogPolicy, "data.json": data})
		var ce engine.CompileErrors
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want a compile error with %q", data, err, msg)
		}
	}
}
