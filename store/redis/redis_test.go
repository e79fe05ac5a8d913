package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
	"github.com/verdictpdp/verdict/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prefixes makes every store of a test run use keys of its own.
var prefixes atomic.Int64

// opener opens stores on url, each with a fresh key prefix, closed when
// the test ends.
func opener(url string) storetest.Opener {
	return func(t *testing.T, now func() time.Time) store.Store {
		return open(t, url, redisstore.Options{Now: now, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1))})
	}
}

func open(t *testing.T, url string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, opener(srv.URL()))
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	c := redistest.StartCluster(t, 3)
	storetest.Run(t, opener(c.URL()))
}
