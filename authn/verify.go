package authn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/verdictpdp/verdict/cache"
	"github.com/verdictpdp/verdict/internal/strictjson"
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

	maxKIDLen      = 256
	maxClaimStrLen = 1024         // jti length bound (it keys caches and the store)
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
	// HTTPClient fetches the JWKS and discovery documents. nil means a
	// client of the Verifier's own that follows no redirects.
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

// Claims are the claims of a verified token, as JSON decodes them: objects
// are map[string]any, arrays []any, strings string, booleans bool, and
// numbers int64 when written as an integer that fits, float64 otherwise
// (so exp, iat and nbf are normally int64). Claims returned by Verify may
// be shared with other callers (they come from a cache): do not modify
// them. A nil Claims has no claims.
type Claims map[string]any

// Issuer returns iss, or "" if absent.
func (c Claims) Issuer() string { s, _ := c["iss"].(string); return s }

// Subject returns sub, or "" if absent.
func (c Claims) Subject() string { s, _ := c["sub"].(string); return s }

// JTI returns jti, or "" if absent.
func (c Claims) JTI() string { s, _ := c["jti"].(string); return s }

// Audience returns aud as a list (a single string becomes one element);
// nil if absent. Non-string members are skipped.
func (c Claims) Audience() []string { return stringList(c["aud"], false) }

// Scopes returns the scopes from "scope" (space-separated string, RFC
// 9068) or, if absent, "scp" (array of strings, or a space-separated
// string); nil if neither. The slice is new on each call.
func (c Claims) Scopes() []string {
	if v, ok := c["scope"]; ok {
		return stringList(v, true)
	}
	return stringList(c["scp"], true)
}

// Expiry returns exp as a time; the zero time if absent (never for a
// verified token).
func (c Claims) Expiry() time.Time {
	t, ok, valid := numericDate(c, "exp")
	if !ok || !valid {
		return time.Time{}
	}
	return t
}

