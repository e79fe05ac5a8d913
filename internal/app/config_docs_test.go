package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/telemetry"
)

// TestOperationsExampleLoads loads the complete verdict.yaml of
// docs/operations.md ("Configuration file"), so that it stays loadable as
// sections are added.
func TestTelemetrySection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "verdict.yaml")
	yaml := "telemetry:\n  traces:\n    exporter: otlp-grpc\n    endpoint: collector:4317\n    insecure: true\n    sample_ratio: 0.25\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Telemetry.Traces
	if tr.Exporter != telemetry.ExporterOTLPGRPC || tr.Endpoint != "collector:4317" || !tr.Insecure || tr.SampleRatio != 0.25 || tr.ServiceName != "verdict" {
		t.Fatalf("traces %+v", tr)
	}
	if err := os.WriteFile(path, []byte("telemetry:\n  traces:\n    exporter: zipkin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "traces.exporter") {
		t.Fatalf("an unknown exporter loaded: %v", err)
	}
}
