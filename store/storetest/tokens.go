package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

func testFamilies(t *testing.T, open Opener) {
	ctx := context.Background()
	b, _ := start(t, open)
	ns := store.DefaultNamespace

	f := Family("f1", "h1")
	f.AccessJTIs = []string{"j1"}
	if err := b.CreateFamily(ctx, ns, f); err != nil {
		t.Fatal(err)
	}

	t.Run("create errors", func(t *testing.T) {
		noHash := Family("f2", "")
		noExp := Family("f3", "h")
		noExp.ExpiresAt = time.Time{}
		tests := []struct {
			name string
			t    store.RefreshToken
			want error // nil: any error
		}{
			{"exists", Family("f1", "other"), store.ErrConflict},
			{"no family", Family("", "h"), nil},
			{"no hash", noHash, nil},
			{"no expiry", noExp, nil},
		}
		for _, tt := range tests {
			err := b.CreateFamily(ctx, ns, tt.t)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("%s: CreateFamily = %v, want %v", tt.name, err, tt.want)
			}
		}
		got, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, f)
	})

	t.Run("family not found", func(t *testing.T) {
		for _, id := range []string{"nope", ""} {
			if _, err := b.Family(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Family(%q) = %v, want store.ErrNotFound", id, err)
			}
			if _, err := b.RevokeFamily(ctx, ns, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RevokeFamily(%q) = %v, want store.ErrNotFound", id, err)
			}
		}
	})

	t.Run("rotate", func(t *testing.T) {
		next := Family("ignored", "h2")
		next.ExpiresAt = T0.Add(48 * time.Hour)
		next.AccessJTIs = []string{"j2", "j1"}
		next.RotatedAt = T0.Add(time.Minute)
		// The store, not the caller, says which hash was replaced.
		next.PrevHash = []byte("made up")
		if err := b.Rotate(ctx, ns, "f1", []byte("h1"), next); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		got, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		want := next
		want.Family = "f1"
		want.AccessJTIs = []string{"j1", "j2"}
		want.PrevHash = []byte("h1")
		MustDeepEqual(t, got, want)

		tests := []struct {
			name    string
			family  string
			oldHash string
			next    store.RefreshToken
			want    error // nil: any error
		}{
			{"reuse of rotated token", "f1", "h1", Family("f1", "h3"), store.ErrConflict},
			{"wrong hash", "f1", "zz", Family("f1", "h3"), store.ErrConflict},
			{"empty old hash", "f1", "", Family("f1", "h3"), store.ErrConflict},
			{"missing family", "nope", "h1", Family("nope", "h3"), store.ErrNotFound},
			{"empty next hash", "f1", "h2", Family("f1", ""), nil},
		}
		for _, tt := range tests {
			err := b.Rotate(ctx, ns, tt.family, []byte(tt.oldHash), tt.next)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("%s: Rotate = %v, want %v", tt.name, err, tt.want)
			}
		}
		got, err = b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.TokenHash, []byte("h2")) {
			t.Errorf("failed rotations changed the hash to %q", got.TokenHash)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		got, err := b.RevokeFamily(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Revoked {
			t.Error("RevokeFamily returned a family not marked revoked")
		}
		MustDeepEqual(t, got.AccessJTIs, []string{"j1", "j2"})
		stored, err := b.Family(ctx, ns, "f1")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, stored, got)
		if _, err := b.RevokeFamily(ctx, ns, "f1"); err != nil {
			t.Errorf("second RevokeFamily: %v", err)
		}
		// The current token of a revoked family no longer rotates.
		if err := b.Rotate(ctx, ns, "f1", []byte("h2"), Family("f1", "h3")); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Rotate of revoked family = %v, want store.ErrConflict", err)
		}
	})
}

func testRotateConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	b, _ := start(t, open)
	ns := store.DefaultNamespace
	if err := b.CreateFamily(ctx, ns, Family("f", "h0")); err != nil {
		t.Fatal(err)
	}

	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			next := Family("f", fmt.Sprintf("h%d", i+1))
			next.AccessJTIs = []string{fmt.Sprintf("j%d", i+1)}
			errs[i] = b.Rotate(ctx, ns, "f", []byte("h0"), next)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("rotation %d: %v, want store.ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	got, err := b.Family(ctx, ns, "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("h%d", winner+1); string(got.TokenHash) != want {
		t.Errorf("hash = %q, want the winner's %q", got.TokenHash, want)
	}
	MustDeepEqual(t, got.AccessJTIs, []string{fmt.Sprintf("j%d", winner+1)})
	if string(got.PrevHash) != "h0" {
		t.Errorf("prev hash = %q, want the replaced h0", got.PrevHash)
	}
}

