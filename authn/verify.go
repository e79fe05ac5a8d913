package authn

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/internal/pemutil"
	"github.com/verdictpdp/verdict/internal/untrusted"

	"github.com/verdictpdp/verdict/cache"
)

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

	httpc     *http.Client    // fetches for issuers without a CA file
	ownHTTP   bool            // httpc is the Verifier's own
	caClients []*http.Client  // one per issuer with a CA file
	base      context.Context // ends on Close; parent of every fetch
	cancel    context.CancelFunc
	mu        sync.Mutex // orders Close against starting fetches
	closed    atomic.Bool
	wg        sync.WaitGroup // running fetches
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
// clock (nil means time.Now). It fails on an invalid config, a CA file
// that no longer reads, or a nil dependency. No key is fetched until a
// token needs it.
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
		v.httpc = newFetchClient(nil)
	}
	v.issuers = map[string]*trusted{cfg.Self.Issuer: {cfg: cfg.Self, self: true}}
	for _, is := range cfg.External {
		r := &remoteKeys{cfg: is, v: v, httpc: v.httpc}
		if is.CAFile != "" {
			// Read again: the file may have changed since Validate. No
			// client has a connection yet: nothing to close on error.
			roots, err := pemutil.LoadCAs(is.CAFile)
			if err != nil {
				return nil, fmt.Errorf("verifier: issuer %q: ca_file: %w", is.Issuer, err)
			}
			r.httpc = newFetchClient(roots)
			v.caClients = append(v.caClients, r.httpc)
		}
		v.issuers[is.Issuer] = &trusted{cfg: is, remote: r}
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
	return v, nil
}

// newFetchClient returns a client for key and discovery fetches: it
// follows no redirects and always verifies certificates, against roots,
// or the system roots if roots is nil.
func newFetchClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// closeClients closes the idle connections of the clients v made.
func (v *Verifier) closeClients() {
	if v.ownHTTP {
		v.httpc.CloseIdleConnections()
	}
	for _, c := range v.caClients {
		c.CloseIdleConnections()
	}
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
	v.closeClients()
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
				return nil, invalid("unknown key id %s", untrusted.Quote(e.kid))
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
		return fail(invalid("untrusted issuer %s", untrusted.Quote(iss)))
	}

	if want := tr.cfg.RequireTyp; want != "" {
		if !hdr.hasTyp {
			return fail(invalid("typ header missing, want %s", want))
		}
		if !strings.EqualFold(hdr.typ, want) && !strings.EqualFold(hdr.typ, "application/"+want) {
			return fail(invalid("typ %s is not %s", untrusted.Quote(hdr.typ), want))
		}
	}

	var pk pinnedKey
	if tr.self {
		k, ok := v.self.PublicKey(hdr.kid)
		if !ok {
			return fail(invalid("unknown key id %s", untrusted.Quote(hdr.kid)))
		}
		if pk, err = pinKey(k, ""); err != nil {
			return fail(invalid("key %s: %v", untrusted.Quote(hdr.kid), err))
		}
	} else if pk, err = tr.remote.key(ctx, hdr.kid); err != nil {
		return fail(err)
	}
	if pk.alg != hdr.alg {
		return fail(invalid("alg %s does not match alg %s pinned to key %s", untrusted.Quote(hdr.alg), pk.alg, untrusted.Quote(hdr.kid)))
	}

	if err := pk.verify(ctx, token, payload); err != nil {
		if errors.Is(err, ErrUnavailable) {
			return fail(err)
		}
		return fail(invalid("%v", err))
	}

	exp, err := v.checkClaims(claims, tr, now)
	if err != nil {
		return fail(err)
	}

	if !tr.self && len(tr.cfg.Scopes) > 0 {
		limitScopes(claims, tr.cfg.Scopes)
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

// limitScopes keeps in c's scope claim only the scopes of allowed (a
// trusted issuer's scopes setting), as a space-separated scope claim; an
// scp claim is folded into it and removed.
func limitScopes(c Claims, allowed []string) {
	var kept []string
	for _, s := range c.Scopes() {
		if slices.Contains(allowed, s) && !slices.Contains(kept, s) {
			kept = append(kept, s)
		}
	}
	delete(c, "scp")
	c["scope"] = strings.Join(kept, " ")
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
	exp, _, problem := c.CheckTimes(now, skew, "token")
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
		if len(jti) > MaxClaimLen {
			return time.Time{}, invalid("jti claim too long")
		}
	}
	return exp, nil
}
