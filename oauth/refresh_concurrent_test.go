package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/store"
)

type boltFamilies struct{ b *store.Bolt }

var _ RefreshStore = boltFamilies{}

func boltErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrUnknownFamily, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", ErrFamilyConflict, err)
	}
	return err
}

func (s boltFamilies) CreateFamily(ctx context.Context, t RefreshToken) error {
	return boltErr(s.b.CreateFamily(ctx, store.DefaultNamespace, store.RefreshToken(t)))
}

func (s boltFamilies) Rotate(ctx context.Context, family string, oldHash []byte, next RefreshToken) error {
	return boltErr(s.b.Rotate(ctx, store.DefaultNamespace, family, oldHash, store.RefreshToken(next)))
}

func (s boltFamilies) Family(ctx context.Context, family string) (RefreshToken, error) {
	t, err := s.b.Family(ctx, store.DefaultNamespace, family)
	return RefreshToken(t), boltErr(err)
}

func (s boltFamilies) RevokeFamily(ctx context.Context, family string) (RefreshToken, error) {
	t, err := s.b.RevokeFamily(ctx, store.DefaultNamespace, family)
	return RefreshToken(t), boltErr(err)
}

// wantRace fails unless err is the answer to the loser of a race.
func wantRace(t *testing.T, err error) {
	t.Helper()
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is no longer valid")
	if !errors.Is(err, ErrRefreshRace) {
		t.Fatalf("a lost race does not wrap ErrRefreshRace: %v", err)
	}
}

// TestRefreshConcurrent: of n concurrent refreshes of one token against the
// bbolt store exactly one wins, the family survives the race and the
// winner's token keeps working, and the token the winner replaced becomes
// reuse once the grace is over.
func TestRefreshConcurrent(t *testing.T) {
	const n = 8
	e := newRFEnv(t)
	ctx := context.Background()
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st := boltFamilies{b}
	logs := &lockedBuffer{}
	cfg := RefreshConfig{Issuer: selfIss, ReuseGrace: DefaultRefreshReuseGrace, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	rf, err := NewRefresher(cfg, e.iss, st, e.revs, e.v, e.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	at0, rt0, err := rf.Start(ctx, rfApp.ID, "alice", []string{"read"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fam := familyOf(t, rt0)

	type result struct {
		at   AccessToken
		next string
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			at, next, err := rf.Refresh(ctx, rfApp, rt0, "")
			results[i] = result{at, next, err}
		})
	}
	close(start)
	wg.Wait()
	var winner *result
	for i := range results {
		r := &results[i]
		if r.err != nil {
			wantRace(t, r.err)
			continue
		}
		if winner != nil {
			t.Fatal("two refreshes of one token won")
		}
		winner = r
	}
	if winner == nil {
		t.Fatal("no refresh won")
	}
	// A loser that reads the family only now, after the winner's rotation
	// (what the free race above may or may not have produced), is refused
	// without touching the family.
	_, _, err = rf.Refresh(ctx, rfApp, rt0, "")
	wantRace(t, err)
	rec, err := st.Family(ctx, fam)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Revoked || len(rec.AccessJTIs) != 2 || !rec.RotatedAt.Equal(e.clk.Now()) {
		t.Fatalf("family after the race: revoked %v, %d jtis, rotated %v", rec.Revoked, len(rec.AccessJTIs), rec.RotatedAt)
	}
	if strings.Contains(logs.String(), "reuse detected") {
		t.Fatalf("a lost race was logged as reuse: %s", logs)
	}
	for _, at := range []AccessToken{at0, winner.at} {
		if _, err := e.v.Verify(ctx, at.Token); err != nil {
			t.Fatalf("an access token of the family stopped verifying after the race: %v", err)
		}
	}

	// The winner's refresh token still refreshes.
	at2, rt2, err := rf.Refresh(ctx, rfApp, winner.next, "")
	if err != nil {
		t.Fatalf("the winner's refresh token: %v", err)
	}

	// After the grace, the original token is reuse: the family and every
	// access token of it are revoked, the winner's line included.
	e.clk.Advance(DefaultRefreshReuseGrace + time.Millisecond)
	_, _, err = rf.Refresh(ctx, rfApp, rt0, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token reuse detected")
	if errors.Is(err, ErrRefreshRace) {
		t.Fatal("reuse reported as a lost race")
	}
	if rec, _ := st.Family(ctx, fam); !rec.Revoked {
		t.Fatal("family not revoked on reuse")
	}
	_, _, err = rf.Refresh(ctx, rfApp, rt2, "")
	wantOAuthErr(t, err, OAuthInvalidGrant, "refresh token is revoked")
	for _, at := range []AccessToken{at0, winner.at, at2} {
		if _, err := e.v.Verify(ctx, at.Token); !errors.Is(err, authn.ErrInvalidToken) {
			t.Fatalf("access token still verifies after reuse: %v", err)
		}
	}
	ev := auditEvent(t, logs.String(), "refresh token reuse detected")
	if ev["family"] != fam || ev["client_id"] != "app" || ev["access_tokens"] != float64(3) || ev["outcome"] != "family revoked" {
		t.Fatalf("reuse audit event: %v", ev)
	}
	for _, rt := range []string{rt0, winner.next, rt2} {
		_, secret, _ := strings.Cut(rt, ".")
		if strings.Contains(logs.String(), secret) {
			t.Fatal("a refresh token secret was logged")
		}
	}
}

// auditEvent returns the one JSON log line with msg.
func auditEvent(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	var found map[string]any
	for line := range strings.Lines(logs) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev["msg"] != msg {
			continue
		}
		if found != nil {
			t.Fatalf("two %q events:\n%s", msg, logs)
		}
		if ev["audit"] != true {
			t.Fatalf("%q is not an audit event: %v", msg, ev)
		}
		found = ev
	}
	if found == nil {
		t.Fatalf("no %q event:\n%s", msg, logs)
	}
	return found
}

// TestRefreshConcurrentLockstep: every refresh reads the family before any
// rotates, so all race on Rotate; the losers lose there.
func TestRefreshConcurrentLockstep(t *testing.T) {
	const n = 20
	e := newRFEnv(t)
	_, rt := e.start(t)
	var barrier sync.WaitGroup
	barrier.Add(n)
	e.st.setBarrier(&barrier)
	var (
		wg     sync.WaitGroup
		wins   atomic.Int64
		winner atomic.Value
		errs   = make(chan error, n)
	)
	for range n {
		wg.Go(func() {
			_, next, err := e.rf.Refresh(context.Background(), rfApp, rt, "")
			if err != nil {
				errs <- err
				return
			}
			wins.Add(1)
			winner.Store(next)
		})
	}
	wg.Wait()
	e.st.setBarrier(nil)
	close(errs)
	for err := range errs {
		wantRace(t, err)
	}
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d refreshes won, want exactly 1", got)
	}
	rec, _ := e.st.get(familyOf(t, rt))
	if rec.Revoked || len(rec.AccessJTIs) != 2 {
		t.Fatalf("family after the race: revoked %v, %d jtis", rec.Revoked, len(rec.AccessJTIs))
	}
	e.mustRefresh(t, winner.Load().(string), "")
}

// TestRefreshReuseGrace: only the token the last rotation replaced, and
// only for less than the grace, is refused without revoking the family.
