package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/pemutil"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Errors Verify returns; callers branch on them with errors.Is.
var (
	// ErrInvalidToken is wrapped by every rejection of the token itself:
	// malformed, badly signed, expired, wrong issuer or audience, revoked.
	// The server answers 401 invalid_token. The message after it names the
	// reason (never the token): it quotes at most a few truncated fields of
	// the caller's own token and public facts about the keys (as published
	// in the JWKS), so it is safe to log and to show the caller, as RFC 6750
	// error_description does.
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable means the token could not be checked: the revocation
	// store failed, an issuer's keys could not be fetched yet, the caller's
	// context ended, or the Verifier is closed. The server answers 503; the
	// token is not accepted (fail closed).
	ErrUnavailable = errors.New("token verification unavailable")
)

// Limits and defaults of token verification.
const (
	// DefaultMaxTokenBytes is the default size limit of a token.
	DefaultMaxTokenBytes = 8 << 10
	// TypAccessToken is the typ of Verdict's own access tokens (RFC 9068).
	TypAccessToken = "at+jwt"
	// MaxClaimLen bounds a jti (it keys caches and the store) and the
	// subject of an exchanged token.
	MaxClaimLen = 1024

	maxKIDLen      = 256
	maxFetchBytes  = 1 << 20      // JWKS and discovery documents
	maxJSONDepth   = 32           // nesting of header and claims
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
	maxJWKSKeys    = 100
)

// algSpec is what a signature algorithm needs of its key.
type algSpec struct {
	sa  jwa.SignatureAlgorithm
	kty string // jwa key type name
	crv string // curve name, "" for RSA
}

// allowedAlgs is the allow-list of token algorithms. HS* are absent on
// purpose: a public key must never serve as an HMAC secret.
var allowedAlgs = map[string]algSpec{
	"ES256": {jwa.ES256(), "EC", "P-256"},
	"ES384": {jwa.ES384(), "EC", "P-384"},
	"EdDSA": {jwa.EdDSA(), "OKP", "Ed25519"},
	"RS256": {jwa.RS256(), "RSA", ""},
	"PS256": {jwa.PS256(), "RSA", ""},
}

// VerifiableAlgs lists, sorted, the JWS algorithms Verdict verifies (in
// caller tokens and private_key_jwt client assertions), for metadata.
func VerifiableAlgs() []string {
	algs := make([]string, 0, len(allowedAlgs))
	for a := range allowedAlgs {
		algs = append(algs, a)
	}
	slices.Sort(algs)
	return algs
}

// KeySource gives the public key with a kid, for Verdict's own tokens.
// *Keyring satisfies it. The key must carry its alg; it is not modified.
type KeySource interface {
	PublicKey(kid string) (jwk.Key, bool)
}

var _ KeySource = (*Keyring)(nil)

// RevocationChecker reports whether the access token with a jti (of
// Verdict's own tokens) has been revoked. An error makes Verify fail
// closed with ErrUnavailable.
type RevocationChecker interface {
	Revoked(ctx context.Context, jti string) (bool, error)
}

