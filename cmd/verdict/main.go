// Command verdict is the Verdict policy decision point: its server and the
// tools policy authors and operators use with it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(runMain()) }

// runMain runs the CLI on the process's arguments and standard streams until
// it ends or SIGINT or SIGTERM cancels it, and returns the exit status.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}
