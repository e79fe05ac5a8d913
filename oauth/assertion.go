package oauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/untrusted"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of
// private_key_jwt client authentication (RFC 7523 §2.2).
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// OneTimeIDs records the ids of client assertions so that each is used
// once. The wiring adapts the store package's OneTime to it.
type OneTimeIDs interface {
	// UseOnce records jti until exp and reports whether this was its first
	// use; a later use before exp reports false. An error means the answer
	// is unknown.
	UseOnce(ctx context.Context, jti string, exp time.Time) (bool, error)
}

// AssertionConfig configures private_key_jwt client authentication. A zero
// duration or size means its default.
type AssertionConfig struct {
	// TokenEndpoint is the token endpoint URL, e.g.
	// "https://verdict.example.com/oauth/token". An assertion whose aud
	// contains it is accepted. At least one of TokenEndpoint and Issuer is
	// required.
	TokenEndpoint string `yaml:"token_endpoint"`
	// Issuer is Verdict's issuer URL, also accepted as aud (OIDC Core §9
	// and RFC 7523 §3 let the audience identify the authorization server).
	Issuer string `yaml:"issuer"`
	// MaxLifetime is the longest an assertion may be valid: exp at most
	// this far after now, and after iat when iat is present. Longer-lived
	// assertions are refused, which also bounds how long their jti is
	// kept. Default 5m, at most 1h.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// ClockSkew is the tolerance on exp, nbf and iat. Default 30s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxAssertionBytes is the largest assertion accepted. Default 8192.
	MaxAssertionBytes int `yaml:"max_assertion_bytes"`
}

// DefaultAssertionConfig returns the defaults (no audience configured).
func DefaultAssertionConfig() AssertionConfig {
	return AssertionConfig{
		MaxLifetime:       5 * time.Minute,
		ClockSkew:         30 * time.Second,
		MaxAssertionBytes: authn.DefaultMaxTokenBytes,
	}
}

// withDefaults fills the zero fields with their defaults.
func (c AssertionConfig) withDefaults() AssertionConfig {
	d := DefaultAssertionConfig()
	if c.MaxLifetime == 0 {
		c.MaxLifetime = d.MaxLifetime
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = d.ClockSkew
	}
	if c.MaxAssertionBytes == 0 {
		c.MaxAssertionBytes = d.MaxAssertionBytes
	}
	return c
}

// Validate reports every problem in c (zero fields taken as their
// defaults), joined with errors.Join; nil if c is usable.
func (c AssertionConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("client assertions: "+format, args...))
	}
	if c.TokenEndpoint == "" && c.Issuer == "" {
		add("set token_endpoint or issuer (the accepted audiences)")
	}
	for _, u := range []struct{ name, url string }{{"token_endpoint", c.TokenEndpoint}, {"issuer", c.Issuer}} {
		if u.url != "" && !strings.HasPrefix(u.url, "https://") && !strings.HasPrefix(u.url, "http://") {
			add("%s must be an http(s) URL, got %q", u.name, u.url)
		}
	}
	if c.MaxLifetime < 0 || c.MaxLifetime > time.Hour {
		add("max lifetime %s is outside 0..1h", c.MaxLifetime)
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		add("clock skew %s is outside 0..5m", c.ClockSkew)
	}
	if c.MaxAssertionBytes < 0 || c.MaxAssertionBytes > 64<<10 {
		add("max assertion bytes %d is outside 1..65536", c.MaxAssertionBytes)
	}
	return errors.Join(errs...)
}

// AssertionVerifier authenticates clients by private_key_jwt (RFC 7523
// §2.2, OIDC Core §9): a JWT signed with a key of the client's registered
// JWKS, used once. It is safe for concurrent use; the zero value is not
// usable: use NewAssertionVerifier.
type AssertionVerifier struct {
	cfg     AssertionConfig
	clients *Clients
	ids     OneTimeIDs
	now     func() time.Time
}

// NewAssertionVerifier returns a verifier over the client registry and the
// one-time id store. now is the clock (nil means time.Now). It fails on an
// invalid config or a nil dependency.
func NewAssertionVerifier(cfg AssertionConfig, clients *Clients, ids OneTimeIDs, now func() time.Time) (*AssertionVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clients == nil {
		return nil, errors.New("client assertions: nil client registry")
	}
	if ids == nil {
		return nil, errors.New("client assertions: nil one-time id store")
	}
	if now == nil {
		now = time.Now
	}
	return &AssertionVerifier{cfg: cfg.withDefaults(), clients: clients, ids: ids, now: now}, nil
}

// rejectAssertion returns an authentication failure wrapping
// ErrInvalidClient. The reason is safe to log, never quotes the assertion
// and is not meant for the client (which is told invalid_client only).
func rejectAssertion(format string, args ...any) error {
	return fmt.Errorf("%w: client assertion: %s", ErrInvalidClient, fmt.Sprintf(format, args...))
}

// tokenReason is the reason of a parseToken rejection, without the
// ErrInvalidToken prefix: a bad assertion is a client failure, not a bad
// bearer token, so ErrInvalidToken must not leak into its error chain.
func tokenReason(err error) string {
	return strings.TrimPrefix(err.Error(), authn.ErrInvalidToken.Error()+": ")
}

