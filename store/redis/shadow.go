package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// kindShadow is the key of the shadow state (JSON).
const kindShadow = "shadow"

var _ store.Shadows = (*Store)(nil)

// SetShadow records the shadow state and announces it (ChangeShadow), in
// one transaction, as SetActive does.
func (s *Store) SetShadow(ctx context.Context, ns string, st store.ShadowState) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	revs, key := s.key(ns, kindBundles), s.key(ns, kindShadow)
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: encode shadow state: %w", err)
	}
	return s.txn(ctx, func(tx *redis.Tx) error {
		if st.Revision != "" {
			exists, err := tx.HExists(ctx, revs, st.Revision).Result()
			if err != nil {
				return fmt.Errorf("redis store: %w", err)
			}
			if !exists {
				return fmt.Errorf("store: bundle revision %q: %w", st.Revision, store.ErrNotFound)
			}
		}
		return exec(ctx, tx, func(p redis.Pipeliner) error {
			// Ended is the zero state, written as any other (SET only:
			// no command beyond the documented ACL's).
			p.Set(ctx, key, data, 0)
			s.announce(ctx, p, ns, store.ChangeShadow, st.Revision)
			return nil
		})
	}, revs)
}

// Shadow returns the shadow state.
func (s *Store) Shadow(ctx context.Context, ns string) (store.ShadowState, error) {
	var st store.ShadowState
	if err := s.check(ctx, ns); err != nil {
		return st, err
	}
	data, err := s.rdb.Get(ctx, s.key(ns, kindShadow)).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("redis store: read shadow state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("redis store: decode shadow state: %w", err)
	}
	return st, nil
}
