package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestSecurityDocCitesRealTests keeps docs/security.md honest: every test
// or fuzz target it names in backticks (`TestX`, `bench/TestX`, `FuzzX`)
// must be declared as a func in some *_test.go file of the module, so that
// a renamed or removed test cannot leave the threat model pointing at
// nothing.
func TestSecurityDocCitesRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}

	declared := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Z]\w*)\(`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			declared[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	span := regexp.MustCompile("`[^`\n]+`")
	name := regexp.MustCompile(`\b(?:Test|Fuzz)[A-Z]\w*`)
	cited := map[string]bool{}
	for _, s := range span.FindAll(doc, -1) {
		for _, n := range name.FindAll(s, -1) {
			cited[string(n)] = true
		}
	}
	if len(cited) == 0 {
		t.Fatal("docs/security.md cites no test in backticks: the pattern or the document changed")
	}
	var missing []string
	for n := range cited {
		if !declared[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("docs/security.md cites %d test(s) that no *_test.go declares: %s", len(missing), strings.Join(missing, ", "))
	}
	t.Logf("docs/security.md cites %d distinct tests and fuzz targets, all declared", len(cited))
}
