package app

// The configuration of `verdict serve`: each section is owned by the
// package it configures (server.Config, bundles.Limits, authn.KeyConfig,
// replica.Config, ...); Config composes them, LoadConfig reads the file
// over DefaultConfig through internal/config, and Validate joins every
// section's problems.

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/oauth"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/decisionlog"
	"github.com/verdictpdp/verdict/internal/replica"
	"github.com/verdictpdp/verdict/internal/telemetry"
	"github.com/verdictpdp/verdict/server"
	redisstore "github.com/verdictpdp/verdict/store/redis"
	"github.com/verdictpdp/verdict/users"
)

// Config is the whole configuration of `verdict serve`.
type Config struct {
	// DataDir is where durable state lives: the embedded store and the
	// pepper, unless Store names a Redis.
	DataDir string `yaml:"data_dir"`
	// Store is where the durable state of several replicas is shared: empty
	// or "bolt" for the embedded store in DataDir, or a Redis URL
	// (redis://, rediss://, redis+sentinel://, redis+cluster://; see
	// docs/operations.md "Redis store").
	Store string `yaml:"store"`
	// Dev marks a local developer setup; it is announced loudly at start.
	Dev bool `yaml:"dev"`
	// Bundles says which bundles are served and how they are trusted.
	Bundles Bundles `yaml:"bundles"`
	// Server configures the HTTP listener and the decision cache.
	Server server.Config `yaml:"server"`
	// Engine bounds every evaluation.
	Engine engine.Limits `yaml:"engine"`
	// BundleLimits bound what a bundle may hold.
	BundleLimits bundles.Limits `yaml:"bundle_limits"`
	// SkipBundleTests activates bundles without running their test cases.
	SkipBundleTests bool `yaml:"skip_bundle_tests"`
	// Keys configures the signing keys of the token service.
	Keys authn.KeyConfig `yaml:"keys"`
	// Tokens configures the access tokens the token service issues.
	Tokens Tokens `yaml:"tokens"`
	// Log configures logging.
	Log config.Log `yaml:"log"`
	// Replica configures how a replica follows a shared store (Redis):
	// the poll that repairs lost announcements and the staleness bound of
	// readiness. Unused with the embedded store.
	Replica replica.Config `yaml:"replica"`
	// ForwardAuth configures /v1/forward-auth, the route of gateways that
	// ask before they proxy: trusted proxies, the route table and the
	// headers in and out (docs/gateways.md).
	ForwardAuth forward.Config `yaml:"forward_auth"`
	// DecisionLogs configures the decision log: its sink (none, stdout or
	// a rotated file), redaction, sampling, buffer and the history of
	// inputs previews decide (docs/operations.md "Decision logs").
	DecisionLogs decisionlog.Config `yaml:"decision_logs"`
	// Telemetry configures OpenTelemetry traces: the exporter (none by
	// default), its endpoint, the sample ratio and the service name
	// (docs/operations.md "Traces").
	Telemetry telemetry.Config `yaml:"telemetry"`
	// Users configures people who sign in: password hashing and rules,
	// lockout, sessions, MFA and audit retention (docs/users.md).
	Users users.Config `yaml:"users"`
	// APIKeys tunes API keys: how long a replica trusts a key record it
	// read, the default rotation overlap and the longest lifetime
	// (docs/apikeys.md).
	APIKeys apikeys.Config `yaml:"apikeys"`
}

