package storeadapt

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/store"
)

func openBolt(t *testing.T) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestErrorsBecomeTheConsumers: the store's ErrNotFound and ErrConflict
// reach each consumer as its own error, with the store's kept in the chain.
func TestErrorsBecomeTheConsumers(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t)
	ns := store.DefaultNamespace

	if err := Keys(b, ns).DeleteKey(ctx, "nope"); !errors.Is(err, authn.ErrUnknownKey) {
		t.Errorf("DeleteKey of an unknown kid: %v, want authn.ErrUnknownKey", err)
	}
	cl := Clients(b, ns)
	if _, err := cl.Client(ctx, "nope"); !errors.Is(err, oauth.ErrUnknownClient) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Client of an unknown id: %v, want oauth.ErrUnknownClient wrapping store.ErrNotFound", err)
	}
	c := oauth.Client{ID: "gw", Scopes: []string{"read"}}
	if err := cl.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateClient(ctx, c); !errors.Is(err, oauth.ErrClientExists) {
		t.Errorf("CreateClient twice: %v, want oauth.ErrClientExists", err)
	}
	if _, err := Refresh(b, ns).Family(ctx, "nope"); !errors.Is(err, oauth.ErrUnknownFamily) {
		t.Errorf("Family of an unknown id: %v, want oauth.ErrUnknownFamily", err)
	}
	if jtis, err := FamilyJTIs(b, ns).AccessJTIs(ctx, "nope"); err != nil || jtis != nil {
		t.Errorf("AccessJTIs of an unknown family = %v, %v; want none", jtis, err)
	}

	revs := Revisions(b, ns)
	if _, err := revs.Revision(ctx, "r1"); !errors.Is(err, bundles.ErrNotStored) {
		t.Errorf("Revision of an unknown one: %v, want bundles.ErrNotStored", err)
	}
	if _, err := revs.ActiveRevision(ctx); !errors.Is(err, bundles.ErrNotStored) {
		t.Errorf("ActiveRevision with none: %v, want bundles.ErrNotStored", err)
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rec := bundles.StoredRevision{Revision: "r1", Digest: "sha256:a", PushedAt: at, PushedBy: "ci", Tests: bundles.TestSummary{Passed: 3, Failed: 0}}
	if created, err := revs.PutRevision(ctx, rec, []byte("archive")); err != nil || !created {
		t.Fatalf("PutRevision = %v, %v", created, err)
	}
	got, err := revs.Revision(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rec.Size = int64(len("archive"))
	if got != rec {
		t.Errorf("round trip: got %+v, want %+v", got, rec)
	}
	rec.Digest = "sha256:b"
	if _, err := revs.PutRevision(ctx, rec, []byte("other")); !errors.Is(err, bundles.ErrRevisionConflict) {
		t.Errorf("PutRevision with another digest: %v, want bundles.ErrRevisionConflict", err)
	}
	if err := revs.SetActive(ctx, "r2"); !errors.Is(err, bundles.ErrNotStored) {
		t.Errorf("SetActive of an unknown revision: %v, want bundles.ErrNotStored", err)
	}
	if err := revs.SetActive(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if rev, err := revs.ActiveRevision(ctx); err != nil || rev != "r1" {
		t.Errorf("ActiveRevision = %q, %v", rev, err)
	}
}

// down is a store whose reads fail as an unreachable shared store's do.
type down struct{ *store.Bolt }

func (down) Revision(context.Context, string, string) (store.BundleRevision, error) {
	return store.BundleRevision{}, fmt.Errorf("dial tcp 127.0.0.1:1: connection refused: %w", store.ErrUnavailable)
}

// TestUnavailableStaysVisible: an unreachable store is not a missing
// record; the server answers 503 for it.
func TestUnavailableStaysVisible(t *testing.T) {
	_, err := Revisions(down{openBolt(t)}, store.DefaultNamespace).Revision(context.Background(), "r1")
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, bundles.ErrNotStored) {
		t.Fatalf("err = %v, want store.ErrUnavailable and not ErrNotStored", err)
	}
}
