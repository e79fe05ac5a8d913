package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/verdictpdp/verdict/store"
)

// testShadows: the shadow state is none at first, records a stored
// revision only, reads back as written, ends with a zero revision, and is
// kept per namespace.
func testShadows(t *testing.T, open Opener) {
	s, _ := start(t, open)
	sh, ok := s.(store.Shadows)
	if !ok {
		t.Fatalf("%T does not implement store.Shadows", s)
	}
	ctx := context.Background()
	ns := store.DefaultNamespace
	if got, err := sh.Shadow(ctx, ns); err != nil || got != (store.ShadowState{}) {
		t.Fatalf("before any: %+v %v", got, err)
	}
	want := store.ShadowState{Revision: "v2", Ratio: 0.25, Examples: 3, StartedAt: T0, StartedBy: "ci"}
	if err := sh.SetShadow(ctx, ns, want); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown revision: %v", err)
	}
	if _, err := s.PutRevision(ctx, ns, Revision("v2", "sha256:2", T0), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := sh.SetShadow(ctx, ns, want); err != nil {
		t.Fatal(err)
	}
	got, err := sh.Shadow(ctx, ns)
	if err != nil || !got.StartedAt.Equal(want.StartedAt) {
		t.Fatalf("read back: %+v %v", got, err)
	}
	got.StartedAt = want.StartedAt
	MustDeepEqual(t, got, want)
	if other, _ := sh.Shadow(ctx, "tenant-b"); other.Revision != "" {
		t.Fatalf("another namespace sees the shadow: %+v", other)
	}
	if err := sh.SetShadow(ctx, ns, store.ShadowState{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := sh.Shadow(ctx, ns); got.Revision != "" {
		t.Fatalf("after ending: %+v", got)
	}
}
