package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/store"
)

// keyStore adapts the store's keys to what the key ring needs.
type keyStore struct {
	st store.Keys
	ns string
}

var _ authn.KeyStore = keyStore{}

func (k keyStore) PutKey(ctx context.Context, key authn.Key) error {
	return k.st.PutKey(ctx, k.ns, store.SigningKey(key))
}

func (k keyStore) Keys(ctx context.Context) ([]authn.Key, error) {
	ks, err := k.st.Keys(ctx, k.ns)
	if err != nil {
		return nil, err
	}
	out := make([]authn.Key, len(ks))
	for i, key := range ks {
		out[i] = authn.Key(key)
	}
	return out, nil
}

func (k keyStore) DeleteKey(ctx context.Context, kid string) error {
	err := k.st.DeleteKey(ctx, k.ns, kid)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", authn.ErrUnknownKey, kid)
	}
	return err
}

// state is the durable state of a data dir: the store and the key ring.
type state struct {
	store *store.Bolt
	keys  *authn.Keyring
}

// openState opens the data dir's store and loads (on first start: makes) the
// signing keys. A data dir held by a running server is a clear error.
func openState(ctx context.Context, cfg config.Config) (*state, error) {
	st, err := store.OpenBolt(cfg.DataDir, store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%w: %s is held by a running verdict serve; stop it first", err, cfg.DataDir)
		}
		return nil, err
	}
	ring, err := authn.NewKeyring(cfg.Keys, keyStore{st: st, ns: store.DefaultNamespace}, time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := ring.Load(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return &state{store: st, keys: ring}, nil
}

func (s *state) Close() error { return s.store.Close() }