// Bundles is the bundles section. In the file it is either a list of paths
// (the short form) or a mapping with the keys below.
type Bundles struct {
	// Paths are bundle directories or .tar.gz files served together,
	// combined deny-overrides. With none, serve activates the revision last
	// activated through the bundle API (kept in the store).
	Paths []string `yaml:"paths"`
	// RequireSignature rejects every bundle, from disk or pushed, without a
	// valid .signatures.json made with one of Keys. Unset means true, or
	// false under dev.
	RequireSignature *bool `yaml:"require_signature"`
	// Keys are the public keys bundle signatures are verified with, by key
	// id (the kid of a signature). A bundle that carries a .signatures.json
	// is verified against them whenever one is set, required or not.
	Keys map[string]bundles.VerificationKey `yaml:"keys"`
	// ExcludeFiles are path patterns (path.Match) of bundle files a
	// signature need not list, as OPA's exclude_files.
	ExcludeFiles []string `yaml:"exclude_files"`
	// AcknowledgeUnsigned must be true for RequireSignature: false outside
	// dev: serving unsigned bundles lets whoever can push a bundle or write
	// a bundle path decide every answer, and that is never a default.
	AcknowledgeUnsigned bool `yaml:"acknowledge_unsigned"`
	// Watch reloads directory paths when a file in them changes.
	Watch bool `yaml:"watch"`
	// Schemas says what an input that does not match its resource type's
	// JSON Schema (schemas/<type>.json in a bundle) does: enforce (the
	// default) denies it with reason schema_violation; warn decides normally
	// and logs the violation (and reports it in context.warnings).
	Schemas engine.SchemaMode `yaml:"schemas"`
}

// UnmarshalYAML reads the short form (a list of paths) or the mapping,
// rejecting unknown keys.
func (b *Bundles) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		return n.Decode(&b.Paths)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: bundles must be a list of paths or a mapping", n.Line)
	}
	known := map[string]bool{"paths": true, "require_signature": true, "acknowledge_unsigned": true, "keys": true, "exclude_files": true, "watch": true, "schemas": true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !known[k] {
			return fmt.Errorf("line %d: field %s not found in bundles (paths, require_signature, acknowledge_unsigned, keys, exclude_files, watch, schemas)", n.Content[i].Line, k)
		}
	}
	type plain Bundles
	return n.Decode((*plain)(b))
}

// SignatureRequired reports whether bundles must be signed: the configured
// value, else true outside dev.
func (c Config) SignatureRequired() bool {
	if c.Bundles.RequireSignature != nil {
		return *c.Bundles.RequireSignature
	}
	return !c.Dev
}

// Tokens configures the token service.
type Tokens struct {
	// Issuer is the iss of Verdict's tokens and the base of its metadata
	// URLs; empty means http://<server.addr>.
	Issuer string `yaml:"issuer"`
	// Audience is the aud of Verdict's tokens.
	Audience string `yaml:"audience"`
	// TrustedIssuers are other issuers whose tokens callers may present
	// (OIDC discovery or JWKS URL).
	TrustedIssuers []authn.TrustedIssuer `yaml:"trusted_issuers"`
	// RefreshTTL is the lifetime of a refresh-token family (default 24h).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// RefreshReuseGrace is how long after a refresh the token it replaced
	// is refused without revoking its family: the answer to the loser of
	// two concurrent refreshes of one token. A replay of that token within
	// the grace is refused but not detected as reuse. 0 turns the grace
	// off; at most 1m. Default() has 2s.
	RefreshReuseGrace time.Duration `yaml:"refresh_reuse_grace"`
	// Exchange maps the trusted issuers whose tokens may be exchanged
	// (RFC 8693) for Verdict tokens; none means token exchange is off.
	Exchange oauth.ExchangeConfig `yaml:"exchange"`
}

// RefreshConfig returns the refresh/revocation configuration.
func (c Config) RefreshConfig() oauth.RefreshConfig {
	rc := oauth.DefaultRefreshConfig()
	ic := c.IssuerConfig()
	rc.Issuer = ic.Issuer
	rc.AccessTokenTTL = ic.AccessTokenTTL
	if c.Tokens.RefreshTTL > 0 {
		rc.RefreshTTL = c.Tokens.RefreshTTL
	}
	// An out-of-range grace is reported once, by Validate, under its key.
	if validGrace(c.Tokens.RefreshReuseGrace) {
		rc.ReuseGrace = c.Tokens.RefreshReuseGrace
	}
	return rc
}

