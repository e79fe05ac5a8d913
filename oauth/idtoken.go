package oauth

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// IDTokenIssuer signs OpenID Connect ID tokens with the same key ring as
// access tokens. It is safe for concurrent use.
type IDTokenIssuer struct {
	issuer string
	keys   SigningKeys
	ttl    time.Duration
	now    func() time.Time
}

// NewIDTokenIssuer returns an issuer of ID tokens for iss that live ttl.
func NewIDTokenIssuer(issuer string, keys SigningKeys, ttl time.Duration, now func() time.Time) *IDTokenIssuer {
	if now == nil {
		now = time.Now
	}
	return &IDTokenIssuer{issuer: issuer, keys: keys, ttl: ttl, now: now}
}

// IDClaims are what an ID token says about a sign-in.
type IDClaims struct {
	Subject  string
	ClientID string
	Nonce    string
	AuthTime time.Time
	AMR      []string
	// AccessToken, when set, is hashed into at_hash.
	AccessToken string
	// SessionID is the sid claim (OpenID Connect front/back-channel logout).
	SessionID string
	// Profile and Email are added when those scopes were granted.
	Profile map[string]any
}

// ACR values: what strength of sign-in the token reflects.
const (
	ACRPassword = "urn:verdict:acr:pwd"
	ACRMFA      = "urn:verdict:acr:mfa"
)

// ACR returns the acr of a sign-in with the methods amr.
func ACR(amr []string) string {
	for _, m := range amr {
		if m == "otp" || m == "mfa" {
			return ACRMFA
		}
	}
	return ACRPassword
}

// Issue signs an ID token (header typ JWT and the key's kid) with iss,
// sub, aud (the client), azp, exp, iat, auth_time, nonce, amr, acr, sid,
// at_hash and the profile claims.
func (t *IDTokenIssuer) Issue(c IDClaims) (string, error) {
	priv, meta, err := t.keys.Signer()
	if err != nil {
		return "", err
	}
	alg, ok := jwa.LookupSignatureAlgorithm(meta.Alg)
	if !ok {
		return "", fmt.Errorf("signing key %s has unknown alg %q", meta.KID, meta.Alg)
	}
	now := t.now().UTC().Truncate(time.Second)
	claims := map[string]any{}
	for k, v := range c.Profile {
		claims[k] = v
	}
	for k, v := range map[string]any{
		"iss": t.issuer, "sub": c.Subject, "aud": c.ClientID, "azp": c.ClientID,
		"exp": now.Add(t.ttl).Unix(), "iat": now.Unix(), "auth_time": c.AuthTime.Unix(),
		"amr": c.AMR, "acr": ACR(c.AMR),
	} {
		claims[k] = v
	}
	if c.Nonce != "" {
		claims["nonce"] = c.Nonce
	}
	if c.SessionID != "" {
		claims["sid"] = c.SessionID
	}
	if c.AccessToken != "" {
		h, err := tokenHash(meta.Alg, c.AccessToken)
		if err != nil {
			return "", err
		}
		claims["at_hash"] = h
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("id token claims: %w", err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.TypeKey: "JWT", jws.KeyIDKey: meta.KID} {
		if err := hdr.Set(k, v); err != nil {
			return "", fmt.Errorf("id token header: %w", err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("signing id token: %w", err)
	}
	return string(signed), nil
}

// tokenHash is OpenID Connect's at_hash: the left half of the token's hash
// with the alg's hash function (SHA-512 for EdDSA over Ed25519),
// base64url.
func tokenHash(alg, token string) (string, error) {
	var h hash.Hash
	switch alg {
	case "ES256", "RS256", "PS256":
		h = sha256.New()
	case "ES384", "RS384", "PS384":
		h = sha512.New384()
	case "ES512", "RS512", "PS512", "EdDSA":
		h = sha512.New()
	default:
		return "", fmt.Errorf("at_hash: no hash for alg %q", alg)
	}
	h.Write([]byte(token))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}
