package authn

import (
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Sign signs payload, as it is, with the key that signs now (as Signer
// chooses it): a
// compact JWS whose protected header holds alg, the key's kid and typ
// (when not empty). It verifies against the JWKS for as long as that key
// is published. It fails with an error wrapping ErrNotLoaded or
// ErrNoSigner when no key may sign, or when signing itself fails; nothing
// is signed then.
func (r *Keyring) Sign(typ string, payload []byte) (string, error) {
	v := r.view.Load()
	if v == nil {
		return "", fmt.Errorf("keys: %w", ErrNotLoaded)
	}
	i := signerIndex(v.entries, r.clock())
	if i < 0 {
		return "", fmt.Errorf("keys: %w", ErrNoSigner)
	}
	priv, meta := v.entries[i].raw, v.entries[i].rec
	alg, ok := jwa.LookupSignatureAlgorithm(meta.Alg)
	if !ok {
		return "", fmt.Errorf("keys: signing key %s has unknown alg %q", meta.KID, meta.Alg)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, meta.KID); err != nil {
		return "", fmt.Errorf("keys: header: %w", err)
	}
	if typ != "" {
		if err := hdr.Set(jws.TypeKey, typ); err != nil {
			return "", fmt.Errorf("keys: header: %w", err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("keys: sign with %s: %w", meta.KID, err)
	}
	return string(signed), nil
}