// stringList turns a string (split on spaces if split) or an array of
// strings into a list.
func stringList(v any, split bool) []string {
	switch v := v.(type) {
	case string:
		if split {
			return strings.Fields(v)
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// numericDate reads an RFC 7519 NumericDate claim. present reports whether
// the claim exists, valid whether it is a number in 0..year 9999.
func numericDate(c Claims, name string) (t time.Time, present, valid bool) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, false, false
	}
	switch n := v.(type) {
	case int64:
		if n < 0 || n > maxNumericDate {
			return time.Time{}, true, false
		}
		return time.Unix(n, 0), true, true
	case float64:
		if math.IsNaN(n) || n < 0 || n > maxNumericDate {
			return time.Time{}, true, false
		}
		sec, frac := math.Modf(n)
		return time.Unix(int64(sec), int64(frac*1e9)), true, true
	}
	return time.Time{}, true, false
}

// Verifier verifies the bearer JWTs callers present: Verdict's own access
// tokens (keys from a KeySource, jti checked against revocation) and
// tokens of configured external issuers (keys from their JWKS). Verified
// tokens are cached by a SHA-256 of the token until their exp or CacheTTL,
// whichever comes first. It is safe for concurrent use; the zero Verifier
// is not usable: use NewVerifier, and Close when done.
type Verifier struct {
	cfg     VerifierConfig
	self    KeySource
	revoked RevocationChecker
	now     func() time.Time
	log     *slog.Logger
	issuers map[string]*trusted

	cache *cache.Cache[[sha256.Size]byte, *verified]
	tombs tombstones

	httpc   *http.Client
	ownHTTP bool
	base    context.Context // ends on Close; parent of every fetch
	cancel  context.CancelFunc
	mu      sync.Mutex // orders Close against starting fetches
	closed  atomic.Bool
	wg      sync.WaitGroup // running fetches
}

// trusted is one configured issuer.
type trusted struct {
	cfg    TrustedIssuer
	self   bool
	remote *remoteKeys // nil for self
}

// verified is one cache entry.
type verified struct {
	claims Claims
	until  time.Time // min(exp, verification start + CacheTTL)
	jti    string    // revocable jti (own tokens), "" otherwise
	kid    string    // signing key of own tokens, "" otherwise
	epoch  uint64    // tombstone epoch when verification started
}

// NewVerifier returns a Verifier. self gives the keys of Verdict's own
// tokens and revoked answers for their jti; both are required. now is the
// clock (nil means time.Now). It fails on an invalid config or a nil
// dependency. No key is fetched until a token needs it.
func NewVerifier(cfg VerifierConfig, self KeySource, revoked RevocationChecker, now func() time.Time) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self == nil {
		return nil, errors.New("verifier: nil key source")
	}
	if revoked == nil {
		return nil, errors.New("verifier: nil revocation checker")
	}
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	v := &Verifier{cfg: cfg, self: self, revoked: revoked, now: now, log: cfg.Logger}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.httpc = cfg.HTTPClient
	if v.httpc == nil {
		v.ownHTTP = true
		v.httpc = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	c, err := cache.New[[sha256.Size]byte, *verified](
		cache.Config{MaxCost: cfg.CacheSize, TTL: cfg.CacheTTL},
		func(k [sha256.Size]byte) uint64 { return binary.LittleEndian.Uint64(k[:8]) },
	)
	if err != nil {
		return nil, fmt.Errorf("verifier: cache: %w", err)
	}
	v.cache = c
	v.tombs.init()
	v.base, v.cancel = context.WithCancel(context.Background())

	v.issuers = map[string]*trusted{cfg.Self.Issuer: {cfg: cfg.Self, self: true}}
	for _, is := range cfg.External {
		v.issuers[is.Issuer] = &trusted{cfg: is, remote: &remoteKeys{cfg: is, v: v}}
	}
	return v, nil
}

// Close stops key fetches in flight, waits for them, and releases the
// cache. Verify then fails with ErrUnavailable. Close is idempotent.
func (v *Verifier) Close() {
	v.mu.Lock()
	if v.closed.Swap(true) {
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
	v.cache.Close()
	if v.ownHTTP {
		v.httpc.CloseIdleConnections()
	}
}

// CacheStats returns the hits and misses of the verification cache so far
// (a hit is a token answered without checking its signature again). It
// never fails; both are 0 when the cache is off.
func (v *Verifier) CacheStats() (hits, misses uint64) { return v.cache.Stats() }

// goFetch runs f in a goroutine that Close waits for; false if closed.
func (v *Verifier) goFetch(f func(ctx context.Context)) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed.Load() {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		f(v.base)
	}()
	return true
}

// invalid returns a rejection wrapping ErrInvalidToken.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// unavailable returns an error wrapping ErrUnavailable and cause.
func unavailable(what string, cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: %s", ErrUnavailable, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, cause)
}

// short quotes an untrusted value for an error message, truncated.
func short(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}

// Verify checks token (the compact JWS after "Bearer ") and returns its
// claims. Every rejection of the token wraps ErrInvalidToken; a failure to
// check it (revocation store, key fetch, ctx, closed) wraps
// ErrUnavailable. The token never appears in an error. A cached
// verification is reused without calling the RevocationChecker, but a jti
// passed to ForgetJTI is rejected at once.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if v.closed.Load() {
		return nil, unavailable("verifier closed", nil)
	}
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, invalid("token is %d bytes, over the %d-byte limit", len(token), v.cfg.MaxTokenBytes)
	}
	// Order matters for ForgetJTI/Forget: read the clock, then the epoch.
	start := v.now()
	epoch := v.tombs.epoch.Load()
	key := sha256.Sum256([]byte(token))

	if e, ok := v.cache.Get(key); ok && start.Before(e.until) {
		// An emergency key revoke must stop the key's tokens at once,
		// cached or not: the key ring answers from memory.
		if e.kid != "" {
			if _, ok := v.self.PublicKey(e.kid); !ok {
				v.cache.Del(key)
				return nil, invalid("unknown key id %s", short(e.kid))
			}
		}
		switch v.tombs.check(key, e) {
		case tombNone:
			return e.claims, nil
		case tombRevoked:
			return nil, invalid("token revoked")
		}
		// tombForgotten: verify again.
	}

	claims, tr, kid, exp, err := v.verify(ctx, token, start)
	if err != nil {
		return nil, err
	}
	e := &verified{claims: claims, epoch: epoch, until: exp}
	if limit := start.Add(v.cfg.CacheTTL); limit.Before(e.until) {
		e.until = limit
	}
	if tr.self {
		e.jti = claims.JTI()
		e.kid = kid
	}
	if start.Before(e.until) {
		v.cache.Set(key, e)
	}
	return claims, nil
}

