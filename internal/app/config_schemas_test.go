package app

import (
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

func TestBundleSchemasMode(t *testing.T) {
	cfg, err := LoadConfig(write(t, "bundles:\n  paths: [p]\n  schemas: warn\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.BundleConfig().SchemaMode; got != engine.SchemaWarn {
		t.Fatalf("schema mode %q, want warn", got)
	}
	if got := DefaultConfig().BundleConfig().SchemaMode; got.Validate() != nil || (got != "" && got != engine.SchemaEnforce) {
		t.Fatalf("default schema mode %q", got)
	}
	cfg, err = LoadConfig(write(t, "bundles:\n  schemas: loose\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "bundles.schemas") {
		t.Fatalf("want a bundles.schemas error, got %v", err)
	}
}
