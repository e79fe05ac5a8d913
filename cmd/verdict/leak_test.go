package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if serve leaves a goroutine behind (fasthttp's
// pool janitor and date updater excepted: see server/main_test.go).
//
// With cliEnv=1 in its environment the test binary is the verdict command
// instead (TestDocsRunAsWritten puts it on the PATH as verdict).
func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(runMain())
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// The limiter's clock: one per process, started once.
		// (named as inlined under -race, and as itself without).
		goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
		goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
	)
}
