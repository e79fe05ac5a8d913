package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
)

// rfStore is an in-memory RefreshStore. Rotate is a compare-and-swap under
// the mutex, atomic like the bbolt store's.
type rfStore struct {
	mu      sync.Mutex
	fams    map[string]RefreshToken
	failErr error           // returned by every call while set
	barrier *sync.WaitGroup // when set, Family waits until every reader arrived
}

var _ RefreshStore = (*rfStore)(nil)

func newRFStore() *rfStore { return &rfStore{fams: map[string]RefreshToken{}} }

func cloneRT(t RefreshToken) RefreshToken {
	t.TokenHash = slices.Clone(t.TokenHash)
	t.PrevHash = slices.Clone(t.PrevHash)
	t.Scopes = slices.Clone(t.Scopes)
	t.AccessJTIs = slices.Clone(t.AccessJTIs)
	return t
}

func (s *rfStore) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

func (s *rfStore) setBarrier(wg *sync.WaitGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.barrier = wg
}

func (s *rfStore) CreateFamily(_ context.Context, t RefreshToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if _, ok := s.fams[t.Family]; ok {
		return ErrFamilyConflict
	}
	s.fams[t.Family] = cloneRT(t)
	return nil
}

func (s *rfStore) Rotate(_ context.Context, family string, oldHash []byte, next RefreshToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	cur, ok := s.fams[family]
	if !ok || cur.Revoked || !bytes.Equal(cur.TokenHash, oldHash) {
		return ErrFamilyConflict
	}
	next = cloneRT(next)
	next.PrevHash = slices.Clone(oldHash)
	s.fams[family] = next
	return nil
}

func (s *rfStore) Family(_ context.Context, family string) (RefreshToken, error) {
	s.mu.Lock()
	b := s.barrier
	t, ok := s.fams[family]
	err := s.failErr
	s.mu.Unlock()
	if b != nil {
		// Hold the snapshot until every reader has taken one.
		b.Done()
		b.Wait()
	}
	if err != nil {
		return RefreshToken{}, err
	}
	if !ok {
		return RefreshToken{}, ErrUnknownFamily
	}
	return cloneRT(t), nil
}

func (s *rfStore) RevokeFamily(_ context.Context, family string) (RefreshToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return RefreshToken{}, s.failErr
	}
	t, ok := s.fams[family]
	if !ok {
		return RefreshToken{}, ErrUnknownFamily
	}
	t.Revoked = true
	s.fams[family] = t
	return cloneRT(t), nil
}

func (s *rfStore) get(family string) (RefreshToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.fams[family]
	return cloneRT(t), ok
}

// rfRevocations is a RevocationStore over the fakeRevocations the test
// Verifier checks, so that what Revoke records is what Verify sees.
type rfRevocations struct {
	checker *fakeRevocations
	mu      sync.Mutex
	until   map[string]time.Time
	failErr error
}

var _ RevocationStore = (*rfRevocations)(nil)

func (r *rfRevocations) Revoke(_ context.Context, jti string, exp time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failErr != nil {
		return r.failErr
	}
	r.until[jti] = exp
	r.checker.revoke(jti)
	return nil
}

func (r *rfRevocations) get(jti string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.until[jti]
	return t, ok
}

func (r *rfRevocations) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.until)
}

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rfEnv is a Refresher, Revoker and Introspector over one Keyring,
// TokenIssuer and Verifier, with fake stores and clock.
type rfEnv struct {
	*testEnv
	iss  *TokenIssuer
	st   *rfStore
	revs *rfRevocations
	rf   *Refresher
	rv   *Revoker
	in   *Introspector
	logs *lockedBuffer
}

var (
	rfApp   = Client{ID: "app", Scopes: []string{"read", "write", "admin"}, Grants: []string{GrantTokenExchange, GrantRefreshToken}}
	rfOther = Client{ID: "other", Scopes: []string{"read", "write", "admin"}, Grants: []string{GrantRefreshToken}}
	rfCC    = Client{ID: "app", Scopes: []string{"read", "write", "admin"}, Grants: []string{GrantClientCredentials}}
)

