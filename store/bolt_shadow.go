package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// keyShadow holds the shadow state (JSON) in the bundle state bucket.
const keyShadow = "shadow"

var _ Shadows = (*Bolt)(nil)

// SetShadow records the shadow state.
func (b *Bolt) SetShadow(ctx context.Context, ns string, s ShadowState) error {
	return b.update(ctx, ns, func(tx *bolt.Tx) error {
		if s.Revision != "" {
			revs := readBucket(tx, ns, bucketBundleRevs)
			if revs == nil || revs.Get([]byte(s.Revision)) == nil {
				return fmt.Errorf("store: bundle revision %q: %w", s.Revision, ErrNotFound)
			}
		}
		st, err := writeBucket(tx, ns, bucketBundleState)
		if err != nil {
			return err
		}
		if s.Revision == "" {
			return st.Delete([]byte(keyShadow))
		}
		data, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("store: encode shadow state: %w", err)
		}
		return st.Put([]byte(keyShadow), data)
	})
}

// Shadow returns the shadow state.
func (b *Bolt) Shadow(ctx context.Context, ns string) (ShadowState, error) {
	var s ShadowState
	err := b.view(ctx, ns, func(tx *bolt.Tx) error {
		st := readBucket(tx, ns, bucketBundleState)
		if st == nil || st.Get([]byte(keyShadow)) == nil {
			return nil
		}
		return json.Unmarshal(st.Get([]byte(keyShadow)), &s)
	})
	return s, err
}
