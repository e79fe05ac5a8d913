package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// memStore is an in-memory KeyStore that can be made to fail.
type memStore struct {
	mu      sync.Mutex
	keys    map[string]Key
	failErr error // returned by every call while set
}

func newMemStore() *memStore { return &memStore{keys: map[string]Key{}} }

func (s *memStore) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

func (s *memStore) PutKey(_ context.Context, k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	k.PrivateJWK = slices.Clone(k.PrivateJWK)
	s.keys[k.KID] = k
	return nil
}

func (s *memStore) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return nil, s.failErr
	}
	var out []Key
	for _, kid := range slices.Sorted(maps.Keys(s.keys)) {
		k := s.keys[kid]
		k.PrivateJWK = slices.Clone(k.PrivateJWK)
		out = append(out, k)
	}
	return out, nil
}

func (s *memStore) DeleteKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if _, ok := s.keys[kid]; !ok {
		return fmt.Errorf("delete %s: %w", kid, ErrUnknownKey)
	}
	delete(s.keys, kid)
	return nil
}

func (s *memStore) get(kid string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	return k, ok
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

var _ KeyStore = (*memStore)(nil)

func testConfig() KeyConfig {
	cfg := DefaultKeyConfig()
	cfg.RSABits = 2048 // keep RSA generation fast
	return cfg
}

func newRing(t *testing.T, cfg KeyConfig, st KeyStore, clk *jwttest.Clock) *Keyring {
	t.Helper()
	r, err := NewKeyring(cfg, st, clk.Now)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

func mustLoad(t *testing.T, r *Keyring) {
	t.Helper()
	if err := r.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func mustTick(t *testing.T, r *Keyring) {
	t.Helper()
	if err := r.Tick(context.Background()); err != nil {
		t.Fatalf("Tick: %v", err)
	}
}

func signerKID(t *testing.T, r *Keyring) string {
	t.Helper()
	_, k, err := r.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	return k.KID
}

// jwksKeys parses r.JWKS() into its members.
func jwksKeys(t *testing.T, r *Keyring) []map[string]any {
	t.Helper()
	buf, err := r.JWKS()
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(buf, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, buf)
	}
	return set.Keys
}

func jwksKIDs(t *testing.T, r *Keyring) []string {
	t.Helper()
	var kids []string
	for _, k := range jwksKeys(t, r) {
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func stateOf(r *Keyring, kid string) KeyState {
	for _, k := range r.List() {
		if k.KID == kid {
			return k.State
		}
	}
	return ""
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 §3.1; alg and kid are not part of the thumbprint.
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	key, err := jwk.ParseKey([]byte(`{"kty":"RSA","n":"` + n + `","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := thumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint = %s, want %s", got, want)
	}
}

// TestKIDIsThumbprint recomputes each published key's RFC 7638 thumbprint
// from its JWKS members by hand and checks the JWKS carries no private part.
func TestKIDIsThumbprint(t *testing.T) {
	required := map[string][]string{"EC": {"crv", "kty", "x", "y"}, "OKP": {"crv", "kty", "x"}, "RSA": {"e", "kty", "n"}}
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := testConfig()
			cfg.Alg = alg
			r := newRing(t, cfg, newMemStore(), jwttest.NewClock())
			mustLoad(t, r)
			if _, err := r.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			keys := jwksKeys(t, r)
			if len(keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2", len(keys))
			}
			for _, m := range keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
					if _, ok := m[private]; ok {
						t.Errorf("JWKS key has private member %q", private)
					}
				}
				if m["alg"] != alg || m["use"] != "sig" {
					t.Errorf("JWKS key alg=%v use=%v, want %s sig", m["alg"], m["use"], alg)
				}
				canon := map[string]string{}
				for _, name := range required[m["kty"].(string)] {
					canon[name] = m[name].(string)
				}
				buf, _ := json.Marshal(canon) // sorted members, no whitespace
				sum := sha256.Sum256(buf)
				if want := base64.RawURLEncoding.EncodeToString(sum[:]); m["kid"] != want {
					t.Errorf("kid = %v, want thumbprint %s", m["kid"], want)
				}
			}
		})
	}
}

func TestLoadFirstStartAndReuse(t *testing.T) {
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, KeyConfig{}, st, clk)

	if _, _, err := r.Signer(); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Signer before Load: err = %v, want ErrNotLoaded", err)
	}
	if _, err := r.JWKS(); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("JWKS before Load: err = %v, want ErrNotLoaded", err)
	}

	mustLoad(t, r)
	if st.len() != 1 {
		t.Fatalf("store has %d keys, want 1", st.len())
	}
	priv, k, err := r.Signer()
	if err != nil {
		t.Fatal(err)
	}
	if k.Alg != AlgES256 || !k.SignFrom.Equal(clk.Now()) || !k.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("first key = %+v, want ES256 signing from now", k)
	}
	if k.PrivateJWK != nil {
		t.Fatal("Signer's record carries the private JWK")
	}
	if kid, _ := priv.KeyID(); kid != k.KID {
		t.Fatalf("signing jwk kid = %q, want %q", kid, k.KID)
	}
	if got := jwksKIDs(t, r); !slices.Equal(got, []string{k.KID}) {
		t.Fatalf("JWKS kids = %v", got)
	}

	// A restart (or a second replica) reuses the stored key.
	clk.Advance(time.Hour)
	r2 := newRing(t, KeyConfig{}, st, clk)
	mustLoad(t, r2)
	if got := signerKID(t, r2); got != k.KID {
		t.Fatalf("second Load signs with %s, want %s", got, k.KID)
	}
	if st.len() != 1 {
		t.Fatalf("store has %d keys after second Load, want 1", st.len())
	}
}

func TestRotateLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, cfg, st, clk)
	mustLoad(t, r)
	oldKID := signerKID(t, r)

	clk.Advance(time.Hour)
	nk, err := r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(cfg.JWKSMaxAge); !nk.SignFrom.Equal(want) {
		t.Fatalf("new key SignFrom = %v, want %v", nk.SignFrom, want)
	}
	if got := jwksKIDs(t, r); !slices.Equal(got, []string{oldKID, nk.KID}) {
		t.Fatalf("JWKS after Rotate = %v, want old then new", got)
	}
	if _, ok := r.PublicKey(nk.KID); !ok {
		t.Fatal("new key not available for verification")
	}
	if stateOf(r, nk.KID) != KeyPending || stateOf(r, oldKID) != KeySigning {
		t.Fatalf("states: %+v", r.List())
	}

	// Just before SignFrom, the old key still signs, Tick or not.
	clk.Advance(cfg.JWKSMaxAge - time.Second)
	mustTick(t, r)
	if got := signerKID(t, r); got != oldKID {
		t.Fatalf("signer before SignFrom = %s, want old key", got)
	}
	if k, _ := st.get(oldKID); !k.RetiredAt.IsZero() {
		t.Fatal("old key retired before the new one signs")
	}

	// From SignFrom the new key signs; Tick retires the old one.
	clk.Advance(3 * time.Second)
	mustTick(t, r)
	if got := signerKID(t, r); got != nk.KID {
		t.Fatalf("signer after SignFrom = %s, want new key", got)
	}
	old, _ := st.get(oldKID)
	wantUntil := nk.SignFrom.Add(cfg.AccessTokenTTL + cfg.ClockSkew + cfg.JWKSMaxAge)
	if !old.RetiredAt.Equal(nk.SignFrom) || !old.PublishUntil.Equal(wantUntil) {
		t.Fatalf("old key retired=%v until=%v, want %v %v", old.RetiredAt, old.PublishUntil, nk.SignFrom, wantUntil)
	}
	if stateOf(r, oldKID) != KeyRetired || stateOf(r, nk.KID) != KeySigning {
		t.Fatalf("states: %+v", r.List())
	}

	// Still published (and verifying) until PublishUntil.
	clk.Advance(wantUntil.Sub(clk.Now()) - time.Second)
	mustTick(t, r)
	if got := jwksKIDs(t, r); !slices.Equal(got, []string{oldKID, nk.KID}) {
		t.Fatalf("JWKS before PublishUntil = %v", got)
	}
	if _, ok := r.PublicKey(oldKID); !ok {
		t.Fatal("retired key stopped verifying before PublishUntil")
	}

	// Then gone, from the JWKS at once and from the store on Tick.
	clk.Advance(time.Second)
	if got := jwksKIDs(t, r); !slices.Equal(got, []string{nk.KID}) {
		t.Fatalf("JWKS at PublishUntil = %v", got)
	}
	mustTick(t, r)
	if _, ok := st.get(oldKID); ok {
		t.Fatal("expired key still stored after Tick")
	}
	if _, ok := r.PublicKey(oldKID); ok {
		t.Fatal("expired key still verifies")
	}
	if n := len(r.List()); n != 1 {
		t.Fatalf("List has %d keys, want 1", n)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()

	t.Run("signer without successor gets a replacement", func(t *testing.T) {
		st, clk := newMemStore(), jwttest.NewClock()
		r := newRing(t, cfg, st, clk)
		mustLoad(t, r)
		replica := newRing(t, cfg, st, clk)
		mustLoad(t, replica)
		kid := signerKID(t, r)

		if err := r.Revoke(ctx, kid); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.PublicKey(kid); ok {
			t.Fatal("revoked key still verifies")
		}
		if slices.Contains(jwksKIDs(t, r), kid) {
			t.Fatal("revoked key still in JWKS")
		}
		priv, k, err := r.Signer()
		if err != nil || k.KID == kid || priv == nil {
			t.Fatalf("replacement signer = %v, %v", k.KID, err)
		}
		if !k.SignFrom.Equal(clk.Now()) {
			t.Fatalf("replacement signs from %v, want now", k.SignFrom)
		}
		if stateOf(r, kid) != KeyRevoked {
			t.Fatalf("states: %+v", r.List())
		}

		// Another replica follows on its next Tick.
		mustTick(t, replica)
		if _, ok := replica.PublicKey(kid); ok {
			t.Fatal("replica still verifies the revoked key after Tick")
		}
		if got := signerKID(t, replica); got != k.KID {
			t.Fatalf("replica signs with %s, want %s", got, k.KID)
		}
		if st.len() != 2 {
			t.Fatalf("store has %d keys, want revoked + replacement", st.len())
		}

		// The revoked record goes away once its tokens would have expired.
		clk.Advance(cfg.AccessTokenTTL + cfg.ClockSkew + cfg.JWKSMaxAge)
		mustTick(t, r)
		if _, ok := st.get(kid); ok {
			t.Fatal("revoked record kept forever")
		}
	})

	t.Run("pending key leaves the signer alone", func(t *testing.T) {
		st, clk := newMemStore(), jwttest.NewClock()
		r := newRing(t, cfg, st, clk)
		mustLoad(t, r)
		signer := signerKID(t, r)
		pending, err := r.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Revoke(ctx, pending.KID); err != nil {
			t.Fatal(err)
		}
		if got := jwksKIDs(t, r); !slices.Equal(got, []string{signer}) {
			t.Fatalf("JWKS = %v, want only the signer", got)
		}
		clk.Advance(cfg.JWKSMaxAge)
		mustTick(t, r)
		if got := signerKID(t, r); got != signer {
			t.Fatalf("revoked pending key took over signing")
		}
		if st.len() != 2 {
			t.Fatalf("store has %d keys, want 2 (no replacement)", st.len())
		}
	})

	t.Run("unknown kid", func(t *testing.T) {
		r := newRing(t, cfg, newMemStore(), jwttest.NewClock())
		mustLoad(t, r)
		if err := r.Revoke(ctx, "nope"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})

	t.Run("store failure changes nothing", func(t *testing.T) {
		st, clk := newMemStore(), jwttest.NewClock()
		r := newRing(t, cfg, st, clk)
		mustLoad(t, r)
		kid := signerKID(t, r)
		st.fail(errors.New("down"))
		if err := r.Revoke(ctx, kid); err == nil {
			t.Fatal("Revoke succeeded with the store down")
		}
		if _, ok := r.PublicKey(kid); !ok {
			t.Fatal("failed revoke removed the key")
		}
	})

	t.Run("corrupt record can be revoked", func(t *testing.T) {
		st, clk := newMemStore(), jwttest.NewClock()
		r := newRing(t, cfg, st, clk)
		mustLoad(t, r)
		good := signerKID(t, r)
		bad, _ := st.get(good)
		bad.KID = "corrupt"
		if err := st.PutKey(ctx, bad); err != nil { // kid is not its thumbprint
			t.Fatal(err)
		}
		if err := newRing(t, cfg, st, clk).Load(ctx); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("Load with a corrupt key: err = %v", err)
		}
		if err := r.Revoke(ctx, "corrupt"); err != nil {
			t.Fatal(err)
		}
		mustLoad(t, newRing(t, cfg, st, clk))
	})
}

func TestAutomaticRotation(t *testing.T) {
	cfg := testConfig()
	cfg.RotateEvery = 24 * time.Hour
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, cfg, st, clk)
	mustLoad(t, r)
	first := signerKID(t, r)

	clk.Advance(cfg.RotateEvery - time.Second)
	mustTick(t, r)
	if st.len() != 1 {
		t.Fatal("rotated before RotateEvery")
	}

	clk.Advance(time.Second)
	mustTick(t, r)
	if st.len() != 2 {
		t.Fatalf("store has %d keys at RotateEvery, want 2", st.len())
	}
	mustTick(t, r) // a key is pending: no second rotation
	if st.len() != 2 {
		t.Fatalf("rotated again while a key was pending")
	}
	if got := signerKID(t, r); got != first {
		t.Fatal("new key signs before a JWKS max-age passed")
	}

	clk.Advance(cfg.JWKSMaxAge)
	mustTick(t, r)
	second := signerKID(t, r)
	if second == first {
		t.Fatal("automatic rotation never took over")
	}
	if stateOf(r, first) != KeyRetired {
		t.Fatalf("states: %+v", r.List())
	}
}

func TestAlgorithmsSignAndVerify(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := testConfig()
			cfg.Alg = alg
			r := newRing(t, cfg, newMemStore(), jwttest.NewClock())
			mustLoad(t, r)
			priv, k, err := r.Signer()
			if err != nil {
				t.Fatal(err)
			}
			if k.Alg != alg {
				t.Fatalf("alg = %s, want %s", k.Alg, alg)
			}
			sa, _ := jwa.LookupSignatureAlgorithm(k.Alg)
			payload := []byte(`{"sub":"alice"}`)
			tok, err := jws.Sign(payload, jws.WithKey(sa, priv))
			if err != nil {
				t.Fatal(err)
			}

			msg, err := jws.Parse(tok)
			if err != nil {
				t.Fatal(err)
			}
			kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
			if kid != k.KID {
				t.Fatalf("token kid = %q, want %q", kid, k.KID)
			}
			pub, ok := r.PublicKey(kid)
			if !ok {
				t.Fatal("no public key for the signer's kid")
			}
			if got, err := jws.Verify(tok, jws.WithKey(sa, pub)); err != nil || string(got) != string(payload) {
				t.Fatalf("verify with PublicKey: %q, %v", got, err)
			}

			// A resource server verifying against the published JWKS.
			buf, _ := r.JWKS()
			set, err := jwk.Parse(buf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(tok, jws.WithKeySet(set)); err != nil {
				t.Fatalf("verify with JWKS: %v", err)
			}

			// After an emergency revoke the token no longer verifies.
			if err := r.Revoke(context.Background(), kid); err != nil {
				t.Fatal(err)
			}
			if _, ok := r.PublicKey(kid); ok {
				t.Fatal("revoked key still verifies")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*KeyConfig)
		want []string // substrings of the error; none means valid
	}{
		{"defaults", func(*KeyConfig) {}, nil},
		{"zero value", func(c *KeyConfig) { *c = KeyConfig{} }, nil},
		{"eddsa", func(c *KeyConfig) { c.Alg = AlgEdDSA }, nil},
		{"rs256 2048", func(c *KeyConfig) { c.Alg, c.RSABits = AlgRS256, 2048 }, nil},
		{"rs256 1024", func(c *KeyConfig) { c.Alg, c.RSABits = AlgRS256, 1024 }, []string{"rsa bits 1024"}},
		{"unknown alg", func(c *KeyConfig) { c.Alg = "HS256" }, []string{`"HS256"`}},
		{"rotation too fast", func(c *KeyConfig) { c.RotateEvery = time.Minute }, []string{"rotate every"}},
		{"all problems", func(c *KeyConfig) {
			*c = KeyConfig{Alg: "none", RSABits: 512, JWKSMaxAge: -1, AccessTokenTTL: -1, ClockSkew: -1, RotateEvery: -1}
		}, []string{`"none"`, "rsa bits", "max-age", "access token", "clock skew", "rotate every"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultKeyConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := NewKeyring(cfg, newMemStore(), nil); err == nil {
				t.Error("NewKeyring accepted an invalid config")
			}
		})
	}
}

func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, testConfig(), st, clk)

	st.fail(errors.New("down"))
	if err := r.Load(ctx); err == nil {
		t.Fatal("Load succeeded with the store down")
	}
	st.fail(nil)
	mustLoad(t, r)
	kid := signerKID(t, r)

	// Fail-static: the loaded keys keep signing and verifying.
	st.fail(errors.New("down"))
	if err := r.Tick(ctx); err == nil {
		t.Fatal("Tick succeeded with the store down")
	}
	if _, err := r.Rotate(ctx); err == nil {
		t.Fatal("Rotate succeeded with the store down")
	}
	if got := signerKID(t, r); got != kid {
		t.Fatalf("signer changed to %s", got)
	}
	if _, ok := r.PublicKey(kid); !ok {
		t.Fatal("key lost while the store is down")
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig()
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, cfg, st, clk)
	mustLoad(t, r)

	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			payload := []byte("x")
			for ctx.Err() == nil {
				priv, k, err := r.Signer()
				if err != nil {
					errc <- err
					return
				}
				sa, _ := jwa.LookupSignatureAlgorithm(k.Alg)
				tok, err := jws.Sign(payload, jws.WithKey(sa, priv))
				if err != nil {
					errc <- err
					return
				}
				// The key may have expired in between; only a published
				// key must verify.
				if pub, ok := r.PublicKey(k.KID); ok {
					if _, err := jws.Verify(tok, jws.WithKey(sa, pub)); err != nil {
						errc <- err
						return
					}
				}
				if _, err := r.JWKS(); err != nil {
					errc <- err
					return
				}
				_ = r.List()
			}
		})
	}
	for i := range 20 {
		if _, err := r.Rotate(ctx); err != nil {
			t.Error(err)
		}
		clk.Advance(cfg.JWKSMaxAge + time.Second)
		if err := r.Tick(ctx); err != nil {
			t.Error(err)
		}
		if i%5 == 0 {
			if err := r.Revoke(ctx, signerKID(t, r)); err != nil {
				t.Error(err)
			}
		}
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