// Forget drops the cached verification of token: the next Verify of it
// checks everything again, revocation included. It never fails.
func (v *Verifier) Forget(token string) {
	v.tombs.add(v, sha256.Sum256([]byte(token)), "")
}

// ForgetJTI makes this Verifier reject Verdict's own tokens with jti at
// once, cached or not, for CacheTTL; by then no cached verification of
// them is left and the RevocationChecker (which must already know of the
// revocation) answers. It never fails; an empty jti is ignored.
func (v *Verifier) ForgetJTI(jti string) {
	if jti != "" {
		v.tombs.add(v, [sha256.Size]byte{}, jti)
	}
}

// ForgetAll drops every cached verification at once: the next Verify of
// any token checks everything again, revocation included, against the
// RevocationChecker. A replica calls it when it may have missed
// revocations (a gap in a shared store's announcements). It never fails.
func (v *Verifier) ForgetAll() {
	v.tombs.forgetAll()
}

// verify does the full check of a token not served from the cache. It
// returns the claims, the issuer, the key id and the expiry.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Claims, *trusted, string, time.Time, error) {
	fail := func(err error) (Claims, *trusted, string, time.Time, error) { return nil, nil, "", time.Time{}, err }

	hdr, claims, payload, err := parseToken(token)
	if err != nil {
		return fail(err)
	}

	// The unverified iss only chooses the key set.
	iss, ok := claims["iss"].(string)
	if !ok {
		return fail(invalid("iss claim missing or not a string"))
	}
	tr := v.issuers[iss]
	if tr == nil {
		return fail(invalid("untrusted issuer %s", short(iss)))
	}

	if want := tr.cfg.RequireTyp; want != "" {
		if !hdr.hasTyp {
			return fail(invalid("typ header missing, want %s", want))
		}
		if !strings.EqualFold(hdr.typ, want) && !strings.EqualFold(hdr.typ, "application/"+want) {
			return fail(invalid("typ %s is not %s", short(hdr.typ), want))
		}
	}

	var pk pinnedKey
	if tr.self {
		k, ok := v.self.PublicKey(hdr.kid)
		if !ok {
			return fail(invalid("unknown key id %s", short(hdr.kid)))
		}
		if pk, err = pinKey(k, ""); err != nil {
			return fail(invalid("key %s: %v", short(hdr.kid), err))
		}
	} else if pk, err = tr.remote.key(ctx, hdr.kid); err != nil {
		return fail(err)
	}
	if pk.alg != hdr.alg {
		return fail(invalid("alg %s does not match alg %s pinned to key %s", short(hdr.alg), pk.alg, short(hdr.kid)))
	}

	got, err := jws.Verify([]byte(token),
		jws.WithCompact(),
		jws.WithKey(pk.spec.sa, pk.key),
		jws.WithAlgorithmMatch(true),
		jws.WithCritValidation(true),
		jws.WithContext(ctx),
	)
	if err != nil {
		if ctx.Err() != nil {
			return fail(unavailable("verify", ctx.Err()))
		}
		return fail(invalid("signature verification failed"))
	}
	if !bytes.Equal(got, payload) {
		return fail(invalid("signature verification failed: payload mismatch"))
	}

	exp, err := v.checkClaims(claims, tr, now)
	if err != nil {
		return fail(err)
	}

	if tr.self {
		jti := claims.JTI()
		revoked, err := v.revoked.Revoked(ctx, jti)
		if err != nil {
			return fail(unavailable("revocation check", err))
		}
		if revoked || v.tombs.jtiRevoked(jti) {
			return fail(invalid("token revoked"))
		}
	}
	return claims, tr, hdr.kid, exp, nil
}

