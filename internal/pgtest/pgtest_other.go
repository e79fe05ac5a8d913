//go:build !unix

package pgtest

import (
	"os"
	"testing"

	"github.com/verdictpdp/verdict/internal/redistest"
)

// RequireEnv is the environment variable that turns a missing PostgreSQL
// from a skip into a failure (the same as redistest's).
const RequireEnv = redistest.RequireEnv

// Server is a PostgreSQL server; there is none on this system.
type Server struct{}

// Start skips the test (or fails it, see RequireEnv): the harness runs
// PostgreSQL on unix systems only.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("pgtest: PostgreSQL tests run on unix systems only, and %s=1 requires them", RequireEnv)
	}
	t.Skip("pgtest: PostgreSQL tests run on unix systems only")
	return nil
}

// DSN is "" on this system.
func (s *Server) DSN() string { return "" }

// Addr is "" on this system.
func (s *Server) Addr() string { return "" }

// Port is 0 on this system.
func (s *Server) Port() int { return 0 }

// Stop does nothing on this system.
func (s *Server) Stop() {}
