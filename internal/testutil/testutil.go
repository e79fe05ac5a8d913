// Package testutil holds small helpers that tests of several packages share:
// polling for a condition, and a buffer that a server goroutine writes while
// the test reads it. It is imported by tests only.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// WaitFor calls cond every interval until it is true, and fails tb if it is
// still false after 10 s. It is for conditions another goroutine makes true
// (a reload, a replica converging), never for measuring time.
func WaitFor(tb testing.TB, what string, every time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(every)
	}
}

// SyncBuffer is a bytes.Buffer safe for one goroutine writing (a logger)
// while another reads. The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
