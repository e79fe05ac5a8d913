package authn

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Signature algorithms a signing key may use.
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// RSA key sizes accepted for RS256. The upper bound keeps a typo in the
// config from turning key generation into a hang.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// Errors callers branch on.
var (
	// ErrUnknownKey means no signing key has that kid.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrNoSigner means no key may sign now (token issuance is unavailable).
	ErrNoSigner = errors.New("no signing key")
	// ErrNotLoaded means the keyring has not been loaded successfully yet.
	ErrNotLoaded = errors.New("signing keys not loaded")
)

// Key is one signing key and its lifecycle. It mirrors store.SigningKey
// field for field so that the wiring can convert between the two.
type Key struct {
	// KID is the RFC 7638 thumbprint (SHA-256, base64url) of the public key.
	KID string
	// Alg is ES256, EdDSA or RS256.
	Alg string
	// PrivateJWK is the private key as a JWK (JSON). It is a secret: never
	// log it.
	PrivateJWK []byte
	// CreatedAt is when the key was made and first published.
	CreatedAt time.Time
	// SignFrom is when the key may start signing.
	SignFrom time.Time
	// RetiredAt, when set, is when a newer key took over signing.
	RetiredAt time.Time
	// PublishUntil, when set, is when the key leaves the JWKS and its record
	// is deleted. For a revoked key, which leaves the JWKS at once, it is
	// only when the record (kept for `verdict keys list`) is deleted.
	PublishUntil time.Time
	// Revoked keys are gone from the JWKS at once and verify nothing.
	Revoked bool
}

// KeyStore is the durable storage the keyring needs. The store is the
// source of truth; several replicas may share it.
type KeyStore interface {
	// PutKey inserts or replaces the key with k.KID.
	PutKey(ctx context.Context, k Key) error
	// Keys lists every key, in any order.
	Keys(ctx context.Context) ([]Key, error)
	// DeleteKey removes a key. If there is none it returns an error
	// wrapping ErrUnknownKey (which the keyring treats as done).
	DeleteKey(ctx context.Context, kid string) error
}

