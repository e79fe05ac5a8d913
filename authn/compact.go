package authn

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/verdictpdp/verdict/internal/untrusted"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/verdictpdp/verdict/internal/strictjson"
)

// header is what Verify uses of the protected header.
type header struct {
	alg, kid, typ string
	hasTyp        bool
}

// b64 is strict base64url without padding.
var b64 = base64.RawURLEncoding.Strict()

// Why not jwx's jwt.Parse and jwt.Validate: its JSON decoding keeps the last
// of duplicate member names ({"sub":"a","sub":"admin"} is read as "admin",
// checked 2026-12-03 with jwx v3), so two parsers could read one token two
// ways; I-JSON (strictjson) refuses such a token. The claim checks that
// follow (Claims.CheckTimes, checkClaims) are the ones the client
// assertions share, with Verdict's reasons in the errors. The signature
// itself is checked by jwx (jws.Verify).
//
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
		return h, invalid("alg %s is not allowed", untrusted.Quote(alg))
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
		return pinnedKey{}, fmt.Errorf("key alg %s is not allowed", untrusted.Quote(alg))
	}
	if kty := k.KeyType().String(); kty != spec.kty {
		return pinnedKey{}, fmt.Errorf("key type %s does not fit alg %s", untrusted.Quote(kty), alg)
	}
	if spec.crv != "" {
		ck, ok := k.(interface {
			Crv() (jwa.EllipticCurveAlgorithm, bool)
		})
		if !ok {
			return pinnedKey{}, fmt.Errorf("key has no curve for alg %s", alg)
		}
		if crv, _ := ck.Crv(); crv.String() != spec.crv {
			return pinnedKey{}, fmt.Errorf("key curve %s does not fit alg %s", untrusted.Quote(crv.String()), alg)
		}
	}
	if use, ok := k.KeyUsage(); ok && use != string(jwk.ForSignature) {
		return pinnedKey{}, fmt.Errorf("key use %s is not sig", untrusted.Quote(use))
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

// Compact is a compact JWS that passed ParseCompact: the strict syntax and
// the header policy Verdict applies to every token it verifies (no JWE,
// JSON serialization, nested JWT, none, HMAC, crit, b64, zip, or
// key-bearing jku, x5u, x5c and jwk headers; a kid; an allowed alg). Its
// signature is not checked yet: nothing in it is trusted until
// VerifyJWKS (or the Verifier) says so.
type Compact struct {
	// Alg and KID are the alg and kid headers.
	Alg, KID string
	// Typ is the typ header; HasTyp reports whether it was present.
	Typ    string
	HasTyp bool
	// Claims is the decoded payload.
	Claims Claims

	raw     string
	payload []byte
}

// ParseCompact parses token as Verify does before any crypto. Every
// failure wraps ErrInvalidToken with a reason that is safe to log.
func ParseCompact(token string) (Compact, error) {
	h, claims, payload, err := parseToken(token)
	if err != nil {
		return Compact{}, err
	}
	return Compact{Alg: h.alg, KID: h.kid, Typ: h.typ, HasTyp: h.hasTyp, Claims: claims, raw: token, payload: payload}, nil
}

// VerifyJWKS checks the signature of t with the key named by its kid in a
// registered JWKS document (at most 100 keys), pinned to one algorithm: the
// key's own alg, or, for a key that names none, the header alg when it
// fits the key's type and curve (an EC or OKP key allows one algorithm
// anyway; an RSA key RS256 or PS256). A kid present twice is refused:
// which key it means is ambiguous. A rejection is a plain error whose
// message is safe to log; ctx ending wraps ErrUnavailable.
func (t Compact) VerifyJWKS(ctx context.Context, jwks []byte) error {
	pk, err := jwksKey(jwks, t.KID, t.Alg)
	if err != nil {
		return err
	}
	return pk.verify(ctx, t.raw, t.payload)
}

// verify checks the signature of the compact JWS token, whose decoded
// payload is payload, with pk under its one algorithm. A rejection is a
// plain error whose message is safe to log; ctx ending wraps
// ErrUnavailable.
func (pk pinnedKey) verify(ctx context.Context, token string, payload []byte) error {
	got, err := jws.Verify([]byte(token),
		jws.WithCompact(),
		jws.WithKey(pk.spec.sa, pk.key),
		jws.WithAlgorithmMatch(true),
		jws.WithCritValidation(true),
		jws.WithContext(ctx),
	)
	if err != nil {
		if ctx.Err() != nil {
			return unavailable("signature check", ctx.Err())
		}
		return errors.New("signature verification failed")
	}
	if !bytes.Equal(got, payload) {
		return errors.New("signature verification failed: payload mismatch")
	}
	return nil
}

// jwksKey finds the key kid in a JWKS document and pins it (see VerifyJWKS).
func jwksKey(jwks []byte, kid, alg string) (pinnedKey, error) {
	set, err := jwk.Parse(jwks, jwk.WithMaxKeys(maxJWKSKeys))
	if err != nil {
		return pinnedKey{}, errors.New("registered JWKS does not parse")
	}
	var found jwk.Key
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if id, ok := k.KeyID(); ok && id == kid {
			if found != nil {
				return pinnedKey{}, fmt.Errorf("key id %s is registered twice", untrusted.Quote(kid))
			}
			found = k
		}
	}
	if found == nil {
		return pinnedKey{}, fmt.Errorf("unknown key id %s", untrusted.Quote(kid))
	}
	fallback := ""
	if _, named := found.Algorithm(); !named {
		kty := found.KeyType().String()
		if spec, ok := allowedAlgs[alg]; !ok || spec.kty != kty {
			return pinnedKey{}, fmt.Errorf("alg %s does not fit key %s of type %s", untrusted.Quote(alg), untrusted.Quote(kid), untrusted.Quote(kty))
		}
		fallback = alg
	}
	pk, err := pinKey(found, fallback)
	if err != nil {
		return pinnedKey{}, fmt.Errorf("key %s: %v", untrusted.Quote(kid), err)
	}
	if pk.alg != alg {
		return pinnedKey{}, fmt.Errorf("alg %s does not match alg %s pinned to key %s", untrusted.Quote(alg), pk.alg, untrusted.Quote(kid))
	}
	return pk, nil
}
