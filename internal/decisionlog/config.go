package decisionlog

import (
	"errors"
	"fmt"
	"strings"
)

// Sinks a decision log can be written to.
const (
	SinkNone   = "none"
	SinkStdout = "stdout"
	SinkFile   = "file"
	// SinkHTTP ships gzipped batches in OPA's decision-log format to
	// HTTP.URL (ship.go).
	SinkHTTP = "http"
)

// Config is the decision_logs section.
type Config struct {
	// Sink is where records go: none (default: no lines, the history still
	// fills), stdout, file (Path, rotated by size), or http (batches
	// shipped as HTTP says).
	Sink string `yaml:"sink"`
	// Path is the log file of sink file.
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file when it would grow beyond this many
	// megabytes (default 100).
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files are kept (default 5; 0 keeps
	// all).
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays removes rotated files older than this many days (0, the
	// default: no age limit).
	MaxAgeDays int `yaml:"max_age_days"`
	// Compress gzips rotated files.
	Compress bool `yaml:"compress"`
	// Buffer is how many records wait for the writer at most (default
	// 10000); beyond it records are dropped and counted, never waited for.
	Buffer int `yaml:"buffer"`
	// SampleRatio is the share of allows logged, 0 to 1 (default 1). Every
	// deny is logged.
	SampleRatio float64 `yaml:"sample_ratio"`
	// Redact are JSON-pointer paths removed from the logged input, such as
	// /subject/properties/email or /context/headers/authorization. A path
	// starts with /subject, /resource, /action, /context or /token; under an
	// entity it names properties/... or id (an id is blanked).
	Redact []string `yaml:"redact"`
	// TokenClaims are the only token claims logged (default sub, iss,
	// client_id); every other claim is removed.
	TokenClaims []string `yaml:"token_claims"`
	// History is how many redacted inputs are kept in memory for previews
	// without inputs (default 1000; 0 keeps none).
	History int `yaml:"history"`
	// HTTP is where and how sink http ships; ignored by the other sinks.
	HTTP HTTP `yaml:"http"`
}

// Default returns the defaults: no sink, a 10,000-record buffer, every
// decision sampled, a history of 1,000 inputs.
func Default() Config {
	return Config{
		Sink:        SinkNone,
		MaxSizeMB:   100,
		MaxBackups:  5,
		Buffer:      10000,
		SampleRatio: 1,
		Redact:      []string{"/context/headers/authorization", "/context/headers/cookie"},
		TokenClaims: []string{"sub", "iss", "client_id"},
		History:     1000,
		HTTP:        DefaultHTTP(),
	}
}

// Enabled reports whether anything is recorded (a sink or a history).
func (c Config) Enabled() bool { return c.Sink != SinkNone || c.History > 0 }

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	switch c.Sink {
	case SinkNone, SinkStdout:
	case SinkFile:
		if strings.TrimSpace(c.Path) == "" {
			errs = append(errs, errors.New("decision_logs.path is required with sink file"))
		}
	case SinkHTTP:
		errs = append(errs, c.HTTP.validateTarget())
	default:
		errs = append(errs, fmt.Errorf("decision_logs.sink must be none, stdout, file or http, got %q", c.Sink))
	}
	errs = append(errs, c.HTTP.validate())
	if c.MaxSizeMB <= 0 {
		errs = append(errs, fmt.Errorf("decision_logs.max_size_mb must be positive, got %d", c.MaxSizeMB))
	}
	if c.MaxBackups < 0 || c.MaxAgeDays < 0 {
		errs = append(errs, errors.New("decision_logs.max_backups and max_age_days must not be negative"))
	}
	if c.Buffer <= 0 {
		errs = append(errs, fmt.Errorf("decision_logs.buffer must be positive, got %d", c.Buffer))
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("decision_logs.sample_ratio must be between 0 and 1, got %v", c.SampleRatio))
	}
	if c.History < 0 {
		errs = append(errs, fmt.Errorf("decision_logs.history must not be negative, got %d", c.History))
	}
	for _, p := range c.Redact {
		if _, err := parsePath(p); err != nil {
			errs = append(errs, fmt.Errorf("decision_logs.redact: %w", err))
		}
	}
	return errors.Join(errs...)
}