// checkClaims checks the registered claims of a signature-verified token
// and returns its expiry.
func (v *Verifier) checkClaims(c Claims, tr *trusted, now time.Time) (time.Time, error) {
	skew := v.cfg.ClockSkew
	// The issuer was chosen by this very claim, so this cannot fail today;
	// it keeps "iss is checked after the signature" true if selection
	// ever changes.
	if c.Issuer() != tr.cfg.Issuer {
		return time.Time{}, invalid("wrong issuer")
	}
	exp, _, problem := checkTimes(c, now, skew, "token")
	if problem != "" {
		return time.Time{}, invalid("%s", problem)
	}
	aud, ok := c["aud"]
	if !ok {
		return time.Time{}, invalid("aud claim missing")
	}
	if !slices.ContainsFunc(stringList(aud, false), func(a string) bool { return slices.Contains(tr.cfg.Audiences, a) }) {
		return time.Time{}, invalid("aud does not name an accepted audience")
	}
	for _, name := range []string{"sub", "jti"} {
		if x, ok := c[name]; ok {
			if _, isStr := x.(string); !isStr {
				return time.Time{}, invalid("%s claim is not a string", name)
			}
		}
	}
	if tr.self {
		jti := c.JTI()
		if jti == "" {
			return time.Time{}, invalid("jti claim missing")
		}
		if len(jti) > maxClaimStrLen {
			return time.Time{}, invalid("jti claim too long")
		}
	}
	return exp, nil
}

// header is what Verify uses of the protected header.
type header struct {
	alg, kid, typ string
	hasTyp        bool
}

// b64 is strict base64url without padding.
var b64 = base64.RawURLEncoding.Strict()

// parseToken parses a compact JWS strictly, before any crypto: exactly
// three non-empty base64url parts, a header and a payload that are JSON
// objects without duplicate names, and a header Verdict accepts.
func parseToken(token string) (header, Claims, []byte, error) {
	var h header
	if token == "" {
		return h, nil, nil, invalid("empty token")
	}
	if token[0] == '{' {
		return h, nil, nil, invalid("JSON serialization is not accepted")
	}
	switch strings.Count(token, ".") {
	case 2:
	case 4:
		return h, nil, nil, invalid("JWE is not accepted")
	default:
		return h, nil, nil, invalid("malformed: not three dot-separated parts")
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return h, nil, nil, invalid("malformed: not base64url")
		}
	}
	p1, rest, _ := strings.Cut(token, ".")
	p2, p3, _ := strings.Cut(rest, ".")
	switch {
	case p1 == "":
		return h, nil, nil, invalid("malformed: empty header")
	case p2 == "":
		return h, nil, nil, invalid("malformed: empty payload")
	case p3 == "":
		return h, nil, nil, invalid("missing signature")
	}

	hb, err := b64.DecodeString(p1)
	if err != nil {
		return h, nil, nil, invalid("malformed header: bad base64url")
	}
	hm, err := decodeObject(hb)
	if err != nil {
		return h, nil, nil, invalid("malformed header: %v", err)
	}
	if h, err = checkHeader(hm); err != nil {
		return h, nil, nil, err
	}

	payload, err := b64.DecodeString(p2)
	if err != nil {
		return h, nil, nil, invalid("malformed payload: bad base64url")
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return h, nil, nil, invalid("malformed payload: %v", err)
	}
	return h, Claims(claims), payload, nil
}

