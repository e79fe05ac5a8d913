package apikeys_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	b   *store.Bolt
	clk *clock
}

func newEnv(t *testing.T) env {
	clk := &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return env{b: b, clk: clk}
}

// service is a replica's key service over the shared store.
func (e env) service(t *testing.T, cfg apikeys.Config) *apikeys.Service {
	t.Helper()
	revs := storeadapt.Revocations(e.b, store.DefaultNamespace)
	s, err := apikeys.New(cfg, storeadapt.APIKeys(e.b, store.DefaultNamespace), revs, []byte("0123456789abcdef0123456789abcdef"), nil, e.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeyFormat(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, apikeys.Config{})
	k, text, err := s.Create(context.Background(), apikeys.Spec{Name: "svc", Scopes: []string{"verdict:decide"}})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^vk_[a-z2-7]{16}_[a-z2-7]{59}$`).MatchString(text) || len(text) != apikeys.KeyLen {
		t.Fatalf("key %q", text)
	}
	id, err := apikeys.Parse(text)
	if err != nil || id != k.ID {
		t.Fatalf("parse: %q %v", id, err)
	}
	// Every single-character typo is caught by the checksum or the
	// alphabet, before any lookup.
	for i := len(apikeys.Prefix); i < len(text); i++ {
		if text[i] == '_' {
			continue
		}
		typo := []byte(text)
		typo[i] = map[bool]byte{true: 'b', false: 'a'}[typo[i] == 'a']
		if _, err := apikeys.Parse(string(typo)); !errors.Is(err, apikeys.ErrMalformed) {
			t.Fatalf("typo at %d accepted", i)
		}
	}
	for _, bad := range []string{"", "vk_", strings.Replace(text, "vk_", "xk_", 1), text + "a", strings.ToUpper(text), "Bearer " + text} {
		if _, err := apikeys.Parse(bad); !errors.Is(err, apikeys.ErrMalformed) {
			t.Errorf("%q parsed", bad)
		}
	}
	if strings.Contains(string(k.SecretHMAC), text) {
		t.Fatal("the key is stored")
	}
}

func TestVerifyRotateRevokeExpire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.service(t, apikeys.Config{}), e.service(t, apikeys.Config{}) // two replicas
	k, text, err := a.Create(ctx, apikeys.Spec{Name: "billing", Scopes: []string{"verdict:decide", "verdict:decide"}, ExpiresIn: 90 * 24 * time.Hour, CreatedBy: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := b.Verify(ctx, text)
	if err != nil || claims["scope"] != "verdict:decide" || claims.Subject() != "apikey:"+k.ID || claims["apikey_name"] != "billing" || claims.Issuer() != apikeys.Issuer {
		t.Fatalf("verify: %v %v", claims, err)
	}
	// Another key's id with this key's secret, and a made-up key of the
	// right form: refused alike.
	_, other, _ := a.Create(ctx, apikeys.Spec{Name: "other", Scopes: []string{"read"}})
	swapped := apikeys.Prefix + other[3:19] + text[19:len(text)-7]
	swapped += checksumOf(t, swapped, other)
	for name, bad := range map[string]string{"swapped id": swapped} {
		if _, err := b.Verify(ctx, bad); !errors.Is(err, apikeys.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Rotation on replica a: both secrets work on b (cached or not) until
	// the overlap ends, then only the new one.
	_, newText, err := a.Rotate(ctx, k.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []string{text, newText} {
		if _, err := b.Verify(ctx, tx); err != nil {
			t.Fatalf("during the overlap: %v", err)
		}
	}
	e.clk.add(61 * time.Minute)
	if _, err := b.Verify(ctx, text); !errors.Is(err, apikeys.ErrInvalid) {
		t.Fatalf("the old secret after the overlap: %v", err)
	}
	if _, err := b.Verify(ctx, newText); err != nil {
		t.Fatal(err)
	}
	// Revocation on a: b refuses at once although it cached the record
	// (the revocation store is checked on every use).
	if err := a.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, newText); !errors.Is(err, apikeys.ErrInvalid) {
		t.Fatalf("revoked key verified on the other replica: %v", err)
	}
	if _, _, err := a.Rotate(ctx, k.ID, 0); !errors.Is(err, apikeys.ErrInvalid) {
		t.Fatalf("a revoked key rotated: %v", err)
	}
	if err := a.Revoke(ctx, k.ID); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	// Expiry.
	_, short, _ := a.Create(ctx, apikeys.Spec{Name: "short", Scopes: []string{"read"}, ExpiresIn: time.Hour})
	if _, err := b.Verify(ctx, short); err != nil {
		t.Fatal(err)
	}
	e.clk.add(time.Hour)
	if _, err := b.Verify(ctx, short); !errors.Is(err, apikeys.ErrInvalid) {
		t.Fatalf("expired key: %v", err)
	}
	list, _ := a.List(ctx)
	states := map[string]string{}
	for _, in := range list {
		states[in.Name] = in.State
	}
	if states["billing"] != apikeys.StateRevoked || states["short"] != apikeys.StateExpired || states["other"] != apikeys.StateActive {
		t.Fatalf("states %v", states)
	}
}

// checksumOf gives a hand-made key the checksum Parse wants, so that the
// test reaches the lookup.
func checksumOf(t *testing.T, body, _ string) string {
	t.Helper()
	return apikeys.CRC(body)
}

func TestSpecsAndUseCounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.service(t, apikeys.Config{MaxLifetime: 365 * 24 * time.Hour})
	for name, sp := range map[string]apikeys.Spec{
		"no name":          {Scopes: []string{"read"}, ExpiresIn: time.Hour},
		"no scope":         {Name: "x", ExpiresIn: time.Hour},
		"unknown verdict:": {Name: "x", Scopes: []string{"verdict:nope"}, ExpiresIn: time.Hour},
		"no expiry":        {Name: "x", Scopes: []string{"read"}},
		"too long":         {Name: "x", Scopes: []string{"read"}, ExpiresIn: 400 * 24 * time.Hour},
	} {
		if _, _, err := s.Create(ctx, sp); !errors.Is(err, apikeys.ErrSpec) {
			t.Errorf("%s: %v", name, err)
		}
	}
	k, text, err := s.Create(ctx, apikeys.Spec{Name: "counted", Scopes: []string{"read"}, ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := s.Verify(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	if u, _ := e.b.APIKeyUse(ctx, store.DefaultNamespace, k.ID); u.Count != 0 {
		t.Fatalf("a use was written per request: %+v", u)
	}
	if in, _ := s.Get(ctx, k.ID); in.UseCount != 5 {
		t.Fatalf("listing before the flush: %+v", in)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.b.APIKeyUse(ctx, store.DefaultNamespace, k.ID); u.Count != 5 || !u.LastUsedAt.Equal(e.clk.now()) {
		t.Fatalf("after the flush: %+v", u)
	}
	if in, _ := s.Get(ctx, k.ID); in.UseCount != 5 {
		t.Fatalf("counted twice: %+v", in)
	}
}
