package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the CLI with args and returns the process exit status: 0 on
// success, 1 on a failure the command reported (a failing bundle test), 2 on
// bad usage or an error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "verdict:", err)
	return 2
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "verdict",
		Short: "Verdict is a policy decision point: CEL and Rego policies, answered over HTTP in microseconds",
		Long: `Verdict answers "may this subject do this action on this resource?" from policy
bundles written in CEL or Rego.

Start a server on a bundle:   verdict serve --bundle policies/quickstart
Decide locally:               verdict decide --bundle policies/quickstart --input request.json
Run a bundle's tests:         verdict bundle test policies/quickstart`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServe(), newDecide(), newBundle(), newKeys(), newClient(), newVersion())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "verdict", version)
			return nil
		},
	}
}
