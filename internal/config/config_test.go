package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type section struct {
	Name  string   `yaml:"name"`
	Paths []string `yaml:"paths"`
	Dir   string   `yaml:"dir"`
	Log   Log      `yaml:"log"`
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "verdict.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadOverDefaultsAndResolve(t *testing.T) {
	p := writeFile(t, "paths: [rel, /abs]\ndir: data\n")
	s := section{Name: "default", Log: DefaultLog()}
	f, err := Read(p, &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "default" || s.Log != DefaultLog() {
		t.Fatalf("defaults lost: %+v", s)
	}
	for i := range s.Paths {
		f.Resolve(&s.Paths[i])
	}
	base := filepath.Dir(p)
	if s.Paths[0] != filepath.Join(base, "rel") || s.Paths[1] != "/abs" {
		t.Fatalf("paths %q", s.Paths)
	}
	if !f.Has("dir") || f.Has("name") {
		t.Fatalf("Has: dir %v, name %v", f.Has("dir"), f.Has("name"))
	}
	empty := ""
	f.Resolve(&empty)
	if empty != "" {
		t.Fatalf("an empty path resolved to %q", empty)
	}
}

func TestReadRejects(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"nmae: x\n", "nmae"},
		{"name: [1, 2]\n", ":1:"},
		{"paths: x: y\n", "verdict.yaml:1:1:"},
	} {
		p := writeFile(t, c.body)
		_, err := Read(p, &section{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: err = %v, want the file and %q", c.body, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "config.section") {
			t.Errorf("%q: a Go type in the error: %v", c.body, err)
		}
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.yaml"), &section{}); err == nil {
		t.Error("a missing file read")
	}
}

func TestLog(t *testing.T) {
	if err := DefaultLog().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Log{Level: "loud", Format: "xml"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "log.level") || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("err = %v, want both problems", err)
	}
	var buf bytes.Buffer
	Log{Level: "warn", Format: "json"}.Logger(&buf).Info("hidden")
	Log{Level: "warn", Format: "json"}.Logger(&buf).Warn("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.HasPrefix(out, "{") || !strings.Contains(out, "shown") {
		t.Fatalf("logger output %q", out)
	}
}