// AssertionConfig returns the private_key_jwt configuration: assertions for
// this server's token endpoint or issuer.
func (c Config) AssertionConfig() oauth.AssertionConfig {
	ac := oauth.DefaultAssertionConfig()
	ic := c.IssuerConfig()
	ac.Issuer = ic.Issuer
	ac.TokenEndpoint = ic.Issuer + "/oauth2/token"
	if c.Keys.ClockSkew > 0 {
		ac.ClockSkew = c.Keys.ClockSkew
	}
	return ac
}

// VerifierConfig returns the caller-token verifier's configuration: Verdict
// itself plus the trusted issuers, with keys.clock_skew.
func (c Config) VerifierConfig() authn.VerifierConfig {
	ic := c.IssuerConfig()
	vc := authn.DefaultVerifierConfig()
	vc.Self = authn.TrustedIssuer{Issuer: ic.Issuer, Audiences: []string{ic.Audience}}
	vc.External = c.Tokens.TrustedIssuers
	if c.Keys.ClockSkew > 0 {
		vc.ClockSkew = c.Keys.ClockSkew
	}
	return vc
}

// IssuerConfig returns the token issuer's configuration: the lifetime is
// keys.access_token_ttl, which the key rotation schedule is built on.
func (c Config) IssuerConfig() oauth.IssuerConfig {
	iss := c.Tokens.Issuer
	if iss == "" && c.Server.TLS.Enabled() {
		iss = "https://" + c.Server.Addr
	} else if iss == "" {
		iss = "http://" + c.Server.Addr
	}
	ttl := c.Keys.AccessTokenTTL
	if ttl == 0 {
		ttl = authn.DefaultKeyConfig().AccessTokenTTL
	}
	return oauth.IssuerConfig{Issuer: strings.TrimSuffix(iss, "/"), Audience: c.Tokens.Audience, AccessTokenTTL: ttl}
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		DataDir:      "./verdict-data",
		Server:       server.DefaultConfig(),
		Engine:       engine.DefaultLimits(),
		BundleLimits: bundles.DefaultLimits(),
		Keys:         authn.DefaultKeyConfig(),
		Tokens:       Tokens{Audience: "verdict", RefreshReuseGrace: oauth.DefaultRefreshReuseGrace},
		Log:          config.DefaultLog(),
		Replica:      replica.Default(),
		ForwardAuth:  forward.DefaultConfig(),
		DecisionLogs: decisionlog.Default(),
		Telemetry:    telemetry.Default(),
		Users:        users.Default(),
	}
}

// LoadConfig is LoadConfigEnv with the process's environment.
func LoadConfig(path string) (Config, error) {
	return LoadConfigEnv(path, os.Environ())
}

