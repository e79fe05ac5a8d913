package testutil

import (
	"context"
	"sync"

	"github.com/verdictpdp/verdict/authn"
)

// MemKeys is an in-memory authn.KeyStore for a real Keyring in tests. The
// zero value is ready to use.
type MemKeys struct {
	mu sync.Mutex
	m  map[string]authn.Key
}

var _ authn.KeyStore = (*MemKeys)(nil)

// PutKey stores k under its kid.
func (s *MemKeys) PutKey(_ context.Context, k authn.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]authn.Key{}
	}
	s.m[k.KID] = k
	return nil
}

// Keys lists the stored keys in no order.
func (s *MemKeys) Keys(context.Context) ([]authn.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]authn.Key, 0, len(s.m))
	for _, k := range s.m {
		out = append(out, k)
	}
	return out, nil
}

// DeleteKey removes kid; a missing one is no error.
func (s *MemKeys) DeleteKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, kid)
	return nil
}
