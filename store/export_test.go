package store

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// CountRecords returns how many records the kind bucket of ns holds, for
// the external tests.
func CountRecords(t *testing.T, b *Bolt, ns, kind string) int {
	t.Helper()
	var n int
	err := b.db.View(func(tx *bolt.Tx) error {
		if bk := readBucket(tx, ns, []byte(kind)); bk != nil {
			n = bk.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BucketNames lists the top-level (namespace) buckets.
func BucketNames(t *testing.T, b *Bolt) []string {
	t.Helper()
	var names []string
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// CheckConsistent runs bbolt's consistency check over every page of b.
func CheckConsistent(t *testing.T, b *Bolt) {
	t.Helper()
	err := b.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inconsistent database: %v", err)
	}
}