// TrustedIssuer is one issuer whose tokens are accepted.
type TrustedIssuer struct {
	// Issuer is the exact iss claim value.
	Issuer string `yaml:"issuer"`
	// Audiences are the aud values accepted; a token's aud must contain
	// at least one. Required.
	Audiences []string `yaml:"audiences"`
	// JWKSURL is where the issuer's JWK Set is fetched (external issuers
	// only; exactly one of JWKSURL and DiscoveryURL). https, or http to a
	// loopback host.
	JWKSURL string `yaml:"jwks_url"`
	// DiscoveryURL is the issuer's OpenID Connect discovery document
	// (".../.well-known/openid-configuration"); its issuer must equal
	// Issuer and its jwks_uri gives the JWK Set. Same scheme rules.
	DiscoveryURL string `yaml:"discovery_url"`
	// RequireTyp, when set, is the typ header every token must carry
	// (case-insensitive; "application/" + RequireTyp also matches). For
	// Verdict's own issuer it is always at+jwt: "" means that, and any
	// other value is invalid.
	RequireTyp string `yaml:"require_typ"`
	// KeyAlg is the algorithm assumed for keys in an external JWK Set that
	// name none (some providers omit alg). "" means such keys are unusable.
	KeyAlg string `yaml:"key_alg"`
	// CAFile is a PEM file of CA certificates (external issuers only): the
	// only roots the certificates of this issuer's discovery, JWKS and
	// jwks_uri URLs are verified against, in place of the system roots
	// (for an issuer of a private PKI). "" means the system roots.
	// Certificates are always verified; the file is read when the
	// Verifier is made, and must hold at least one CERTIFICATE.
	CAFile string `yaml:"ca_file"`
	// Scopes, when not empty, are the only scopes this issuer's tokens
	// may grant (external issuers only): a token's other scopes are
	// dropped from its scope claim (scp becomes scope) when it is
	// verified, so that, say, verdict:admin minted at the issuer grants
	// nothing here. Empty: every scope the token carries.
	Scopes []string `yaml:"scopes"`
}

