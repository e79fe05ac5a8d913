package app

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/internal/redistest"
)

// TestRedisLimiterIsSharedByReplicas: two replicas' limiters on one real
// Redis count against the same budget; with Redis stopped the limiter
// fails fast (and keeps failing fast for a moment) so that the server
// counts on its replica.
func TestRedisLimiterIsSharedByReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := newRedisLimiter(client(), "{verdict}routelimit:"), newRedisLimiter(client(), "{verdict}routelimit:")
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		ok, after, err := l.Allow(ctx, "decide:client:alice", 6, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else if after <= 0 {
			t.Errorf("a refusal without a retry time")
		}
	}
	if allowed != 6 {
		t.Fatalf("two replicas allowed %d of 10 against a shared 6 an hour", allowed)
	}
	if ok, _, err := a.Allow(ctx, "decide:client:bob", 6, time.Hour); err != nil || !ok {
		t.Fatalf("another key: %v %v", ok, err)
	}
	if keys, _ := redistest.Do(srv.Addr(), "KEYS", "rate:{verdict}routelimit:*"); keys == "" {
		t.Error("no key under the store's hash tag")
	}

	srv.Stop()
	start := time.Now()
	if _, _, err := a.Allow(ctx, "decide:client:alice", 6, time.Hour); err == nil {
		t.Fatal("no error with Redis stopped")
	}
	if _, _, err := a.Allow(ctx, "decide:client:alice", 6, time.Hour); err != errLimiterBackoff {
		t.Fatalf("right after a failure Redis was asked again: %v", err)
	}
	// Not a latency assertion: a generous bound that only a hung call (a
	// missing timeout) would pass.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %v", d)
	}
}