// LoadConfigEnv reads the YAML file at path over the defaults, then the
// VERDICT_ variables of environ over both (config.Env: VERDICT_ and the
// key path upper-cased, dots as underscores). An empty path reads no file.
// Unknown keys and malformed values are errors naming the line or the
// variable. Relative bundle paths, key files, the decision-log path, the
// forward-auth OpenAPI document, TLS and CA files and a data_dir set in the file are resolved
// against the file's directory; those set in the environment against the
// working directory.
func LoadConfigEnv(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, config.Env(environ, &cfg)
	}
	f, err := config.Read(path, &cfg)
	if err != nil {
		return cfg, err
	}
	// Paths in the file are relative to the file, so that it works from any
	// working directory.
	for i := range cfg.Bundles.Paths {
		f.Resolve(&cfg.Bundles.Paths[i])
	}
	for kid, k := range cfg.Bundles.Keys {
		f.Resolve(&k.KeyFile)
		cfg.Bundles.Keys[kid] = k
	}
	for _, p := range []*string{&cfg.Server.TLS.CertFile, &cfg.Server.TLS.KeyFile, &cfg.Server.TLS.ClientCAFile} {
		f.Resolve(p)
	}
	f.Resolve(&cfg.DecisionLogs.Path)
	dh := &cfg.DecisionLogs.HTTP
	for _, p := range []*string{&dh.BearerTokenFile, &dh.TLS.CAFile, &dh.TLS.CertFile, &dh.TLS.KeyFile} {
		f.Resolve(p)
	}
	f.Resolve(&cfg.ForwardAuth.OpenAPI)
	for i := range cfg.Tokens.TrustedIssuers {
		f.Resolve(&cfg.Tokens.TrustedIssuers[i].CAFile)
	}
	f.Resolve(&cfg.Telemetry.Traces.CAFile)
	f.Resolve(&cfg.Users.Passwords.BreachedFile)
	if f.Has("data_dir") {
		f.Resolve(&cfg.DataDir)
	}
	return cfg, config.Env(environ, &cfg)
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.DataDir) == "" {
		errs = append(errs, errors.New("data_dir must not be empty"))
	}
	if err := ValidateStore(c.Store); err != nil {
		errs = append(errs, err)
	}
	if c.Dev && !loopbackAddr(c.Server.Addr) {
		errs = append(errs, fmt.Errorf("dev: only on a loopback server.addr (127.0.0.1, ::1, localhost), not %q: dev mode trusts unsigned bundles and is for one developer's machine", c.Server.Addr))
	}
	if c.Dev && c.Server.GRPCAddr != "" && !loopbackAddr(c.Server.GRPCAddr) {
		errs = append(errs, fmt.Errorf("dev: only on a loopback server.grpc_addr, not %q: dev mode answers decisions without a caller token", c.Server.GRPCAddr))
	}
	errs = append(errs, c.Log.Validate())
	errs = append(errs, c.Server.Validate(), c.Engine.Validate(), c.BundleLimits.Validate(), c.Keys.Validate(), c.IssuerConfig().Validate(), c.VerifierConfig().Validate(),
		c.RefreshConfig().Validate(), c.AssertionConfig().Validate(), c.Users.Validate(), c.APIKeys.Validate())
	if err := c.Bundles.Schemas.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("bundles.schemas: %w", err))
	}
	if c.Tokens.RefreshTTL < 0 {
		errs = append(errs, errors.New("tokens.refresh_ttl must not be negative (0 means 24h)"))
	}
	if !validGrace(c.Tokens.RefreshReuseGrace) {
		errs = append(errs, fmt.Errorf("tokens.refresh_reuse_grace must be between 0s (off) and %s, got %s", oauth.MaxRefreshReuseGrace, c.Tokens.RefreshReuseGrace))
	}
	if len(c.Tokens.Exchange.Mappings) > 0 {
		errs = append(errs, c.Tokens.Exchange.Validate(c.IssuerConfig().Issuer))
	}
	errs = append(errs, c.Bundles.validate(), c.Replica.Validate(), c.ForwardAuth.Validate(), c.DecisionLogs.Validate(), c.Telemetry.Validate())
	return errors.Join(errs...)
}

// MinSharedSecret is the shortest forward_auth.shared_secret accepted
// outside dev, in bytes (e.g. 32 random bytes, or `openssl rand -hex 32`).
const MinSharedSecret = 32

