package cache

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type key struct {
	gen  uint64
	hash string
}

func TestGetSet(t *testing.T) {
	c, err := New[key, string](Config{MaxCost: 100}, func(k key) uint64 { return uint64(len(k.hash)) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := key{1, "a"}
	c.Set(k, "v1")
	c.Wait()
	if v, ok := c.Get(k); !ok || v != "v1" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
	if _, ok := c.Get(key{2, "a"}); ok {
		t.Fatal("another generation with the same hash string must miss")
	}
	if h, m := c.Stats(); h != 1 || m != 1 {
		t.Fatalf("stats = %d hits %d misses, want 1 and 1", h, m)
	}
	c.Clear()
	if _, ok := c.Get(k); ok {
		t.Fatal("Clear must drop entries")
	}
}

// TestCollisionIsAMiss forces every key onto the same ristretto hash: the
// stored full key must keep one key's value from answering for another.
func TestCollisionIsAMiss(t *testing.T) {
	c, err := New[key, int](Config{MaxCost: 100}, func(key) uint64 { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Set(key{1, "x"}, 1)
	c.Wait()
	if v, ok := c.Get(key{1, "y"}); ok {
		t.Fatalf("colliding key returned %d", v)
	}
	if v, ok := c.Get(key{1, "x"}); !ok || v != 1 {
		t.Fatalf("own key: %d, %v", v, ok)
	}
}

func TestDisabledAndNil(t *testing.T) {
	c, err := New[key, int](Config{}, func(k key) uint64 { return uint64(len(k.hash)) })
	if err != nil || c != nil {
		t.Fatalf("MaxCost 0 must give a nil cache, got %v, %v", c, err)
	}
	c.Set(key{1, "a"}, 1)
	if _, ok := c.Get(key{1, "a"}); ok {
		t.Fatal("nil cache must miss")
	}
	if _, err := New[key, int](Config{MaxCost: -1}, nil); err == nil {
		t.Fatal("negative MaxCost must be rejected")
	}
}

func TestTTL(t *testing.T) {
	c, err := New[key, int](Config{MaxCost: 10, TTL: time.Millisecond}, func(k key) uint64 { return k.gen })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Set(key{1, "a"}, 1)
	c.Wait()
	time.Sleep(5 * time.Millisecond) // past the TTL; no assertion on timing itself
	if _, ok := c.Get(key{1, "a"}); ok {
		t.Fatal("an entry past its TTL was served")
	}
	if _, err := New[key, int](Config{MaxCost: 1, TTL: -1}, nil); err == nil {
		t.Fatal("negative TTL accepted")
	}
}