// VerifierConfig configures a Verifier. A zero duration or size means its
// default.
type VerifierConfig struct {
	// Self is Verdict's own issuer: its iss and the audiences its tokens
	// are accepted for. Its keys come from the KeySource, never a URL.
	Self TrustedIssuer `yaml:"self"`
	// External are other trusted issuers, with keys fetched from their
	// JWKS or discovery URL.
	External []TrustedIssuer `yaml:"external"`
	// ClockSkew is the tolerance on exp, nbf and iat. Default 30s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxTokenBytes is the largest token accepted. Default 8192.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// CacheTTL is the longest a verification is reused (never past the
	// token's exp). Default 60s. It is also how long ForgetJTI's local
	// revocation is kept.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize is the number of verified tokens kept. Default 10,000
	// (each holds its decoded claims, up to a few KiB).
	CacheSize int64 `yaml:"cache_size"`
	// JWKSRefreshInterval is the least time between two fetches of one
	// issuer's keys (on an unknown kid, a stale set, or after a failure).
	// Default 1m.
	JWKSRefreshInterval time.Duration `yaml:"jwks_refresh_interval"`
	// JWKSMaxAge is how long a fetched key set is used before it is
	// fetched again; if that fetch fails the old keys stay in use.
	// Default 15m.
	JWKSMaxAge time.Duration `yaml:"jwks_max_age"`
	// FetchTimeout bounds one fetch (discovery and JWKS together).
	// Default 5s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// HTTPClient fetches the JWKS and discovery documents of the issuers
	// without a CAFile. nil means a client of the Verifier's own that
	// follows no redirects and verifies certificates against the system
	// roots. An issuer with a CAFile always gets a client of its own (the
	// same policy, its file as the only roots).
	HTTPClient *http.Client `yaml:"-"`
	// Logger receives key-fetch failures. nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultVerifierConfig returns the defaults (no issuers configured).
func DefaultVerifierConfig() VerifierConfig {
	return VerifierConfig{
		ClockSkew:           30 * time.Second,
		MaxTokenBytes:       DefaultMaxTokenBytes,
		CacheTTL:            60 * time.Second,
		CacheSize:           10_000,
		JWKSRefreshInterval: time.Minute,
		JWKSMaxAge:          15 * time.Minute,
		FetchTimeout:        5 * time.Second,
	}
}

// withDefaults fills the zero fields with their defaults.
func (c VerifierConfig) withDefaults() VerifierConfig {
	d := DefaultVerifierConfig()
	if c.ClockSkew == 0 {
		c.ClockSkew = d.ClockSkew
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = d.MaxTokenBytes
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = d.CacheTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = d.JWKSRefreshInterval
	}
	if c.JWKSMaxAge == 0 {
		c.JWKSMaxAge = d.JWKSMaxAge
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = d.FetchTimeout
	}
	if c.Self.RequireTyp == "" {
		c.Self.RequireTyp = TypAccessToken
	}
	return c
}

// Validate reports every problem in c (zero fields taken as their
// defaults), joined with errors.Join; nil if c is usable.
func (c VerifierConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("verifier: "+format, args...)) }

	if !strings.HasPrefix(c.Self.Issuer, "https://") && !strings.HasPrefix(c.Self.Issuer, "http://") {
		add("self issuer must be an http(s) URL, got %q", c.Self.Issuer)
	}
	if c.Self.JWKSURL != "" || c.Self.DiscoveryURL != "" {
		add("self issuer takes its keys from the key ring, not a URL")
	}
	if !strings.EqualFold(c.Self.RequireTyp, TypAccessToken) {
		add("self issuer typ must be %s, got %q", TypAccessToken, c.Self.RequireTyp)
	}
	if c.Self.KeyAlg != "" {
		add("self issuer key_alg must be empty (its keys carry their alg)")
	}
	if c.Self.CAFile != "" {
		add("self issuer ca_file must be empty (its keys come from the key ring)")
	}
	if len(c.Self.Scopes) > 0 {
		add("self issuer scopes must be empty (Verdict's own tokens carry what their client may have)")
	}
	errs = append(errs, validAudiences("self issuer", c.Self.Audiences)...)

	seen := map[string]bool{c.Self.Issuer: true}
	for i, is := range c.External {
		name := fmt.Sprintf("external issuer %d (%q)", i, is.Issuer)
		switch {
		case is.Issuer == "":
			add("external issuer %d: issuer must not be empty", i)
		case seen[is.Issuer]:
			add("%s is configured twice", name)
		}
		seen[is.Issuer] = true
		errs = append(errs, validAudiences(name, is.Audiences)...)
		switch {
		case (is.JWKSURL == "") == (is.DiscoveryURL == ""):
			add("%s: set exactly one of jwks_url and discovery_url", name)
		case is.JWKSURL != "":
			if err := checkFetchURL(is.JWKSURL); err != nil {
				add("%s: jwks_url: %v", name, err)
			}
		default:
			if err := checkFetchURL(is.DiscoveryURL); err != nil {
				add("%s: discovery_url: %v", name, err)
			}
		}
		if is.KeyAlg != "" {
			if _, ok := allowedAlgs[is.KeyAlg]; !ok {
				add("%s: key_alg %q is not one of %s", name, is.KeyAlg, algNames())
			}
		}
		for _, s := range is.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n") {
				add("tokens.trusted_issuers[%d].scopes: %q is no scope (issuer %q)", i, s, is.Issuer)
			}
		}
		if is.CAFile != "" {
			if _, err := pemutil.LoadCAs(is.CAFile); err != nil {
				// Named by the configuration key: the file is the operator's.
				add("tokens.trusted_issuers[%d].ca_file: %v (issuer %q)", i, err, is.Issuer)
			}
		}
	}

	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		add("clock skew %s is outside 0..5m", c.ClockSkew)
	}
	if c.MaxTokenBytes < 0 || c.MaxTokenBytes > 64<<10 {
		add("max token bytes %d is outside 1..65536", c.MaxTokenBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"cache ttl", c.CacheTTL},
		{"jwks refresh interval", c.JWKSRefreshInterval},
		{"jwks max age", c.JWKSMaxAge},
		{"fetch timeout", c.FetchTimeout},
	} {
		if d.v < 0 {
			add("%s %s is negative", d.name, d.v)
		}
	}
	if c.CacheSize < 0 {
		add("cache size %d is negative", c.CacheSize)
	}
	return errors.Join(errs...)
}

func validAudiences(name string, auds []string) []error {
	if len(auds) == 0 {
		return []error{fmt.Errorf("verifier: %s: audiences must not be empty", name)}
	}
	if slices.Contains(auds, "") {
		return []error{fmt.Errorf("verifier: %s: an audience is empty", name)}
	}
	return nil
}

func algNames() string {
	names := make([]string, 0, len(allowedAlgs))
	for n := range allowedAlgs {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