// ValidateServe is Validate and, outside dev, the refusals of a server
// that would run insecurely: what a production start must never default
// silently. `verdict serve` and `verdict config validate` check it; the
// local tools (bundle test, decide, ...) only Validate.
func (c Config) ValidateServe() error {
	err := c.Validate()
	if c.Dev {
		return err
	}
	errs := []error{err}
	if c.Tokens.Issuer == "" && !loopbackAddr(c.Server.Addr) {
		errs = append(errs, fmt.Errorf("tokens.issuer must be set when server.addr (%s) is not a loopback address: it is the iss of every token and the base of the metadata URLs, and callers do not reach a server at its listen address", c.Server.Addr))
	}
	switch {
	case c.SignatureRequired() && len(c.Bundles.Keys) == 0:
		errs = append(errs, errors.New("bundles.keys: bundle signatures are required (bundles.require_signature, the default outside dev) but no key is configured, so no bundle could ever be activated: "+
			"configure the signer's public key under bundles.keys.<key id> (docs/policies.md, Signing bundles), or serve unsigned bundles with bundles.require_signature: false and bundles.acknowledge_unsigned: true"))
	case !c.SignatureRequired() && !c.Bundles.AcknowledgeUnsigned:
		errs = append(errs, errors.New("bundles.require_signature: false needs bundles.acknowledge_unsigned: true outside dev: without signatures, whoever can push a bundle or write a bundle path decides every answer"))
	}
	if s := c.ForwardAuth.SharedSecret; s != "" && len(s) < MinSharedSecret {
		errs = append(errs, fmt.Errorf("forward_auth.shared_secret is too weak: %d bytes, at least %d outside dev (e.g. openssl rand -hex 32)", len(s), MinSharedSecret))
	}
	return errors.Join(errs...)
}

// StoreBolt is the Store value that names the embedded store (as does
// the empty string).
const StoreBolt = "bolt"

// UsesRedis reports whether c's Store names a Redis rather than the
// embedded store.
func (c Config) UsesRedis() bool { return c.Store != "" && c.Store != StoreBolt }

// ValidateStore checks a store setting: empty, "bolt", or a Redis URL that
// parses. The error never contains the URL's password.
func ValidateStore(s string) error {
	if s == "" || s == StoreBolt {
		return nil
	}
	if !redisstore.IsURL(s) {
		return fmt.Errorf("store must be %q (the embedded default) or a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL, got %q", StoreBolt, redactStore(s))
	}
	if err := redisstore.Validate(s); err != nil {
		return fmt.Errorf("store %s: %w", redisstore.Redact(s), err)
	}
	return nil
}

// Masked is what Render prints instead of a secret.
const Masked = "********"

// Render writes c as YAML, as a configuration file would hold it, with
// secrets masked: forward_auth.shared_secret and the password of a store
// URL. `verdict config print` prints it.
func (c Config) Render() ([]byte, error) {
	return config.Render(c, func(path, v string) string {
		switch {
		case path == "forward_auth.shared_secret" && v != "":
			return Masked
		case path == "store":
			return redactStore(v)
		}
		return v
	})
}

// redactStore shows a store value in an error: a URL without its password,
// anything else as it is (it has no userinfo to leak).
func redactStore(s string) string {
	if strings.Contains(s, "://") {
		return redisstore.Redact(s)
	}
	return s
}

// validate loads every bundle key (reading key_file, parsing the PEM), so
// that a bad key stops the start rather than every bundle.
func (b Bundles) validate() error {
	var errs []error
	kids := make([]string, 0, len(b.Keys))
	for kid := range b.Keys {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	for _, kid := range kids {
		if strings.TrimSpace(kid) == "" {
			errs = append(errs, errors.New("bundles.keys: a key id must not be empty"))
			continue
		}
		if err := b.Keys[kid].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("bundles.keys.%s: %w", kid, err))
		}
	}
	for _, p := range b.ExcludeFiles {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("bundles.exclude_files: pattern %q: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func validGrace(d time.Duration) bool { return d >= 0 && d <= oauth.MaxRefreshReuseGrace }

// BundleConfig returns the bundle manager's configuration.
func (c Config) BundleConfig() bundles.Config {
	return bundles.Config{Limits: c.BundleLimits, Engine: c.Engine, SkipTests: c.SkipBundleTests,
		Signing:    bundles.SigningConfig{Required: c.SignatureRequired(), Keys: c.Bundles.Keys, Exclude: c.Bundles.ExcludeFiles},
		SchemaMode: c.Bundles.Schemas}
}
