package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/telemetry"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "verdict.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOverridesDefaults(t *testing.T) {
	cfg, err := LoadConfig(write(t, `
data_dir: /tmp/v
server:
  addr: 127.0.0.1:9999
  body_limit: 2048
engine:
  timeout: 20ms
bundles: [policies/quickstart]
log: {level: debug, format: json}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:9999" || cfg.Server.BodyLimit != 2048 || cfg.Engine.Timeout != 20*time.Millisecond {
		t.Fatalf("values not applied: %+v", cfg)
	}
	if cfg.Server.MaxDepth != 64 || cfg.Engine.CostLimit == 0 {
		t.Fatalf("defaults lost for keys the file does not set: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":  "servr: {}\n",
		"bad duration": "engine: {timeout: soon}\n",
		"wrong type":   "server: {body_limit: big}\n",
	} {
		if _, err := LoadConfig(write(t, body)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: want an error")
	}
}

func TestValidateJoinsProblems(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Server.Addr = "nonsense"
	cfg.Engine.Timeout = 0
	cfg.Log.Format = "xml"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"addr", "timeout", "log.format"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestPathsAreRelativeToTheFile(t *testing.T) {
	p := write(t, "bundles: [policies/a, /abs/b]\ndata_dir: state\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if cfg.Bundles.Paths[0] != filepath.Join(dir, "policies/a") || cfg.Bundles.Paths[1] != "/abs/b" || cfg.DataDir != filepath.Join(dir, "state") {
		t.Fatalf("paths: %v %s", cfg.Bundles.Paths, cfg.DataDir)
	}
	cfg, _ = LoadConfig(write(t, "log: {level: warn}\n"))
	if cfg.DataDir != "./verdict-data" {
		t.Fatalf("a data_dir the file does not set stays the default: %s", cfg.DataDir)
	}
}

func TestEmptyDataDirInFileIsInvalid(t *testing.T) {
	cfg, err := LoadConfig(write(t, "data_dir: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("want a data_dir error, got %v", err)
	}
}

func TestBundlesSection(t *testing.T) {
	p := write(t, `
bundles:
  paths: [policies/a]
  require_signature: false
  watch: true
  keys:
    ci: {algorithm: ES256, key_file: keys/ci.pem}
`)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if len(cfg.Bundles.Paths) != 1 || cfg.Bundles.Paths[0] != filepath.Join(dir, "policies/a") || !cfg.Bundles.Watch {
		t.Fatalf("bundles: %+v", cfg.Bundles)
	}
	if k := cfg.Bundles.Keys["ci"]; k.Algorithm != "ES256" || k.KeyFile != filepath.Join(dir, "keys/ci.pem") {
		t.Fatalf("key: %+v", k)
	}
	if cfg.SignatureRequired() {
		t.Fatal("require_signature: false was not applied")
	}
	if _, err := LoadConfig(write(t, "bundles: {pathz: [a]}\n")); err == nil || !strings.Contains(err.Error(), "pathz") {
		t.Fatalf("an unknown key under bundles: want an error naming it, got %v", err)
	}
	if _, err := LoadConfig(write(t, "bundles: policies/a\n")); err == nil {
		t.Fatal("a scalar bundles: want an error")
	}
}

func TestSignatureRequiredByDefaultOutsideDev(t *testing.T) {
	cfg := DefaultConfig()
	if !cfg.SignatureRequired() {
		t.Fatal("production default must require signatures")
	}
	cfg.Dev = true
	if cfg.SignatureRequired() {
		t.Fatal("dev default must not require signatures")
	}
	yes := true
	cfg.Bundles.RequireSignature = &yes
	if !cfg.SignatureRequired() {
		t.Fatal("an explicit require_signature: true wins over dev")
	}
}

// TestBundleKeysAreValidated: bad bundle keys stop the start, each named by
// its key id; a key_file relative to the file loads.
func TestBundleKeysAreValidated(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	p := write(t, `
bundles:
  paths: [b]
  keys:
    ci: {algorithm: ES256, key_file: keys/ci.pub.pem, scope: prod}
  exclude_files: ["notes/*"]
`)
	if err := os.MkdirAll(filepath.Join(filepath.Dir(p), "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(p), "keys", "ci.pub.pem"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a good key: %v", err)
	}
	bc := cfg.BundleConfig()
	if !bc.Signing.Required || bc.Signing.Keys["ci"].Scope != "prod" || bc.Signing.Exclude[0] != "notes/*" {
		t.Fatalf("signing config: %+v", bc.Signing)
	}
	bad, err := LoadConfig(write(t, `
bundles:
  keys:
    hmac: {algorithm: HS256, key: secret}
    junk: {algorithm: ES256, key: "not pem"}
    gone: {algorithm: ES256, key_file: nowhere.pem}
  exclude_files: ["["]
`))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Validate()
	for _, want := range []string{"bundles.keys.hmac: algorithm \"HS256\" is not allowed", "bundles.keys.junk: not a PEM", "bundles.keys.gone: key_file", "bundles.exclude_files"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestRefreshReuseGrace(t *testing.T) {
	if got := DefaultConfig().RefreshConfig().ReuseGrace; got != 2*time.Second {
		t.Fatalf("default grace %s, want 2s", got)
	}
	for body, want := range map[string]time.Duration{
		"tokens: {refresh_reuse_grace: 0s}\n":  0, // off, not the default
		"tokens: {refresh_reuse_grace: 5s}\n":  5 * time.Second,
		"tokens: {refresh_reuse_grace: 1m}\n":  time.Minute,
		"tokens: {refresh_ttl: 1h}\n":          2 * time.Second,
		"tokens: {refresh_reuse_grace: 500ms}": 500 * time.Millisecond,
	} {
		cfg, err := LoadConfig(write(t, body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if got := cfg.RefreshConfig().ReuseGrace; got != want {
			t.Errorf("%q: grace %s, want %s", body, got, want)
		}
	}
	for _, body := range []string{"tokens: {refresh_reuse_grace: -1s}\n", "tokens: {refresh_reuse_grace: 61s}\n"} {
		cfg, err := LoadConfig(write(t, body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		err = cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "tokens.refresh_reuse_grace") {
			t.Errorf("%q: Validate = %v, want a tokens.refresh_reuse_grace error", body, err)
		} else if strings.Count(err.Error(), "grace") != 1 {
			t.Errorf("%q: the problem is reported more than once: %v", body, err)
		}
	}
}

func TestReplicaSection(t *testing.T) {
	cfg, err := LoadConfig(write(t, "replica: {poll_interval: 500ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Replica.PollInterval != 500*time.Millisecond || cfg.Replica.StaleAfter != 30*time.Second {
		t.Fatalf("replica = %+v, want the poll set and the default staleness bound", cfg.Replica)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(write(t, "replica: {poll_interval: 10s, stale_after: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "replica.stale_after") {
		t.Fatalf("stale_after below the poll: err = %v", err)
	}
	if _, err := LoadConfig(write(t, "replica: {poll: 1s}\n")); err == nil {
		t.Fatal("an unknown replica key was accepted")
	}
}

func TestStoreSetting(t *testing.T) {
	for _, ok := range []string{"", "bolt", "redis://h:6379/0", "rediss://u:p@h:1", "redis+sentinel://a:1,b:2/mymaster", "redis+cluster://a:1,b:2,c:3", "redis://h:1?key_prefix=prod:"} {
		c := DefaultConfig()
		c.Store = ok
		if err := c.Validate(); err != nil {
			t.Errorf("store %q: %v", ok, err)
		}
		if got := c.UsesRedis(); got != (ok != "" && ok != "bolt") {
			t.Errorf("store %q: UsesRedis = %v", ok, got)
		}
	}
	for _, bad := range []string{"Bolt", "/var/lib/verdict", "http://h:1", "redis://u:s3cret@h:1/x", "redis+sentinel://h:1", "redis://h:1?key_prefix={x}", "redis://h:1?nosuch=1"} {
		c := DefaultConfig()
		c.Store = bad
		err := c.Validate()
		if err == nil {
			t.Errorf("store %q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("store %q: the error shows the password: %v", bad, err)
		}
	}
}

func TestStoreFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(p, []byte("store: redis+cluster://a:1,b:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store != "redis+cluster://a:1,b:2" || !cfg.UsesRedis() {
		t.Fatalf("store = %q", cfg.Store)
	}
}

func TestForwardAuthSection(t *testing.T) {
	cfg, err := LoadConfig("../../policies/gateway-example/verdict.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the gateway example's config: %v", err)
	}
	if len(cfg.ForwardAuth.Routes) != 3 || cfg.ForwardAuth.EnvoyPrefix != "/v1/forward-auth/envoy" {
		t.Fatalf("forward_auth: %+v", cfg.ForwardAuth)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "verdict.yaml")
	if err := os.WriteFile(file, []byte("forward_auth:\n  openapi: api.yaml\n  trusted_proxies: [\"300.1.1.1\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ForwardAuth.OpenAPI != filepath.Join(dir, "api.yaml") {
		t.Fatalf("openapi path not resolved against the file: %q", cfg.ForwardAuth.OpenAPI)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "forward_auth.trusted_proxies") {
		t.Fatalf("a bad proxy address: %v", err)
	}
}

// TestOperationsExampleLoads loads the complete verdict.yaml of
// docs/operations.md: every key it shows exists, with its default.
func TestOperationsExampleLoads(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "A complete `verdict.yaml`")
	if !ok {
		t.Fatal("docs/operations.md has no complete verdict.yaml")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	p := filepath.Join(t.TempDir(), "verdict.yaml")
	if err := os.WriteFile(p, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	want := DefaultConfig().DecisionLogs
	if got := cfg.DecisionLogs; got.Sink != want.Sink || got.Buffer != want.Buffer || got.History != want.History ||
		strings.Join(got.Redact, ",") != strings.Join(want.Redact, ",") || strings.Join(got.TokenClaims, ",") != strings.Join(want.TokenClaims, ",") {
		t.Errorf("decision_logs of the example %+v, want the defaults %+v", got, want)
	}
	if !strings.Contains(block, "decision_logs:") {
		t.Error("the example lacks decision_logs")
	}
	if err := cfg.Telemetry.Validate(); err != nil || cfg.Telemetry != telemetry.Default() {
		t.Errorf("telemetry of the example %+v (%v), want the defaults it documents", cfg.Telemetry, err)
	}
}

func TestDecisionLogsConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "verdict.yaml")
	writeCfg := func(body string) {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("decision_logs: {sink: file, path: logs/d.log, sample_ratio: 0.5}\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(p), "logs", "d.log"); cfg.DecisionLogs.Path != want || cfg.DecisionLogs.SampleRatio != 0.5 {
		t.Errorf("decision_logs %+v, want the path relative to the file (%s)", cfg.DecisionLogs, want)
	}
	writeCfg("decision_logs: {sink: kafka, redact: [/nope]}\n")
	cfg, err = LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "decision_logs.sink") || !strings.Contains(err.Error(), "decision_logs.redact") {
		t.Errorf("Validate() = %v, want both decision_logs problems", err)
	}
}

// TestDevOnlyOnLoopback: dev mode (unsigned bundles, decide without a
// caller token) is refused on any address but a loopback one.
func TestDevOnlyOnLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8700": true, "[::1]:8700": true, "localhost:8700": true,
		"0.0.0.0:8700": false, ":8700": false, "10.1.2.3:8700": false, "[::]:8700": false,
	} {
		cfg := DefaultConfig()
		cfg.Dev = true
		cfg.Server.Addr = addr
		err := cfg.Validate()
		if ok && err != nil {
			t.Errorf("dev on %s: %v", addr, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "dev: only on a loopback server.addr")) {
			t.Errorf("dev on %s: %v, want a refusal", addr, err)
		}
		cfg.Dev = false
		if err := cfg.Validate(); err != nil {
			t.Errorf("without dev on %s: %v", addr, err)
		}
	}
}

// TestEnvNamesAreUnique: the environment rule (VERDICT_ and the key path
// upper-cased, dots as underscores) names each key of the configuration
// by one variable, and no two keys by the same one.
func TestEnvNamesAreUnique(t *testing.T) {
	names, err := config.EnvNames(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VERDICT_SERVER_ADDR", "VERDICT_FORWARD_AUTH_SHARED_SECRET", "VERDICT_BUNDLES_ACKNOWLEDGE_UNSIGNED", "VERDICT_TELEMETRY_TRACES_ENDPOINT"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s is not a configuration variable", want)
		}
	}
}

// TestLoadConfigEnv: variables over the file, relative paths of the file
// resolved against it and those of the environment left as given.
func TestLoadConfigEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(p, []byte("data_dir: state\nbundles: [b1]\nserver: {addr: 127.0.0.1:1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigEnv(p, []string{"VERDICT_SERVER_ADDR=127.0.0.1:2", "VERDICT_BUNDLES_PATHS=[rel/b2]"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:2" || cfg.DataDir != filepath.Join(dir, "state") || len(cfg.Bundles.Paths) != 1 || cfg.Bundles.Paths[0] != "rel/b2" {
		t.Errorf("got addr %s, data_dir %s, bundles %v", cfg.Server.Addr, cfg.DataDir, cfg.Bundles.Paths)
	}
	if _, err := LoadConfigEnv("", []string{"VERDICT_SERVER_MAX_BATCH=many"}); err == nil || !strings.Contains(err.Error(), "VERDICT_SERVER_MAX_BATCH") {
		t.Errorf("a bad variable without a file: %v", err)
	}
}