func newRFEnv(t *testing.T) *rfEnv {
	t.Helper()
	env := newEnv(t, authn.AlgES256)
	iss, err := NewTokenIssuer(IssuerConfig{Issuer: selfIss, Audience: selfAud, AccessTokenTTL: 5 * time.Minute}, env.ring, env.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cfg := RefreshConfig{Issuer: selfIss, ReuseGrace: DefaultRefreshReuseGrace, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	st := newRFStore()
	revs := &rfRevocations{checker: env.rev, until: map[string]time.Time{}}
	rf, err := NewRefresher(cfg, iss, st, revs, env.v, env.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := NewRevoker(cfg, env.v, st, revs, env.v, env.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewIntrospector(cfg, env.v, st, env.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &rfEnv{testEnv: env, iss: iss, st: st, revs: revs, rf: rf, rv: rv, in: in, logs: logs}
}

func (e *rfEnv) start(t *testing.T, scopes ...string) (AccessToken, string) {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"read", "write"}
	}
	at, rt, err := e.rf.Start(context.Background(), rfApp.ID, "alice", scopes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return at, rt
}

func (e *rfEnv) mustRefresh(t *testing.T, rt, scope string) (AccessToken, string) {
	t.Helper()
	at, next, err := e.rf.Refresh(context.Background(), rfApp, rt, scope)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return at, next
}

func familyOf(t *testing.T, rt string) string {
	t.Helper()
	f, ok := parseRefreshToken(rt)
	if !ok {
		t.Fatalf("not a refresh token: %q", rt)
	}
	return f
}

// wantOAuthErr fails unless err is an *OAuthError with code (and, if
// desc is set, that description).
func wantOAuthErr(t *testing.T, err error, code, desc string) {
	t.Helper()
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Code != code || (desc != "" && oe.Description != desc) {
		t.Fatalf("want %s %q, got %v", code, desc, err)
	}
}

func TestRefreshStart(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at, rt := e.start(t, "read", "write")

	fam, secret, _ := strings.Cut(rt, ".")
	if len(fam) != 22 || len(secret) != 43 || strings.Count(rt, ".") != 1 {
		t.Fatalf("refresh token shape: %d.%d", len(fam), len(secret))
	}
	rec, ok := e.st.get(fam)
	if !ok {
		t.Fatal("family not stored")
	}
	h := sha256.Sum256([]byte(rt))
	if !bytes.Equal(rec.TokenHash, h[:]) {
		t.Error("stored hash is not SHA-256 of the token")
	}
	want := e.clk.Now().Add(24 * time.Hour)
	if rec.ClientID != "app" || rec.Subject != "alice" || !slices.Equal(rec.Scopes, []string{"read", "write"}) ||
		!rec.ExpiresAt.Equal(want) || !slices.Equal(rec.AccessJTIs, []string{at.JTI}) || rec.Revoked {
		t.Fatalf("family record: %+v", rec)
	}
	claims, err := e.v.Verify(ctx, at.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject() != "alice" || claims["client_id"] != "app" || claims["scope"] != "read write" {
		t.Fatalf("access token claims: %v", claims)
	}

	// Two families never share an id.
	_, rt2 := e.start(t)
	if familyOf(t, rt2) == fam {
		t.Fatal("family id reused")
	}

	// Extra claims (act, from token exchange) are carried by every access
	// token of the family, refreshed ones included.
	act := map[string]any{"act": map[string]any{"sub": "app"}}
	first, rt3, err := e.rf.Start(ctx, "app", "alice", []string{"read"}, act)
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := e.rf.Refresh(ctx, rfApp, rt3, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []AccessToken{first, next} {
		c, err := e.v.Verify(ctx, at.Token)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := c["act"].(map[string]any); a["sub"] != "app" {
			t.Fatalf("act lost: %v", c)
		}
	}
	if _, _, err := e.rf.Start(ctx, "", "alice", []string{"read"}, nil); err == nil {
		t.Fatal("empty client id accepted")
	}
	e.st.fail(errors.New("disk on fire"))
	if _, rt, err := e.rf.Start(ctx, "app", "alice", []string{"read"}, nil); err == nil || rt != "" {
		t.Fatalf("store failure: %q %v", rt, err)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	at0, rt0 := e.start(t)
	if _, err := e.v.Verify(ctx, at0.Token); err != nil { // now cached
		t.Fatal(err)
	}

	at1, rt1 := e.mustRefresh(t, rt0, "")
	if rt1 == rt0 || familyOf(t, rt1) != familyOf(t, rt0) || at1.JTI == at0.JTI {
		t.Fatal("refresh did not rotate")
	}
	claims, err := e.v.Verify(ctx, at1.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject() != "alice" || claims["client_id"] != "app" || claims["scope"] != "read write" {
		t.Fatalf("refreshed claims: %v", claims)
	}
	rec, _ := e.st.get(familyOf(t, rt0))
	if !slices.Equal(rec.AccessJTIs, []string{at0.JTI, at1.JTI}) {
		t.Fatalf("access jtis: %v", rec.AccessJTIs)
	}
	at2, rt2 := e.mustRefresh(t, rt1, "")
	if _, err := e.v.Verify(ctx, at2.Token); err != nil {
		t.Fatal(err)
	}

	// Replaying a rotated token revokes the family and its access tokens.
	_, _, err = e.rf.Refresh(ctx, rfApp, rt0, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token reuse detected")
	rec, _ = e.st.get(familyOf(t, rt0))
	if !rec.Revoked {
		t.Fatal("family not revoked")
	}
	for _, at := range []AccessToken{at0, at1, at2} {
		until, ok := e.revs.get(at.JTI)
		if !ok || until.Before(at.ExpiresAt) {
			t.Fatalf("jti %s revoked until %v (ok %v), token expires %v", at.JTI, until, ok, at.ExpiresAt)
		}
		// The cached verification is dropped at once...
		if _, err := e.v.Verify(ctx, at.Token); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("access token still verifies after reuse: %v", err)
		}
	}
	// ...and a Verifier that never saw the tokens (another replica) asks
	// the revocation store.
	v2, err := authn.NewVerifier(authn.VerifierConfig{Self: authn.TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}}}, e.ring, e.rev, e.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v2.Close)
	if _, err := v2.Verify(ctx, at1.Token); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("other replica: %v", err)
	}
	// The current token of the family is dead too.
	_, _, err = e.rf.Refresh(ctx, rfApp, rt2, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is revoked")

	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"refresh token reuse detected"`) || !strings.Contains(logs, `"family":"`+familyOf(t, rt0)+`"`) ||
		!strings.Contains(logs, `"client_id":"app"`) {
		t.Fatalf("audit log: %s", logs)
	}
	for _, rt := range []string{rt0, rt1, rt2} {
		_, secret, _ := strings.Cut(rt, ".")
		if strings.Contains(logs, secret) {
			t.Fatal("a refresh token secret was logged")
		}
	}
}

// boltFamilies is the real bbolt store as a RefreshStore, converting its
// errors the way the serve wiring does.
func TestRefreshReuseGrace(t *testing.T) {
	const grace = 2 * time.Second
	tests := []struct {
		name  string
		grace time.Duration
		// rotations made before the replay; replay is how many rotations
		// back the replayed token is (1: the one just replaced).
		rotations, replay int
		after             time.Duration // from the last rotation to the replay
		forged            bool          // replay a made-up secret of the family
		reuse             bool
	}{
		{name: "previous within the grace", grace: grace, rotations: 1, replay: 1, after: grace - time.Millisecond},
		{name: "previous at once", grace: grace, rotations: 3, replay: 1},
		{name: "previous at the grace", grace: grace, rotations: 1, replay: 1, after: grace, reuse: true},
		{name: "previous after the grace", grace: grace, rotations: 1, replay: 1, after: time.Minute, reuse: true},
		{name: "older within the grace", grace: grace, rotations: 2, replay: 2, reuse: true},
		{name: "forged secret within the grace", grace: grace, rotations: 1, forged: true, reuse: true},
		{name: "grace off", grace: 0, rotations: 1, replay: 1, reuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRFEnv(t)
			rf, err := NewRefresher(RefreshConfig{Issuer: selfIss, ReuseGrace: tt.grace, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))},
				e.iss, e.st, e.revs, e.v, e.clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			ctx := WithRequestID(context.Background(), "req-42")
			_, rt, err := rf.Start(ctx, rfApp.ID, "alice", []string{"read"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []string{rt}
			for range tt.rotations {
				e.clk.Advance(time.Hour)
				if _, rt, err = rf.Refresh(ctx, rfApp, rt, ""); err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, rt)
			}
			e.clk.Advance(tt.after)
			replayed := tokens[len(tokens)-1-tt.replay]
			if tt.forged {
				replayed, _ = nextRefreshToken(familyOf(t, rt))
			}
			_, _, err = rf.Refresh(ctx, rfApp, replayed, "")
			rec, _ := e.st.get(familyOf(t, rt))
			if !tt.reuse {
				wantRace(t, err)
				if rec.Revoked || e.revs.len() != 0 || strings.Contains(e.logs.String(), "reuse") {
					t.Fatalf("a lost race revoked the family (%v) or %d access tokens", rec.Revoked, e.revs.len())
				}
				if _, _, err := rf.Refresh(ctx, rfApp, rt, ""); err != nil {
					t.Fatalf("the current token after a lost race: %v", err)
				}
				return
			}
			wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token reuse detected")
			if !rec.Revoked || e.revs.len() != tt.rotations+1 {
				t.Fatalf("reuse: family revoked %v, %d access tokens revoked", rec.Revoked, e.revs.len())
			}
			ev := auditEvent(t, e.logs.String(), "refresh token reuse detected")
			if ev["request_id"] != "req-42" || ev["level"] != "WARN" || ev["access_tokens"] != float64(tt.rotations+1) {
				t.Fatalf("audit event: %v", ev)
			}
		})
	}
}

// TestRefreshReuseRevokeFails: reuse whose revocation fails is logged with
// that outcome and answered with the store's error (a 5xx), not as if all
// went well.
func TestRefreshReuseRevokeFails(t *testing.T) {
	e := newRFEnv(t)
	_, rt0 := e.start(t)
	e.mustRefresh(t, rt0, "")
	e.clk.Advance(time.Minute)
	e.revs.mu.Lock()
	e.revs.failErr = errors.New("revocations down")
	e.revs.mu.Unlock()
	_, _, err := e.rf.Refresh(context.Background(), rfApp, rt0, "")
	var oe *OAuthError
	if err == nil || errors.As(err, &oe) {
		t.Fatalf("want a plain error, got %v", err)
	}
	ev := auditEvent(t, e.logs.String(), "refresh token reuse detected")
	if ev["outcome"] != "revocation failed" || ev["error"] == nil || ev["request_id"] != "" {
		t.Fatalf("audit event: %v", ev)
	}
}

func TestRefreshRejections(t *testing.T) {
	e := newRFEnv(t)
	ctx := context.Background()
	_, rt := e.start(t)
	fam := familyOf(t, rt)
	unknown, _, _ := newRefreshToken()
	garbage := []string{
		"", "abc", ".", fam + ".", "." + strings.Repeat("A", 43), fam + ".short", fam + "." + strings.Repeat("A", 43) + "x",
		fam + "." + strings.Repeat("A", 42) + "B", // non-zero trailing bits
		fam + "." + strings.Repeat("*", 43), unknown, rt + "." + rt,
	}
	for _, g := range garbage {
		_, _, err := e.rf.Refresh(ctx, rfApp, g, "")
		wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is invalid")
	}
	at, _, err := e.rf.Start(ctx, "app", "alice", []string{"read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.rf.Refresh(ctx, rfApp, at.Token, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is invalid")

	// Another client's token: refused as unknown, family untouched.
	_, _, err = e.rf.Refresh(ctx, rfOther, rt, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is invalid")
	// Another client guessing secrets under a known family id cannot make
	// it look like reuse.
	other, _ := nextRefreshToken(fam)
	_, _, err = e.rf.Refresh(ctx, rfOther, other, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is invalid")
	// A client without the grant.
	_, _, err = e.rf.Refresh(ctx, rfCC, rt, "")
	wantOAuthErr(t, err, OAuthUnauthorizedClient, "")
	if rec, _ := e.st.get(fam); rec.Revoked || len(rec.AccessJTIs) != 1 {
		t.Fatalf("family changed by rejected refreshes: %+v", rec)
	}

	// Scopes: narrowing is fine and leaves the family's scopes alone;
	// widening is not.
	_, _, err = e.rf.Refresh(ctx, rfApp, rt, "read admin")
	wantOAuthErr(t, err, OAuthInvalidScope, "")
	at1, rt1 := e.mustRefresh(t, rt, "read read")
	if !slices.Equal(at1.Scopes, []string{"read"}) {
		t.Fatalf("narrowed scopes: %v", at1.Scopes)
	}
	if c, err := e.v.Verify(ctx, at1.Token); err != nil || c["scope"] != "read" {
		t.Fatalf("narrowed token: %v %v", c, err)
	}
	at2, rt2 := e.mustRefresh(t, rt1, "")
	if !slices.Equal(at2.Scopes, []string{"read", "write"}) {
		t.Fatalf("scopes after narrowing: %v", at2.Scopes)
	}
	// A scope the client has lost since the family began is not issued.
	lost := rfApp
	lost.Scopes = []string{"read"}
	at3, rt3 := func() (AccessToken, string) {
		at, next, err := e.rf.Refresh(ctx, lost, rt2, "")
		if err != nil {
			t.Fatal(err)
		}
		return at, next
	}()
	if !slices.Equal(at3.Scopes, []string{"read"}) {
		t.Fatalf("scopes of a client that lost one: %v", at3.Scopes)
	}
	_, _, err = e.rf.Refresh(ctx, lost, rt3, "write")
	wantOAuthErr(t, err, OAuthInvalidScope, "")
	lost.Scopes = []string{"admin"}
	_, _, err = e.rf.Refresh(ctx, lost, rt3, "")
	wantOAuthErr(t, err, OAuthInvalidScope, "")

	// Store failures are not the client's fault.
	e.st.fail(errors.New("disk on fire"))
	_, _, err = e.rf.Refresh(ctx, rfApp, rt3, "")
	var oe *OAuthError
	if err == nil || errors.As(err, &oe) {
		t.Fatalf("store failure: %v", err)
	}
	e.st.fail(nil)

	// The family ends RefreshTTL after it started, however often rotated.
	e.clk.Advance(24*time.Hour - time.Second)
	_, rt4 := e.mustRefresh(t, rt3, "")
	e.clk.Advance(time.Second)
	_, _, err = e.rf.Refresh(ctx, rfApp, rt4, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token has expired")
	if rec, _ := e.st.get(fam); rec.Revoked {
		t.Fatal("expiry revoked the family")
	}
}

func TestRefreshMaxRotations(t *testing.T) {
	e := newRFEnv(t)
	rf, err := NewRefresher(RefreshConfig{Issuer: selfIss, MaxRotations: 3}, e.iss, e.st, e.revs, e.v, e.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, rt, err := rf.Start(context.Background(), "app", "alice", []string{"read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, rt, err = rf.Refresh(context.Background(), rfApp, rt, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = rf.Refresh(context.Background(), rfApp, rt, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "")
}

func TestRefreshConfig(t *testing.T) {
	if err := (RefreshConfig{Issuer: selfIss}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := RefreshConfig{Issuer: "verdict", RefreshTTL: -1, AccessTokenTTL: -1, MaxRotations: -1, ReuseGrace: -1}.Validate()
	for _, want := range []string{"issuer", "refresh_ttl", "access_token_ttl", "max_rotations", "reuse_grace"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate misses %s: %v", want, err)
		}
	}
	d := DefaultRefreshConfig()
	if err := (RefreshConfig{Issuer: selfIss, ReuseGrace: time.Minute + 1}).Validate(); err == nil || !strings.Contains(err.Error(), "reuse_grace") {
		t.Errorf("a grace over a minute: %v", err)
	}
	if d.RefreshTTL != 24*time.Hour || d.AccessTokenTTL != 5*time.Minute || d.MaxRotations != 10_000 || d.ReuseGrace != 2*time.Second {
		t.Fatalf("defaults: %+v", d)
	}

	e := newRFEnv(t)
	for name, cfg := range map[string]RefreshConfig{
		"other issuer":      {Issuer: "https://elsewhere.test"},
		"short access ttl":  {Issuer: selfIss, AccessTokenTTL: time.Minute},
		"invalid issuer":    {},
		"negative lifetime": {Issuer: selfIss, RefreshTTL: -time.Hour},
	} {
		if _, err := NewRefresher(cfg, e.iss, e.st, e.revs, e.v, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cfg := RefreshConfig{Issuer: selfIss}
	if _, err := NewRefresher(cfg, nil, e.st, e.revs, e.v, nil); err == nil {
		t.Error("nil issuer accepted")
	}
	if _, err := NewRefresher(cfg, e.iss, nil, e.revs, e.v, nil); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := NewRevoker(cfg, nil, e.st, e.revs, e.v, nil); err == nil {
		t.Error("nil verifier accepted")
	}
	if _, err := NewIntrospector(cfg, e.v, nil, nil); err == nil {
		t.Error("nil store accepted by the introspector")
	}
}
