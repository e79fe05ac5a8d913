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
	// A probe of its own, since parsing the flags there marks them set.
	err := unknownSubcommand(newRoot(stdin, io.Discard, io.Discard), args)
	if err == nil {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		ue.print(stderr)
		return 2
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

Examples, from the repository's root directory:

  # serve a bundle for development on 127.0.0.1:8700
  verdict serve --dev --bundle policies/quickstart
  # run a bundle's tests
  verdict bundle test policies/quickstart
  # decide locally, without a server
  echo '{"subject":{"type":"user","id":"ed","properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42"}}' \
    | verdict decide --bundle policies/quickstart

(--dev serves unsigned bundles and, on a loopback address, answers /v1/decide
without a caller token; without it bundles must be signed: verdict serve --help.)`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("verdict {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, msg: err.Error()}
	})
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServe(), newDecide(), newDecision(), newBundle(), newKeys(), newClient(), newUser(), newAPIKey(), newConfig(), newVersion())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "verdict", version)
			return nil
		},
	}
}
