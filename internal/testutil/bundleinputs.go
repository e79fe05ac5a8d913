package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestInputs returns the input of every test case in the *_test.yaml files
// of bundle directory dir, in file order, as the JSON decoder gives them
// (numbers as json.Number): example bundles' own cases seed the tests that
// compare query plans with decisions.
func TestInputs(t testing.TB, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.yaml"))
	var out []map[string]any
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Tests []struct {
				Input map[string]any `yaml:"input"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range doc.Tests {
			b, err := json.Marshal(tc.Input)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			d := json.NewDecoder(strings.NewReader(string(b)))
			d.UseNumber()
			var in map[string]any
			if err := d.Decode(&in); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, in)
		}
	}
	return out
}
