package app

import (
	"context"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/pdp"
	"github.com/verdictpdp/verdict/server"
	"github.com/verdictpdp/verdict/store"
)

// shadows keeps this replica's shadow in step with the store's shadow
// state (store.Shadows): the server's routes write the state and refresh;
// other replicas refresh on the announced change (replica.Deps.Shadow) and
// at every repair; the app refreshes once at start.
type shadows struct {
	st  store.Shadows
	bs  store.Bundles
	ns  string
	dec *pdp.Service

	mu  sync.Mutex
	cur store.ShadowState
}

// follow sets the decision service the shadow runs in.
func (f *shadows) follow(dec *pdp.Service) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dec = dec
}

// counts are this replica's shadow totals for the roster, nil while none
// runs.
func (f *shadows) counts() *store.ShadowCounts {
	f.mu.Lock()
	dec := f.dec
	f.mu.Unlock()
	if dec == nil {
		return nil
	}
	return server.ShadowCounts(dec)
}

// Refresh starts, changes or stops the local shadow to match the store
// (nothing before follow, or without a store that keeps shadows).
func (f *shadows) Refresh(ctx context.Context) error {
	if f.st == nil {
		return nil
	}
	s, err := f.st.Shadow(ctx, f.ns)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dec == nil {
		return nil
	}
	if s.Revision == f.cur.Revision && s.Ratio == f.cur.Ratio && s.Examples == f.cur.Examples && s.StartedAt.Equal(f.cur.StartedAt) {
		return nil
	}
	if s.Revision == "" {
		_, _ = f.dec.StopShadow() // ErrNoShadow: nothing ran here
		f.cur = s
		return nil
	}
	archive, err := f.bs.Archive(ctx, f.ns, s.Revision)
	if err != nil {
		return err
	}
	if _, err := f.dec.StartShadow(ctx, archive, pdp.ShadowConfig{Ratio: s.Ratio, Examples: s.Examples}); err != nil {
		return err
	}
	f.cur = s
	return nil
}

// Start records rev as the shadowed revision and follows it here.
func (f *shadows) Start(ctx context.Context, rev string, ratio float64, examples int, by string) (store.ShadowState, error) {
	s := store.ShadowState{Revision: rev, Ratio: ratio, Examples: examples, StartedAt: time.Now().UTC(), StartedBy: by}
	if err := f.st.SetShadow(ctx, f.ns, s); err != nil {
		return store.ShadowState{}, err
	}
	return s, f.Refresh(ctx)
}

// Stop ends shadowing everywhere.
func (f *shadows) Stop(ctx context.Context) error {
	if err := f.st.SetShadow(ctx, f.ns, store.ShadowState{}); err != nil {
		return err
	}
	return f.Refresh(ctx)
}

// State is the store's shadow state.
func (f *shadows) State(ctx context.Context) (store.ShadowState, error) {
	return f.st.Shadow(ctx, f.ns)
}