// checkHeader applies the header policy.
func checkHeader(m map[string]any) (header, error) {
	var h header
	for _, name := range []string{"jku", "x5u", "x5c", "jwk"} {
		if _, ok := m[name]; ok {
			return h, invalid("%s header is not accepted", name)
		}
	}
	if _, ok := m["crit"]; ok {
		return h, invalid("crit header is not accepted: no extension is understood")
	}
	if _, ok := m["enc"]; ok {
		return h, invalid("JWE is not accepted")
	}
	for _, name := range []string{"b64", "zip"} {
		if _, ok := m[name]; ok {
			return h, invalid("%s header is not accepted", name)
		}
	}
	if cty, ok := m["cty"]; ok {
		if s, _ := cty.(string); strings.EqualFold(s, "JWT") {
			return h, invalid("nested JWT is not accepted")
		}
		return h, invalid("cty header is not accepted")
	}

	a, ok := m["alg"]
	if !ok {
		return h, invalid("alg header missing")
	}
	alg, ok := a.(string)
	switch {
	case !ok:
		return h, invalid("alg header is not a string")
	case strings.EqualFold(alg, "none"):
		return h, invalid("alg \"none\" is not allowed")
	}
	if _, ok := allowedAlgs[alg]; !ok {
		return h, invalid("alg %s is not allowed", short(alg))
	}
	h.alg = alg

	k, ok := m["kid"]
	if !ok {
		return h, invalid("kid header missing")
	}
	if h.kid, ok = k.(string); !ok {
		return h, invalid("kid header is not a string")
	}
	if err := checkKID(h.kid); err != nil {
		return h, invalid("kid %v", err)
	}

	if t, ok := m["typ"]; ok {
		if h.typ, ok = t.(string); !ok {
			return h, invalid("typ header is not a string")
		}
		h.hasTyp = true
	}
	return h, nil
}

