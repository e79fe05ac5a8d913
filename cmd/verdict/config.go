package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/internal/app"
)

func newConfig() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration file before deploying it",
	}
	cmd.AddCommand(newConfigValidate(), newConfigPrint())
	return cmd
}

func newConfigValidate() *cobra.Command {
	var dev bool
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a configuration file as verdict serve would, printing every problem at once",
		Long: `Reads FILE as verdict serve --config FILE does (unknown keys and malformed
values are errors naming the line), with the VERDICT_ environment variables
over it (VERDICT_SERVER_ADDR sets server.addr), and checks every setting,
including what serve refuses outside dev (tokens.issuer unset on a network
address, signatures required with no bundles.keys, unsigned bundles without
bundles.acknowledge_unsigned, a weak forward_auth.shared_secret). Prints every
problem, one a line, each naming its key, and exits 1; exits 0 and prints
nothing when the file is fine. Nothing is started and nothing is written.
With --dev, checks FILE as verdict serve --dev --config FILE would.

Example:

  verdict config validate verdict.yaml`,
		Args: argsExactly("FILE (a configuration file)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			problems := validateConfigFile(args[0], true, dev)
			for _, p := range problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", p)
			}
			if len(problems) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d problem(s)\n", args[0], len(problems))
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dev, "dev", false, "check as verdict serve --dev would (a local developer setup)")
	return cmd
}

// validateConfigFile returns every problem of the configuration file at
// path and the VERDICT_ environment over it, one a line: a file that cannot
// be read or parsed is one problem (located); otherwise each setting that
// fails Config.Validate, or Config.ValidateServe (what serve refuses outside
// dev) when serving is true; dev is serve's --dev.
func validateConfigFile(path string, serving, dev bool) []string {
	cfg, err := app.LoadConfig(path)
	if dev {
		cfg.Dev = true
	}
	if err == nil && serving {
		err = cfg.ValidateServe()
	} else if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		// A line ending in ":" only heads the lines under it.
		if line = strings.TrimSpace(line); line != "" && !strings.HasSuffix(line, ":") {
			out = append(out, line)
		}
	}
	return out
}

func newConfigPrint() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (the defaults, and --config FILE over them), secrets masked",
		Long: `Prints the configuration verdict serve --config FILE would run with: every key,
its value from the VERDICT_ environment, else FILE, else its default,
durations as written in a file ("10s"),
relative paths resolved against FILE's directory. Secrets are masked
(forward_auth.shared_secret, the password of a store URL). Without --config,
the defaults. A file that does not load or validate prints its problems, as
verdict config validate does, and exits 1.

Example:

  verdict config print --config verdict.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path != "" {
				if problems := validateConfigFile(path, false, false); len(problems) > 0 {
					for _, p := range problems {
						fmt.Fprintln(cmd.ErrOrStderr(), p)
					}
					return exitError{code: 1}
				}
			}
			cfg, err := app.LoadConfig(path)
			if err != nil {
				return err
			}
			out, err := cfg.Render()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	return cmd
}