func testRevocations(t *testing.T, open Opener) {
	ctx := context.Background()
	b, clk := start(t, open)
	ns := store.DefaultNamespace
	exp := T0.Add(time.Hour)

	if err := b.Revoke(ctx, ns, "j", exp); err != nil {
		t.Fatal(err)
	}
	// An earlier exp does not shorten the revocation.
	if err := b.Revoke(ctx, ns, "j", T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, ns, "", exp); err == nil {
		t.Error("Revoke with empty jti succeeded")
	}

	tests := []struct {
		name string
		now  time.Time
		jti  string
		want bool
	}{
		{"before exp", T0, "j", true},
		{"just before exp", exp.Add(-time.Nanosecond), "j", true},
		{"at exp", exp, "j", false},
		{"after exp", exp.Add(time.Hour), "j", false},
		{"unknown", T0, "other", false},
		{"empty", T0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.now)
			got, err := b.Revoked(ctx, ns, tt.jti)
			if err != nil || got != tt.want {
				t.Fatalf("Revoked(%q) at %v = %v, %v; want %v", tt.jti, tt.now, got, err, tt.want)
			}
		})
	}
}

// testRevokedTokens: the listing holds exactly the revocations Revoked
// reports, with the later expiry of a repeated revocation, in jti order.
func testRevokedTokens(t *testing.T, open Opener) {
	ctx := context.Background()
	b, clk := start(t, open)
	ns := store.DefaultNamespace
	list := func(at time.Time) []store.RevokedToken {
		t.Helper()
		clk.Set(at)
		got, err := b.RevokedTokens(ctx, ns)
		if err != nil {
			t.Fatalf("RevokedTokens at %v: %v", at, err)
		}
		return got
	}
	if got := list(T0); len(got) != 0 {
		t.Fatalf("RevokedTokens of an empty store = %v", got)
	}
	for _, r := range []store.RevokedToken{
		{JTI: "j1", Exp: T0.Add(time.Hour)},
		{JTI: "j2", Exp: T0.Add(time.Minute)},
		{JTI: "j0", Exp: T0.Add(2 * time.Hour)},
		{JTI: "j1", Exp: T0.Add(90 * time.Minute)}, // later: replaces
		{JTI: "j2", Exp: T0.Add(time.Second)},      // earlier: ignored
	} {
		if err := b.Revoke(ctx, ns, r.JTI, r.Exp); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		at   time.Time
		want []store.RevokedToken
	}{
		{"all in force", T0, []store.RevokedToken{
			{JTI: "j0", Exp: T0.Add(2 * time.Hour)}, {JTI: "j1", Exp: T0.Add(90 * time.Minute)}, {JTI: "j2", Exp: T0.Add(time.Minute)}}},
		{"just before j2's exp", T0.Add(time.Minute - time.Millisecond), []store.RevokedToken{
			{JTI: "j0", Exp: T0.Add(2 * time.Hour)}, {JTI: "j1", Exp: T0.Add(90 * time.Minute)}, {JTI: "j2", Exp: T0.Add(time.Minute)}}},
		{"at j2's exp", T0.Add(time.Minute), []store.RevokedToken{
			{JTI: "j0", Exp: T0.Add(2 * time.Hour)}, {JTI: "j1", Exp: T0.Add(90 * time.Minute)}}},
		{"after every exp", T0.Add(3 * time.Hour), []store.RevokedToken{}},
	}
	for _, s := range steps {
		got := list(s.at)
		if len(got) != len(s.want) {
			t.Fatalf("%s: RevokedTokens = %v, want %v", s.name, got, s.want)
		}
		for i := range got {
			if got[i].JTI != s.want[i].JTI || !got[i].Exp.Equal(s.want[i].Exp) {
				t.Fatalf("%s: RevokedTokens = %v, want %v", s.name, got, s.want)
			}
			if ok, err := b.Revoked(ctx, ns, got[i].JTI); err != nil || !ok {
				t.Fatalf("%s: listed %q but Revoked = %v, %v", s.name, got[i].JTI, ok, err)
			}
		}
	}
	// A revocation after the others expired (a store that prunes its
	// listing on writes must keep the new one).
	if err := b.Revoke(ctx, ns, "j3", T0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := list(T0.Add(3 * time.Hour)); len(got) != 1 || got[0].JTI != "j3" || !got[0].Exp.Equal(T0.Add(4*time.Hour)) {
		t.Fatalf("RevokedTokens after a new revocation = %v, want j3 alone", got)
	}
	if got, err := b.RevokedTokens(ctx, "other"); err != nil || len(got) != 0 {
		t.Fatalf("RevokedTokens(other namespace) = %v, %v; want none", got, err)
	}
}
