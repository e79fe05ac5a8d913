// Package config reads Verdict's configuration file: strict YAML (unknown
// keys are errors) decoded over the defaults the caller passes, with errors
// worded as policy files' are (file:line:col, the key by name, never a Go
// type), and the resolution of relative paths against the file's
// directory. It knows no section but the logger's: each package owns its
// section's type, defaults and Validate, and internal/app composes them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	celengine "github.com/verdictpdp/verdict/engine/cel"
)

// File is a configuration file that Read decoded.
type File struct {
	path string
	top  map[string]yaml.Node
}

// Read decodes the YAML file at path into v, which holds the defaults.
// Unknown keys and malformed values are errors naming file, line and key.
func Read(path string, v any) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s:\n%w", path, celengine.YAMLErrors(path, raw, err))
	}
	f := &File{path: path}
	_ = yaml.Unmarshal(raw, &f.top) // the strict decode above already passed
	return f, nil
}

// Has reports whether the file sets the top-level key.
func (f *File) Has(key string) bool {
	_, ok := f.top[key]
	return ok
}

// Resolve makes a relative, non-empty path p relative to the file's
// directory, so that the file works from any working directory.
func (f *File) Resolve(p *string) {
	if *p != "" && !filepath.IsAbs(*p) {
		*p = filepath.Join(filepath.Dir(f.path), *p)
	}
}

// Log configures the slog logger.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// DefaultLog is info-level text.
func DefaultLog() Log { return Log{Level: "info", Format: "text"} }

// Validate reports every problem with l, joined.
func (l Log) Validate() error {
	var errs []error
	if _, err := l.level(); err != nil {
		errs = append(errs, err)
	}
	if l.Format != "text" && l.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format must be text or json, got %q", l.Format))
	}
	return errors.Join(errs...)
}

func (l Log) level() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("log.level must be debug, info, warn or error, got %q", l.Level)
	}
	return lv, nil
}

// Logger builds the logger the configuration asks for, writing to w.
func (l Log) Logger(w io.Writer) *slog.Logger {
	lv, _ := l.level()
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