// Authenticate checks a private_key_jwt client assertion and returns the
// client it authenticates. clientID is the client_id parameter; when it is
// "" the assertion's sub names the client (RFC 7521 §4.2 makes client_id
// optional with an assertion). The assertion must be a compact JWS (no JWE,
// JSON serialization, nested JWT, none, HMAC, or key-bearing jku, x5u, x5c
// and jwk headers) with a kid naming a key of the client's registered JWKS,
// under the one algorithm that key allows; iss and sub equal to the client
// id; aud containing the token endpoint or the issuer; exp in the future but
// at most MaxLifetime away; iat and nbf not in the future; and a jti not
// seen before.
//
// Every authentication failure wraps ErrInvalidClient, with a reason that is
// safe to log. A failure to look the client up (other than an unknown id)
// is returned wrapped as it is; a failure of the one-time id store, or ctx
// ending, wraps ErrUnavailable. Neither wraps ErrInvalidClient: the client
// is not at fault. The jti is only recorded once everything else passed,
// so an unauthenticated party cannot burn a client's ids.
func (a *AssertionVerifier) Authenticate(ctx context.Context, clientID, assertionType, assertion string) (Client, error) {
	switch {
	case assertionType == "":
		return Client{}, rejectAssertion("client_assertion_type missing")
	case assertionType != ClientAssertionTypeJWTBearer:
		return Client{}, rejectAssertion("client_assertion_type %s is not %s", untrusted.Quote(assertionType), ClientAssertionTypeJWTBearer)
	case assertion == "":
		return Client{}, rejectAssertion("client_assertion missing")
	case len(assertion) > a.cfg.MaxAssertionBytes:
		return Client{}, rejectAssertion("assertion is %d bytes, over the %d-byte limit", len(assertion), a.cfg.MaxAssertionBytes)
	}
	tok, err := authn.ParseCompact(assertion)
	if err != nil {
		return Client{}, rejectAssertion("%s", tokenReason(err))
	}
	// An access token is never a client assertion, whatever its claims.
	if tok.HasTyp && (strings.EqualFold(tok.Typ, authn.TypAccessToken) || strings.EqualFold(tok.Typ, "application/"+authn.TypAccessToken)) {
		return Client{}, rejectAssertion("typ %s is an access token", untrusted.Quote(tok.Typ))
	}
	claims := tok.Claims
	if clientID == "" {
		// The unverified sub only chooses the client; the checks below and
		// the signature bind it.
		clientID = claims.Subject()
	}
	if err := validClientID(clientID); err != nil {
		return Client{}, rejectAssertion("client_id is missing or malformed")
	}

	// Every claim check is pure, so do them before touching the store: a
	// forged or stale assertion costs no lookup.
	now := a.now()
	exp, err := a.checkClaims(claims, clientID, now)
	if err != nil {
		return Client{}, err
	}

	cl, err := a.clients.Lookup(ctx, clientID)
	switch {
	case errors.Is(err, ErrUnknownClient):
		return Client{}, rejectAssertion("unknown client")
	case err != nil:
		return Client{}, fmt.Errorf("client assertion: %w", err)
	}
	if len(cl.JWKS) == 0 {
		return Client{}, rejectAssertion("client %s has no registered keys", untrusted.Quote(cl.ID))
	}
	if err := tok.VerifyJWKS(ctx, cl.JWKS); err != nil {
		if errors.Is(err, authn.ErrUnavailable) {
			return Client{}, fmt.Errorf("client assertion: %w", err)
		}
		return Client{}, rejectAssertion("%v", err)
	}

	// The id is kept until the assertion can no longer pass the exp check.
	// It is scoped to the client (a space is never in a client id), so one
	// client cannot spend another's ids.
	first, err := a.ids.UseOnce(ctx, cl.ID+" "+claims.JTI(), exp.Add(a.cfg.ClockSkew))
	if err != nil {
		return Client{}, fmt.Errorf("%w: client assertion replay check: %w", authn.ErrUnavailable, err)
	}
	if !first {
		return Client{}, rejectAssertion("jti already used (replay)")
	}
	return cl, nil
}

// checkClaims checks the claims of an assertion for clientID and returns
// its expiry.
func (a *AssertionVerifier) checkClaims(c authn.Claims, clientID string, now time.Time) (time.Time, error) {
	skew := a.cfg.ClockSkew
	for _, name := range []string{"iss", "sub"} {
		v, ok := c[name].(string)
		switch {
		case !ok:
			return time.Time{}, rejectAssertion("%s claim missing or not a string", name)
		case v != clientID:
			return time.Time{}, rejectAssertion("%s claim is not the client_id", name)
		}
	}

	_, ok := c["aud"]
	if !ok {
		return time.Time{}, rejectAssertion("aud claim missing")
	}
	if !slices.ContainsFunc(c.Audience(), func(s string) bool {
		return s != "" && (s == a.cfg.TokenEndpoint || s == a.cfg.Issuer)
	}) {
		return time.Time{}, rejectAssertion("aud does not name this server's token endpoint or issuer")
	}

	exp, iat, problem := c.CheckTimes(now, skew, "assertion")
	switch {
	case problem != "":
		return time.Time{}, rejectAssertion("%s", problem)
	case exp.After(now.Add(a.cfg.MaxLifetime + skew)):
		return time.Time{}, rejectAssertion("exp is more than %s away", a.cfg.MaxLifetime)
	case !iat.IsZero() && exp.Sub(iat) > a.cfg.MaxLifetime:
		return time.Time{}, rejectAssertion("lifetime exp - iat is over %s", a.cfg.MaxLifetime)
	}

	jti, ok := c["jti"].(string)
	switch {
	case !ok || jti == "":
		return time.Time{}, rejectAssertion("jti claim missing or not a string")
	case len(jti) > authn.MaxClaimLen:
		return time.Time{}, rejectAssertion("jti claim too long")
	}
	return exp, nil
}
