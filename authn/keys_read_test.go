package authn

import (
	"context"
	"testing"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"
)

// TestReadWritesNothing: Read loads what is stored as Load does, but on an
// empty store makes no key (a listing over a read-only store must not try
// to write), and its List shows the stored keys and states.
func TestReadWritesNothing(t *testing.T) {
	st, clk := newMemStore(), jwttest.NewClock()
	r := newRing(t, KeyConfig{}, st, clk)
	if err := r.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.len() != 0 || len(r.List()) != 0 {
		t.Fatalf("Read on an empty store: %d stored, listed %+v", st.len(), r.List())
	}
	mustLoad(t, newRing(t, KeyConfig{}, st, clk)) // makes the first key, as serve's first start
	if err := r.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ks := r.List(); st.len() != 1 || len(ks) != 1 || ks[0].State != KeySigning {
		t.Fatalf("Read after a Load: %d stored, listed %+v", st.len(), ks)
	}
}
