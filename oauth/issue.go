package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/verdictpdp/verdict/authn"
)

// SigningKeys is what the token issuer needs of the key ring: the key that
// signs now.
type SigningKeys interface {
	Signer() (jwk.Key, authn.Key, error)
}

var _ SigningKeys = (*authn.Keyring)(nil)

// IssuerConfig configures the access tokens Verdict issues.
type IssuerConfig struct {
	// Issuer is the iss claim: Verdict's own URL, e.g.
	// "https://verdict.example.com".
	Issuer string `yaml:"issuer"`
	// Audience is the aud claim of every access token.
	Audience string `yaml:"audience"`
	// AccessTokenTTL is the lifetime of an access token (default 5m).
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
}

// Validate reports every problem with c, joined.
func (c IssuerConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		errs = append(errs, fmt.Errorf("issuer must be an http(s) URL, got %q", c.Issuer))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("audience must not be empty"))
	}
	if c.AccessTokenTTL <= 0 {
		errs = append(errs, errors.New("access_token_ttl must be positive"))
	}
	return errors.Join(errs...)
}

// AccessToken is an issued RFC 9068 access token.
type AccessToken struct {
	Token     string
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Scopes    []string
}

// TokenIssuer signs RFC 9068 JWT access tokens with the key ring's current
// signing key. It is safe for concurrent use.
type TokenIssuer struct {
	cfg  IssuerConfig
	keys SigningKeys
	now  func() time.Time
}

// NewTokenIssuer returns an issuer; it fails on an invalid config.
func NewTokenIssuer(cfg IssuerConfig, keys SigningKeys, now func() time.Time) (*TokenIssuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &TokenIssuer{cfg: cfg, keys: keys, now: now}, nil
}

// Issue signs an access token for subject, on behalf of clientID, with
// scopes. The header carries typ at+jwt and the signing key's kid; the
// claims are iss, sub, aud, exp, iat, nbf, jti, client_id and scope. extra
// claims are added unless they would replace one of those. It fails when no
// key can sign (ErrNoSigner) or signing fails.
func (t *TokenIssuer) Issue(clientID, subject string, scopes []string, extra map[string]any) (AccessToken, error) {
	priv, meta, err := t.keys.Signer()
	if err != nil {
		return AccessToken{}, err
	}
	jti, err := randomID()
	if err != nil {
		return AccessToken{}, err
	}
	now := t.now().UTC().Truncate(time.Second)
	exp := now.Add(t.cfg.AccessTokenTTL)
	claims := map[string]any{}
	for k, v := range extra {
		claims[k] = v
	}
	for k, v := range map[string]any{
		"iss": t.cfg.Issuer, "sub": subject, "aud": t.cfg.Audience,
		"exp": exp.Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": jti, "client_id": clientID, "scope": strings.Join(scopes, " "),
	} {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return AccessToken{}, fmt.Errorf("token claims: %w", err)
	}
	alg, ok := jwa.LookupSignatureAlgorithm(meta.Alg)
	if !ok {
		return AccessToken{}, fmt.Errorf("signing key %s has unknown alg %q", meta.KID, meta.Alg)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.TypeKey: "at+jwt", jws.KeyIDKey: meta.KID} {
		if err := hdr.Set(k, v); err != nil {
			return AccessToken{}, fmt.Errorf("token header: %w", err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return AccessToken{}, fmt.Errorf("signing token: %w", err)
	}
	return AccessToken{Token: string(signed), JTI: jti, IssuedAt: now, ExpiresAt: exp, Scopes: scopes}, nil
}

// randomID returns 128 random bits, base64url.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
