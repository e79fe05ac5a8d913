package bundles

import (
	"slices"
	"testing"
)

// TestSchemaSources: the schema of a resource type comes from every bundle
// that has schemas/<type>.json, indented when it is JSON and as stored when
// not; files of subdirectories bind no type.
func TestSchemaSources(t *testing.T) {
	one := fromStrings(t, map[string]string{
		".manifest":                 `{"revision":"r1"}`,
		"schemas/document.json":     `{"type":"object","title":"A <doc> & co","required":["resource"]}`,
		"schemas/order.json":        "{\"type\": \"object\"}\n",
		"schemas/common/owned.json": ownedSchema,
		"schemas/notes.txt":         "not a schema",
	})
	two := fromStrings(t, map[string]string{
		".manifest":             `{"revision":"r2"}`,
		"schemas/document.json": `{"type": "object", "broken": `,
		"schemas/invoice.json":  `[1,2]`,
	})
	none := fromStrings(t, map[string]string{".manifest": `{"revision":"r3"}`, "p.verdict.yaml": allowAllCEL})

	cases := []struct {
		name string
		bs   []*Bundle
		typ  string
		want []SchemaSource
	}{
		{"indented", []*Bundle{one}, "document", []SchemaSource{{File: "schemas/document.json", Revision: "r1",
			Text: "{\n  \"type\": \"object\",\n  \"title\": \"A <doc> & co\",\n  \"required\": [\n    \"resource\"\n  ]\n}"}}},
		{"trailing newline dropped", []*Bundle{one}, "order", []SchemaSource{{File: "schemas/order.json", Revision: "r1", Text: "{\n  \"type\": \"object\"\n}"}}},
		{"every bundle, invalid JSON as stored", []*Bundle{none, two, one}, "document", []SchemaSource{
			{File: "schemas/document.json", Revision: "r2", Text: `{"type": "object", "broken": `},
			{File: "schemas/document.json", Revision: "r1", Text: "{\n  \"type\": \"object\",\n  \"title\": \"A <doc> & co\",\n  \"required\": [\n    \"resource\"\n  ]\n}"},
		}},
		{"no schema for the type", []*Bundle{one, two}, "folder", nil},
		{"a subdirectory's file binds no type", []*Bundle{one}, "common/owned", nil},
		{"no escape from schemas/", []*Bundle{one}, "../schemas/order", nil},
		{"empty type", []*Bundle{one}, "", nil},
		{"no schemas at all", []*Bundle{none}, "document", nil},
		{"no bundles", nil, "document", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SchemaSources(tc.bs, tc.typ); !slices.Equal(got, tc.want) {
				t.Errorf("SchemaSources(%q) =\n%#v\nwant\n%#v", tc.typ, got, tc.want)
			}
		})
	}
}

// TestSchemaTypes: the types with a schema, sorted, each once, without the
// $ref-only files of subdirectories or files that are not JSON.
func TestSchemaTypes(t *testing.T) {
	one := fromStrings(t, map[string]string{
		"schemas/order.json":        `{}`,
		"schemas/document.json":     `{}`,
		"schemas/common/owned.json": ownedSchema,
		"schemas/readme.md":         "# schemas",
		"data.json":                 `{}`,
	})
	two := fromStrings(t, map[string]string{"schemas/document.json": `{}`, "schemas/account.json": `{}`})
	none := fromStrings(t, map[string]string{"p.verdict.yaml": allowAllCEL})
	for _, tc := range []struct {
		name string
		bs   []*Bundle
		want []string
	}{
		{"one bundle", []*Bundle{one}, []string{"document", "order"}},
		{"two bundles", []*Bundle{one, two}, []string{"account", "document", "order"}},
		{"none", []*Bundle{none}, nil},
		{"no bundles", nil, nil},
	} {
		if got := SchemaTypes(tc.bs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: SchemaTypes = %q, want %q", tc.name, got, tc.want)
		}
	}
}
