package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a command line the command cannot run: a missing or extra
// argument, an unknown subcommand or flag. run prints it with the command's
// usage line and exits 2.
type usageError struct {
	cmd *cobra.Command
	msg string
	// hint, when set, replaces the usage line (an unknown subcommand is
	// better answered with the commands there are).
	hint string
}

func (e *usageError) Error() string { return e.cmd.CommandPath() + ": " + e.msg }

// print writes the error, the usage line (or the hint) and where to read more.
func (e *usageError) print(w io.Writer) {
	fmt.Fprintln(w, e.Error())
	if e.hint != "" {
		fmt.Fprint(w, e.hint)
	} else {
		fmt.Fprintf(w, "Usage: %s\n", e.cmd.UseLine())
	}
	fmt.Fprintf(w, "Run '%s --help' for more.\n", e.cmd.CommandPath())
}

// argsExactly accepts exactly one positional argument per spec, each spec
// naming the argument and what it is ("PATH (a bundle directory or
// .tar.gz)"); the error for a missing one names the first missing spec.
func argsExactly(specs ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(specs) {
			return &usageError{cmd: cmd, msg: "missing " + specs[len(args)]}
		}
		if len(args) > len(specs) {
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i], _, _ = strings.Cut(s, " ")
			}
			return &usageError{cmd: cmd, msg: fmt.Sprintf("too many arguments: it takes %s, got %s",
				strings.Join(names, " "), quoteAll(args))}
		}
		return nil
	}
}

// missingFlag is the usage error of a command run without a flag it needs;
// what names the flag and what it is.
func missingFlag(cmd *cobra.Command, what string) error {
	return &usageError{cmd: cmd, msg: "missing " + what}
}

// noArgs accepts no positional argument: every value goes with a flag.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("unexpected argument %s: it takes flags only", quoteAll(args))}
	}
	return nil
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// unknownSubcommand returns a usage error when args name a subcommand of a
// command group (verdict, bundle, keys, client) that does not exist; cobra
// itself would print the group's help and succeed below the top level.
// It parses args on root without running anything.
func unknownSubcommand(root *cobra.Command, args []string) error {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	c, rest, err := root.Find(args)
	if err != nil {
		// The top level reports unknown commands from Find; answer it
		// like the other groups.
		c, rest = root, args
	}
	if !c.HasSubCommands() || c.Runnable() {
		return nil
	}
	if c.ParseFlags(rest) != nil || len(c.Flags().Args()) == 0 {
		return nil // flag errors, --help and a bare group are cobra's
	}
	typed := c.Flags().Arg(0)
	c.SuggestionsMinimumDistance = 2
	var hint strings.Builder
	if s := c.SuggestionsFor(typed); len(s) > 0 {
		fmt.Fprintf(&hint, "Did you mean %s?\n", strings.Join(s, " or "))
	}
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	fmt.Fprintf(&hint, "Commands: %s\n", strings.Join(names, ", "))
	return &usageError{cmd: c, msg: fmt.Sprintf("unknown command %q", typed), hint: hint.String()}
}
