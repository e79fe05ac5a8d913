package redistest

import (
	"strings"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if got, err := Do(s.Addr(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Errorf("URL = %q", s.URL())
	}
	if _, err := Do(s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	s.Stop()
	if _, err := Do(s.Addr(), "PING"); err == nil {
		t.Fatal("a stopped server answers")
	}
	s.Stop() // stopping twice is fine
	s.Restart()
	if s.Port() != port {
		t.Fatalf("port changed across Restart: %d -> %d", port, s.Port())
	}
	if got, err := Do(s.Addr(), "GET", "k"); err != nil || got != "" {
		t.Errorf("GET after a restart = %q, %v; want nothing kept", got, err)
	}
	// Bulk replies come back as their payload.
	if _, err := Do(s.Addr(), "SET", "k", "hello"); err != nil {
		t.Fatal(err)
	}
	if got, err := Do(s.Addr(), "GET", "k"); err != nil || got != "hello" {
		t.Errorf("GET = %q, %v", got, err)
	}
}
