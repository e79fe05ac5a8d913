package server

import (
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

const ownerSchema = `{"type": "object", "properties": {"resource": {"properties": {"properties": {"required": ["owner"], "properties": {"owner": {"type": "string"}}}}}}}`

func TestDecideWithSchema(t *testing.T) {
	files := map[string]string{"docs.verdict.yaml": policyV1, "schemas/document.json": ownerSchema, ".manifest": `{"revision":"s1"}`}
	bad := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"1","properties":{"owner":7}}}`
	t.Run("enforce", func(t *testing.T) {
		rc := &recordingCache{}
		mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
		activate(t, mgr, files)
		h := start(t, DefaultConfig(), mgr, WithCache(rc))
		resp, m := h.post("/v1/decide", "application/json", bad)
		allow, reasons := decision(t, m)
		ctx := m["context"].(map[string]any)
		if resp.StatusCode != 200 || allow || len(reasons) != 1 || reasons[0] != engine.ReasonSchemaViolation {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if msg, _ := ctx["error"].(string); !strings.Contains(msg, "/resource/properties/owner") {
			t.Fatalf("context.error %q", msg)
		}
		// Same input, same answer: a schema deny is cached like any other.
		if rc.sets.Load() != 1 {
			t.Fatalf("cache writes %d, want 1", rc.sets.Load())
		}
		_, m = h.post("/v1/decide", "application/json", bad)
		if allow, reasons := decision(t, m); allow || reasons[0] != engine.ReasonSchemaViolation || rc.sets.Load() != 1 {
			t.Fatalf("second answer %v (cache writes %d)", m, rc.sets.Load())
		}
		_, m = h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		if allow, _ := decision(t, m); !allow {
			t.Fatalf("a matching input: %v", m)
		}
	})
	t.Run("warn", func(t *testing.T) {
		cfg := bundles.DefaultConfig()
		cfg.SchemaMode = engine.SchemaWarn
		mgr := bundles.NewManager(cfg, nil)
		activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1,
			"schemas/document.json": `{"properties": {"context": {"required": ["ip"]}}}`})
		h := start(t, DefaultConfig(), mgr)
		// The owner may read: allowed although the input lacks context.ip.
		_, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		allow, reasons := decision(t, m)
		ctx := m["context"].(map[string]any)
		warnings, _ := ctx["warnings"].([]any)
		if !allow || reasons[0] != "owners-edit" || len(warnings) != 1 || ctx["error"] != nil ||
			!strings.HasPrefix(warnings[0].(string), engine.ReasonSchemaViolation+": ") || !strings.Contains(warnings[0].(string), "ip") {
			t.Fatalf("warn mode: %v", m)
		}
	})
}
