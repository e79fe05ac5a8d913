package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if serve leaves a goroutine behind (fasthttp's
// pool janitor and date updater excepted: see server/main_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