// checkKID accepts 1..256 printable ASCII characters without a path
// separator or "..": a kid may end up in a URL, a file name or a log.
func checkKID(kid string) error {
	switch {
	case kid == "":
		return errors.New("is empty")
	case len(kid) > maxKIDLen:
		return fmt.Errorf("is longer than %d bytes", maxKIDLen)
	case strings.ContainsAny(kid, `/\`) || strings.Contains(kid, ".."):
		return errors.New("looks like a path")
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x21 || kid[i] > 0x7e {
			return errors.New("has a non-printable character")
		}
	}
	return nil
}

// decodeObject decodes a JSON object strictly (strictjson: valid UTF-8, no
// duplicate names at any depth, at most maxJSONDepth deep, nothing after
// it). Numbers become int64 or float64 (see Claims).
func decodeObject(b []byte) (map[string]any, error) {
	return strictjson.DecodeObject(b, maxJSONDepth)
}

// pinnedKey is a verification key with the one algorithm it may verify.
type pinnedKey struct {
	alg  string
	spec algSpec
	key  jwk.Key
}

// pinKey checks that k is a public (or made public) signing key whose alg
// (or fallbackAlg if it names none) is allowed and fits its type and
// curve.
func pinKey(k jwk.Key, fallbackAlg string) (pinnedKey, error) {
	if _, ok := k.(jwk.UnsupportedKey); ok {
		return pinnedKey{}, errors.New("unsupported key type")
	}
	alg := fallbackAlg
	if a, ok := k.Algorithm(); ok {
		alg = a.String()
	}
	if alg == "" {
		return pinnedKey{}, errors.New("key names no alg")
	}
	spec, ok := allowedAlgs[alg]
	if !ok {
		return pinnedKey{}, fmt.Errorf("key alg %s is not allowed", short(alg))
	}
	if kty := k.KeyType().String(); kty != spec.kty {
		return pinnedKey{}, fmt.Errorf("key type %s does not fit alg %s", short(kty), alg)
	}
	if spec.crv != "" {
		ck, ok := k.(interface {
			Crv() (jwa.EllipticCurveAlgorithm, bool)
		})
		if !ok {
			return pinnedKey{}, fmt.Errorf("key has no curve for alg %s", alg)
		}
		if crv, _ := ck.Crv(); crv.String() != spec.crv {
			return pinnedKey{}, fmt.Errorf("key curve %s does not fit alg %s", short(crv.String()), alg)
		}
	}
	if use, ok := k.KeyUsage(); ok && use != string(jwk.ForSignature) {
		return pinnedKey{}, fmt.Errorf("key use %s is not sig", short(use))
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return pinnedKey{}, errors.New("key_ops lacks verify")
	}
	if isPriv, err := jwk.IsPrivateKey(k); err != nil {
		return pinnedKey{}, errors.New("not an asymmetric key")
	} else if isPriv {
		pub, err := k.PublicKey()
		if err != nil {
			return pinnedKey{}, errors.New("no public key")
		}
		k = pub
	}
	return pinnedKey{alg: alg, spec: spec, key: k}, nil
}

// Tombstones make ForgetJTI and Forget take effect at once on cached
// verifications, which the cache itself cannot delete.
//
// Why it is race-free: Verify reads the clock (start), then the epoch;
// Forget* bumps the epoch, then reads the clock (t), under mu. A cache
// entry that predates a tombstone (entry epoch < tombstone epoch) started
// verifying before t, so it lives until at most t + CacheTTL, which is how
// long the tombstone is kept. A jti tombstone rejects outright (the miss
// path checks it after the revocation store, and a hit checks it again);
// a token tombstone forces a full verification of older entries only.
//
// ForgetAll records the epoch it bumped to in all: every entry that
// predates it (entry epoch < all) is verified again, by the same argument.
type tombstones struct {
	epoch   atomic.Uint64
	all     atomic.Uint64 // entries with an older epoch are forgotten
	n       atomic.Int64  // entries in both maps; 0 skips the lock on hits
	mu      sync.RWMutex
	jtis    map[string]tomb
	tokens  map[[sha256.Size]byte]tomb
	pruneAt int
}

type tomb struct {
	epoch uint64
	until time.Time
}

// Results of tombstones.check.
const (
	tombNone = iota
	tombRevoked
	tombForgotten
)

func (t *tombstones) init() {
	t.jtis = map[string]tomb{}
	t.tokens = map[[sha256.Size]byte]tomb{}
	t.pruneAt = 1024
}

// add records a token hash or (if jti != "") a jti.
func (t *tombstones) add(v *Verifier, key [sha256.Size]byte, jti string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := tomb{epoch: t.epoch.Add(1)}
	now := v.now()
	e.until = now.Add(v.cfg.CacheTTL)
	if jti != "" {
		t.jtis[jti] = e
	} else {
		t.tokens[key] = e
	}
	if n := len(t.jtis) + len(t.tokens); n > t.pruneAt {
		for k, x := range t.jtis {
			if x.until.Before(now) {
				delete(t.jtis, k)
			}
		}
		for k, x := range t.tokens {
			if x.until.Before(now) {
				delete(t.tokens, k)
			}
		}
		t.pruneAt = max(1024, 2*(len(t.jtis)+len(t.tokens)))
	}
	t.n.Store(int64(len(t.jtis) + len(t.tokens)))
}

// forgetAll makes every entry that exists now be verified again.
func (t *tombstones) forgetAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.all.Store(t.epoch.Add(1))
}

// check decides what a cache hit e for key may do.
func (t *tombstones) check(key [sha256.Size]byte, e *verified) int {
	if e.epoch < t.all.Load() {
		return tombForgotten
	}
	if t.n.Load() == 0 {
		return tombNone
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e.jti != "" {
		if _, ok := t.jtis[e.jti]; ok {
			return tombRevoked
		}
	}
	if x, ok := t.tokens[key]; ok && x.epoch > e.epoch {
		return tombForgotten
	}
	return tombNone
}

// jtiRevoked reports whether ForgetJTI recorded jti.
func (t *tombstones) jtiRevoked(jti string) bool {
	if t.n.Load() == 0 {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.jtis[jti]
	return ok
}
