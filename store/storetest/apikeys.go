package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// RunAPIKeys runs the API-key conformance tests against the stores open
// makes: create (a duplicate id refused), get, list by id, update (an
// unknown id refused), use counts added atomically by concurrent writers
// with the latest last use kept, and namespaces kept apart.
func RunAPIKeys(t *testing.T, open Opener) {
	t.Run("records", func(t *testing.T) {
		s, _ := start(t, open)
		ctx := context.Background()
		ns := store.DefaultNamespace
		k := store.APIKey{ID: "k2", Name: "svc", SecretHMAC: []byte("mac"), Scopes: []string{"verdict:decide"}, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
		if err := s.CreateAPIKey(ctx, ns, k); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAPIKey(ctx, ns, k); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate id: %v", err)
		}
		if err := s.CreateAPIKey(ctx, ns, store.APIKey{Name: "x"}); err == nil {
			t.Fatal("a key without an id was stored")
		}
		s.CreateAPIKey(ctx, ns, store.APIKey{ID: "k1", Name: "a", SecretHMAC: []byte("m1"), CreatedAt: T0})
		got, err := s.APIKey(ctx, ns, "k2")
		if err != nil {
			t.Fatal(err)
		}
		MustDeepEqual(t, got, k)
		if _, err := s.APIKey(ctx, ns, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		k.RevokedAt, k.PrevHMAC, k.PrevUntil = T0.Add(time.Minute), []byte("old"), T0.Add(2*time.Minute)
		if err := s.UpdateAPIKey(ctx, ns, k); err != nil {
			t.Fatal(err)
		}
		got, _ = s.APIKey(ctx, ns, "k2")
		MustDeepEqual(t, got, k)
		if err := s.UpdateAPIKey(ctx, ns, store.APIKey{ID: "nope"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown: %v", err)
		}
		list, err := s.ListAPIKeys(ctx, ns)
		if err != nil || len(list) != 2 || list[0].ID != "k1" || list[1].ID != "k2" {
			t.Fatalf("list: %v %v", list, err)
		}
		if other, _ := s.ListAPIKeys(ctx, "tenant-b"); len(other) != 0 {
			t.Fatalf("another namespace sees keys: %v", other)
		}
	})
	t.Run("uses", func(t *testing.T) {
		s, _ := start(t, open)
		ctx := context.Background()
		ns := store.DefaultNamespace
		if u, err := s.APIKeyUse(ctx, ns, "k"); err != nil || u.Count != 0 || !u.LastUsedAt.IsZero() {
			t.Fatalf("never used: %+v %v", u, err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if err := s.AddAPIKeyUse(ctx, ns, "k", 5, T0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		u, err := s.APIKeyUse(ctx, ns, "k")
		if err != nil || u.Count != 40 || !u.LastUsedAt.Equal(T0.Add(7*time.Second)) {
			t.Fatalf("after 8 concurrent adds: %+v %v", u, err)
		}
		if err := s.AddAPIKeyUse(ctx, ns, "k", 1, T0); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.APIKeyUse(ctx, ns, "k"); u.Count != 41 || !u.LastUsedAt.Equal(T0.Add(7*time.Second)) {
			t.Fatalf("an older last use replaced a newer one: %+v", u)
		}
	})
}
