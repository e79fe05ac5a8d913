package decisionlog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a Logger's goroutine, or the file sink's,
// outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