// KeyConfig configures the signing keys. A zero field means its default.
type KeyConfig struct {
	// Alg is the algorithm of newly generated keys: ES256 (default), EdDSA
	// or RS256. Existing keys keep their algorithm.
	Alg string `yaml:"alg"`
	// RSABits is the RS256 modulus size: default 3072, at least 2048, at
	// most 8192.
	RSABits int `yaml:"rsa_bits"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS, and how long a
	// new key is published before it signs. Default 5m, at least 1s.
	JWKSMaxAge time.Duration `yaml:"jwks_max_age"`
	// AccessTokenTTL is the longest access-token lifetime. Default 5m.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// ClockSkew is the clock skew verifiers tolerate. Default 30s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RotateEvery, when set, makes Tick rotate once the signing key is this
	// old; it must exceed JWKSMaxAge. 0 rotates only on demand.
	RotateEvery time.Duration `yaml:"rotate_every"`
}

// DefaultKeyConfig returns the defaults: ES256, RSA 3072 bits, a 5m JWKS
// max-age, 5m access tokens, 30s clock skew, rotation on demand only.
func DefaultKeyConfig() KeyConfig {
	return KeyConfig{
		Alg:            AlgES256,
		RSABits:        3072,
		JWKSMaxAge:     5 * time.Minute,
		AccessTokenTTL: 5 * time.Minute,
		ClockSkew:      30 * time.Second,
	}
}

// withDefaults fills the zero fields with their defaults.
func (c KeyConfig) withDefaults() KeyConfig {
	d := DefaultKeyConfig()
	if c.Alg == "" {
		c.Alg = d.Alg
	}
	if c.RSABits == 0 {
		c.RSABits = d.RSABits
	}
	if c.JWKSMaxAge == 0 {
		c.JWKSMaxAge = d.JWKSMaxAge
	}
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = d.AccessTokenTTL
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = d.ClockSkew
	}
	return c
}

// Validate reports every problem in c (zero fields taken as their
// defaults), joined with errors.Join; nil if c is usable.
func (c KeyConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch c.Alg {
	case AlgES256, AlgEdDSA, AlgRS256:
	default:
		errs = append(errs, fmt.Errorf("keys: alg %q is not one of ES256, EdDSA, RS256", c.Alg))
	}
	if c.RSABits < minRSABits || c.RSABits > maxRSABits {
		errs = append(errs, fmt.Errorf("keys: rsa bits %d is outside %d..%d", c.RSABits, minRSABits, maxRSABits))
	}
	if c.JWKSMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("keys: jwks max-age %s is below 1s", c.JWKSMaxAge))
	}
	if c.AccessTokenTTL < 0 {
		errs = append(errs, fmt.Errorf("keys: access token ttl %s is negative", c.AccessTokenTTL))
	}
	if c.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("keys: clock skew %s is negative", c.ClockSkew))
	}
	if c.RotateEvery < 0 {
		errs = append(errs, fmt.Errorf("keys: rotate every %s is negative", c.RotateEvery))
	} else if c.RotateEvery > 0 && c.RotateEvery <= c.JWKSMaxAge {
		errs = append(errs, fmt.Errorf("keys: rotate every %s must exceed the jwks max-age %s", c.RotateEvery, c.JWKSMaxAge))
	}
	return errors.Join(errs...)
}

// retention is how long a retired key stays published: every token it
// signed has expired by then, even for a verifier with a stale JWKS.
func (c KeyConfig) retention() time.Duration {
	return c.AccessTokenTTL + c.ClockSkew + c.JWKSMaxAge
}

// KeyState is where a key is in its lifecycle.
type KeyState string

// Key states, as `verdict keys list` shows them.
const (
	// KeyPending keys are published but do not sign yet.
	KeyPending KeyState = "pending"
	// KeySigning is the key that signs now.
	KeySigning KeyState = "signing"
	// KeyRetired keys no longer sign but stay published until PublishUntil.
	KeyRetired KeyState = "retired"
	// KeyRevoked keys are unpublished and verify nothing.
	KeyRevoked KeyState = "revoked"
)

// KeyInfo describes one key without its private part.
type KeyInfo struct {
	KID          string    `json:"kid"`
	Alg          string    `json:"alg"`
	CreatedAt    time.Time `json:"created"`
	SignFrom     time.Time `json:"sign_from"`
	RetiredAt    time.Time `json:"retired,omitzero"`
	PublishUntil time.Time `json:"publish_until,omitzero"`
	State        KeyState  `json:"state"`
}

// Keyring holds Verdict's signing keys. It is safe for concurrent use:
// readers (Signer, PublicKey, JWKS, List) work on an immutable in-memory
// view swapped atomically; writers (Load, Rotate, Revoke, Tick) are
// serialised and always re-read the store, which is the source of truth.
// Time-dependent transitions (a pending key starting to sign, a retired key
// leaving the JWKS) take effect on read, so a late Tick delays only
// housekeeping. The zero Keyring is not usable: use NewKeyring.
type Keyring struct {
	cfg  KeyConfig
	st   KeyStore
	now  func() time.Time
	mu   sync.Mutex // serialises writers
	view atomic.Pointer[view]
}

// view is an immutable snapshot of the keys; nil until the first Load.
type view struct {
	entries []entry // by CreatedAt, then KID
}

// entry is one key record with its parsed forms. priv and pub are nil for a
// revoked key (revoked records are never parsed, so a corrupt key can
// still be revoked).
type entry struct {
	rec     Key
	priv    jwk.Key
	pub     jwk.Key
	pubJSON []byte
	// raw is priv as a crypto key (*ecdsa.PrivateKey, ed25519.PrivateKey,
	// *rsa.PrivateKey), exported once: Sign would export it again on
	// every call otherwise.
	raw any
}

// NewKeyring returns an empty keyring; call Load before use. now is the
// clock (nil means time.Now). It fails if cfg is invalid or st is nil.
func NewKeyring(cfg KeyConfig, st KeyStore, now func() time.Time) (*Keyring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("keys: nil key store")
	}
	if now == nil {
		now = time.Now
	}
	return &Keyring{cfg: cfg.withDefaults(), st: st, now: now}, nil
}

// clock returns now as stored: UTC, without the monotonic reading, so that
// it compares the same before and after a round trip through the store.
func (r *Keyring) clock() time.Time { return r.now().UTC().Round(0) }

// MaxAge is the JWKS Cache-Control max-age.
func (r *Keyring) MaxAge() time.Duration { return r.cfg.JWKSMaxAge }

// Load reads the keys from the store. If no key can sign now, it generates
// one that signs at once and stores it (on first start no verifier holds a
// cached JWKS that could miss it). If the store cannot be read or a stored
// key is unusable, the keyring keeps what it had; otherwise it shows what
// the store holds and any error is from storing the new key.
func (r *Keyring) Load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := r.read(ctx)
	if err != nil {
		return err
	}
	entries, err = r.ensureSigner(ctx, entries, r.clock())
	r.view.Store(&view{entries: entries})
	return err
}

// Read loads the stored keys as Load does but writes nothing: when no
// stored key can sign, none is made, and List shows none signing. It is for
// listings over a store opened read-only. On error the keyring is
// unchanged.
func (r *Keyring) Read(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := r.read(ctx)
	if err != nil {
		return err
	}
	r.view.Store(&view{entries: entries})
	return nil
}

// Rotate generates and stores a new key that is published at once and
// signs from now + JWKSMaxAge; nothing else changes until then. It returns
// the new key's record without its private part. On error nothing is
// stored and the keyring is unchanged.
func (r *Keyring) Rotate(ctx context.Context) (Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := r.read(ctx)
	if err != nil {
		return Key{}, err
	}
	now := r.clock()
	e, err := r.add(ctx, now, now.Add(r.cfg.JWKSMaxAge))
	if err != nil {
		return Key{}, err
	}
	r.view.Store(&view{entries: append(entries, e)})
	return redact(e.rec), nil
}

// Revoke is the emergency removal of key kid: it is marked revoked and
// leaves the JWKS and verification at once (other replicas follow on their
// next Load or Tick). If then no key can sign, a replacement that signs at
// once is generated. An unknown kid gives an error wrapping ErrUnknownKey.
// If the revocation cannot be stored nothing changes; once stored, it takes
// effect here even if a later step fails.
func (r *Keyring) Revoke(ctx context.Context, kid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, err := r.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("keys: revoke %s: read store: %w", kid, err)
	}
	keys = slices.Clone(keys)
	i := slices.IndexFunc(keys, func(k Key) bool { return k.KID == kid })
	if i < 0 {
		return fmt.Errorf("keys: revoke %q: %w", kid, ErrUnknownKey)
	}
	now := r.clock()
	if k := keys[i]; !k.Revoked {
		k.Revoked = true
		if until := now.Add(r.cfg.retention()); k.PublishUntil.IsZero() || until.Before(k.PublishUntil) {
			k.PublishUntil = until
		}
		if err := r.st.PutKey(ctx, k); err != nil {
			return fmt.Errorf("keys: revoke %s: %w", kid, err)
		}
		keys[i] = k
	}
	entries, err := r.parse(keys)
	if err != nil {
		r.revokeLocal(kid)
		return err
	}
	entries, err = r.ensureSigner(ctx, entries, now)
	r.view.Store(&view{entries: entries})
	return err
}

// revokeLocal marks kid revoked in the current view, for when the store
// holds the revocation but the rest of it cannot be loaded.
func (r *Keyring) revokeLocal(kid string) {
	v := r.view.Load()
	if v == nil {
		return
	}
	entries := slices.Clone(v.entries)
	for i := range entries {
		if entries[i].rec.KID == kid {
			entries[i] = entry{rec: entries[i].rec}
			entries[i].rec.Revoked = true
		}
	}
	r.view.Store(&view{entries: entries})
}

// Tick does the periodic maintenance. It re-reads the store; retires the
// keys a newer signing key has replaced (RetiredAt = when the newer key
// started, PublishUntil = RetiredAt + AccessTokenTTL + ClockSkew +
// JWKSMaxAge); deletes keys whose PublishUntil has passed; rotates if
// RotateEvery is set, the signing key is that old and no key is pending;
// and generates a key that signs at once if none can. If the store cannot
// be read or a stored key is unusable the keyring keeps what it had;
// otherwise it shows what the store holds and the write errors are
// returned joined.
func (r *Keyring) Tick(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := r.read(ctx)
	if err != nil {
		return err
	}
	now := r.clock()
	var errs []error

	if c := signerIndex(entries, now); c >= 0 {
		from := entries[c].rec.SignFrom
		for i := range entries {
			if i == c || !canSign(entries[i].rec, now) {
				continue
			}
			k := entries[i].rec
			k.RetiredAt = from
			k.PublishUntil = from.Add(r.cfg.retention())
			if err := r.st.PutKey(ctx, k); err != nil {
				errs = append(errs, fmt.Errorf("keys: retire %s: %w", k.KID, err))
				continue
			}
			entries[i].rec = k
		}
	}

	kept := entries[:0]
	for _, e := range entries {
		if pu := e.rec.PublishUntil; !pu.IsZero() && !now.Before(pu) {
			err := r.st.DeleteKey(ctx, e.rec.KID)
			if err == nil || errors.Is(err, ErrUnknownKey) {
				continue
			}
			errs = append(errs, fmt.Errorf("keys: delete %s: %w", e.rec.KID, err))
		}
		kept = append(kept, e)
	}
	entries = kept

	if r.cfg.RotateEvery > 0 {
		c := signerIndex(entries, now)
		pending := slices.ContainsFunc(entries, func(e entry) bool {
			return !e.rec.Revoked && e.rec.SignFrom.After(now)
		})
		if c >= 0 && !pending && now.Sub(entries[c].rec.CreatedAt) >= r.cfg.RotateEvery {
			e, err := r.add(ctx, now, now.Add(r.cfg.JWKSMaxAge))
			if err != nil {
				errs = append(errs, err)
			} else {
				entries = append(entries, e)
			}
		}
	}

	entries, err = r.ensureSigner(ctx, entries, now)
	errs = append(errs, err)
	r.view.Store(&view{entries: entries})
	return errors.Join(errs...)
}

// Signer returns the private key that signs now, and its record without
// the private part: the key with the latest SignFrom among those not
// revoked, not retired and with SignFrom <= now. The jwk.Key carries kid
// and alg and is shared: do not modify it. It returns an error wrapping
// ErrNotLoaded before the first successful Load, or ErrNoSigner if no key
// can sign.
func (r *Keyring) Signer() (jwk.Key, Key, error) {
	v := r.view.Load()
	if v == nil {
		return nil, Key{}, fmt.Errorf("keys: %w", ErrNotLoaded)
	}
	i := signerIndex(v.entries, r.clock())
	if i < 0 {
		return nil, Key{}, fmt.Errorf("keys: %w", ErrNoSigner)
	}
	return v.entries[i].priv, redact(v.entries[i].rec), nil
}

// PublicKey returns the public key kid for verifying a token, if it is
// published now (not revoked, and PublishUntil unset or in the future);
// false otherwise, and before the first Load. The key is shared: do not
// modify it.
func (r *Keyring) PublicKey(kid string) (jwk.Key, bool) {
	v := r.view.Load()
	if v == nil {
		return nil, false
	}
	now := r.clock()
	for _, e := range v.entries {
		if e.rec.KID == kid && published(e.rec, now) {
			return e.pub, true
		}
	}
	return nil, false
}

// JWKS returns the JSON Web Key Set {"keys":[...]} of every key published
// now, oldest first: public parts only, each with kid, alg and use "sig".
// It fails with an error wrapping ErrNotLoaded before the first Load.
func (r *Keyring) JWKS() ([]byte, error) {
	v := r.view.Load()
	if v == nil {
		return nil, fmt.Errorf("keys: %w", ErrNotLoaded)
	}
	now := r.clock()
	var b bytes.Buffer
	b.WriteString(`{"keys":[`)
	first := true
	for _, e := range v.entries {
		if !published(e.rec, now) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(e.pubJSON)
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// List describes every stored key, oldest first, with its state now. It
// is empty before the first Load.
func (r *Keyring) List() []KeyInfo {
	v := r.view.Load()
	if v == nil {
		return nil
	}
	now := r.clock()
	signer := signerIndex(v.entries, now)
	out := make([]KeyInfo, 0, len(v.entries))
	for i, e := range v.entries {
		k := e.rec
		state := KeyRetired
		switch {
		case k.Revoked:
			state = KeyRevoked
		case i == signer:
			state = KeySigning
		case k.SignFrom.After(now):
			state = KeyPending
		}
		out = append(out, KeyInfo{
			KID: k.KID, Alg: k.Alg, CreatedAt: k.CreatedAt, SignFrom: k.SignFrom,
			RetiredAt: k.RetiredAt, PublishUntil: k.PublishUntil, State: state,
		})
	}
	return out
}

// canSign reports whether k is allowed to sign at now.
func canSign(k Key, now time.Time) bool {
	return !k.Revoked && !k.SignFrom.After(now) && (k.RetiredAt.IsZero() || now.Before(k.RetiredAt))
}

// published reports whether k is in the JWKS at now.
func published(k Key, now time.Time) bool {
	return !k.Revoked && (k.PublishUntil.IsZero() || now.Before(k.PublishUntil))
}

// signerIndex is the index of the key that signs at now, or -1. Of several
// keys that may sign, the one that started last wins: that is the one a
// rotation meant to take over, and it is what Tick's RetiredAt assumes.
func signerIndex(entries []entry, now time.Time) int {
	best := -1
	for i, e := range entries {
		if !canSign(e.rec, now) {
			continue
		}
		if best < 0 || later(e.rec, entries[best].rec) {
			best = i
		}
	}
	return best
}

// later orders candidate signers by SignFrom, then CreatedAt, then KID.
func later(a, b Key) bool {
	if c := a.SignFrom.Compare(b.SignFrom); c != 0 {
		return c > 0
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c > 0
	}
	return a.KID > b.KID
}

// redact returns k without its private key.
func redact(k Key) Key {
	k.PrivateJWK = nil
	return k
}

// read loads and parses every stored key.
func (r *Keyring) read(ctx context.Context) ([]entry, error) {
	keys, err := r.st.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: read store: %w", err)
	}
	return r.parse(keys)
}

// parse turns records into entries sorted by CreatedAt, reusing the parsed
// keys of the current view where the private key is unchanged. Every
// unusable record is reported.
func (r *Keyring) parse(keys []Key) ([]entry, error) {
	old := map[string]entry{}
	if v := r.view.Load(); v != nil {
		for _, e := range v.entries {
			if e.priv != nil {
				old[e.rec.KID] = e
			}
		}
	}
	entries := make([]entry, 0, len(keys))
	var errs []error
	for _, k := range keys {
		if k.Revoked {
			entries = append(entries, entry{rec: k})
			continue
		}
		if o, ok := old[k.KID]; ok && o.rec.Alg == k.Alg && bytes.Equal(o.rec.PrivateJWK, k.PrivateJWK) {
			o.rec = k
			entries = append(entries, o)
			continue
		}
		e, err := newEntry(k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries = append(entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := a.rec.CreatedAt.Compare(b.rec.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.rec.KID, b.rec.KID)
	})
	return entries, nil
}

// ensureSigner generates and stores a key that signs at once if no key can
// sign at now. On error entries are returned unchanged.
func (r *Keyring) ensureSigner(ctx context.Context, entries []entry, now time.Time) ([]entry, error) {
	if signerIndex(entries, now) >= 0 {
		return entries, nil
	}
	e, err := r.add(ctx, now, now)
	if err != nil {
		return entries, err
	}
	return append(entries, e), nil
}

// add generates a key of the configured algorithm and stores it.
func (r *Keyring) add(ctx context.Context, now, signFrom time.Time) (entry, error) {
	e, err := generate(r.cfg.Alg, r.cfg.RSABits, now, signFrom)
	if err != nil {
		return entry{}, err
	}
	if err := r.st.PutKey(ctx, e.rec); err != nil {
		return entry{}, fmt.Errorf("keys: store new key %s: %w", e.rec.KID, err)
	}
	return e, nil
}

// generate makes a new key record and its parsed forms.
func generate(alg string, rsaBits int, now, signFrom time.Time) (entry, error) {
	var raw any
	var err error
	switch alg {
	case AlgES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case AlgRS256:
		raw, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		err = fmt.Errorf("unsupported alg %q", alg)
	}
	if err != nil {
		return entry{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		return entry{}, fmt.Errorf("keys: import %s key: %w", alg, err)
	}
	kid, err := thumbprint(priv)
	if err != nil {
		return entry{}, err
	}
	if err := label(priv, kid, alg); err != nil {
		return entry{}, err
	}
	buf, err := json.Marshal(priv)
	if err != nil {
		return entry{}, fmt.Errorf("keys: encode new key: %w", err)
	}
	// Go through the same checks as a stored key, so that whatever is
	// generated is known to load again.
	return newEntry(Key{KID: kid, Alg: alg, PrivateJWK: buf, CreatedAt: now, SignFrom: signFrom})
}

// newEntry parses and checks a stored key: a private key of the type its
// alg needs, whose thumbprint is its kid.
func newEntry(k Key) (entry, error) {
	fail := func(format string, args ...any) (entry, error) {
		return entry{}, fmt.Errorf("keys: stored key %q: %s", k.KID, fmt.Sprintf(format, args...))
	}
	priv, err := jwk.ParseKey(k.PrivateJWK)
	if err != nil {
		return fail("parse: %v", err)
	}
	if isPriv, err := jwk.IsPrivateKey(priv); err != nil || !isPriv {
		return fail("not a private key")
	}
	var raw any
	if err := jwk.Export(priv, &raw); err != nil {
		return fail("export: %v", err)
	}
	ok := false
	switch k.Alg {
	case AlgES256:
		ek, isEC := raw.(*ecdsa.PrivateKey)
		ok = isEC && ek.Curve == elliptic.P256()
	case AlgEdDSA:
		_, ok = raw.(ed25519.PrivateKey)
	case AlgRS256:
		rk, isRSA := raw.(*rsa.PrivateKey)
		ok = isRSA && rk.N.BitLen() >= minRSABits
	}
	if !ok {
		return fail("key type %s does not fit alg %q", priv.KeyType(), k.Alg)
	}
	kid, err := thumbprint(priv)
	if err != nil {
		return entry{}, err
	}
	if kid != k.KID {
		return fail("thumbprint is %s", kid)
	}
	if err := label(priv, kid, k.Alg); err != nil {
		return entry{}, err
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return fail("public key: %v", err)
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return fail("encode public key: %v", err)
	}
	return entry{rec: k, priv: priv, pub: pub, pubJSON: pubJSON, raw: raw}, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of k's public key,
// base64url without padding.
func thumbprint(k jwk.Key) (string, error) {
	pub, err := k.PublicKey()
	if err != nil {
		return "", fmt.Errorf("keys: public key: %w", err)
	}
	h, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(h), nil
}

// label sets kid, alg and use "sig" on k (PublicKey copies them).
func label(k jwk.Key, kid, alg string) error {
	sa, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return fmt.Errorf("keys: unknown alg %q", alg)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: sa, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := k.Set(name, v); err != nil {
			return fmt.Errorf("keys: set %s: %w", name, err)
		}
	}
	return nil
}
