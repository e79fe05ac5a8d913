package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

func newUser() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who sign in",
		Long: `Manage users kept in the data dir (or the shared Redis): people who sign in
through the authorization-code flow (docs/users.md).

Passwords are read from the terminal (twice), or from standard input with
--password-stdin; never from a flag. They are checked (length, strength, the
breached list of users.passwords.breached_file) and kept as Argon2id hashes.

With the embedded store these commands open the data dir directly, so they
need verdict serve stopped; while it runs use /v1/admin/users, or share the
state through Redis (--store redis://...). list works while it runs. A
USER is an id (u_...) or an email.`,
	}
	cmd.AddCommand(newUserAdd(), newUserList(), newUserStatus("disable", users.StatusDisabled),
		newUserStatus("enable", users.StatusActive), newUserResetPassword(), newUserUnlock(),
		newUserExport(), newUserErase())
	return cmd
}

// readPassword reads a new password: from stdin when fromStdin (one line),
// else from the terminal, twice.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to read the password from: pipe it with --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the two passwords differ")
	}
	return string(a), nil
}

// storeNS is the namespace every record lives in today.
const storeNS = store.DefaultNamespace

// cliMeta marks audit events as the CLI's.
var cliMeta = users.Meta{RequestID: "cli"}

func (st *state) users(cmd *cobra.Command) (*users.Service, error) {
	return st.UsersService(st.cfg, st.cfg.Log.Logger(cmd.ErrOrStderr()))
}

func newUserAdd() *cobra.Command {
	var (
		sf        stateFlags
		nu        users.NewUser
		fromStdin bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "add --email EMAIL [--name NAME] [--role R]... [--group G]...",
		Short: "Add a user (the password is asked for)",
		Example: `  verdict user add --email ada@example.com --name "Ada Lovelace" --role editor
  printf '%s\n' 'correct horse battery staple' | verdict user add --email bob@example.com --password-stdin`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			nu.Password = pw
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			svc, err := st.users(cmd)
			if err != nil {
				return err
			}
			u, err := svc.Add(cmd.Context(), nu, cliMeta)
			st.audit.record(cmd.Context(), slog.LevelInfo, "user added", "user.add", err, slog.String("user_id", u.ID))
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(u.Public())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s added (%s)\n", u.ID, u.Email)
			return nil
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&nu.Email, "email", "", "email address (the sign-in name)")
	f.StringVar(&nu.Name, "name", "", "display name")
	f.StringArrayVar(&nu.Roles, "role", nil, "role (repeatable); a role named like a Verdict scope (verdict:admin) lets the user get that scope")
	f.StringArrayVar(&nu.Groups, "group", nil, "group (repeatable)")
	f.BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUserList() *cobra.Command {
	var (
		sf     stateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := sf.openReadOnly(cmd)
			if err != nil {
				return err
			}
			list := []users.Public{}
			if ok {
				defer st.Close()
				all, err := st.Store.ListUsers(cmd.Context(), storeNS)
				if err != nil {
					return err
				}
				for _, u := range all {
					list = append(list, users.User(u).Public())
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tSTATUS\tROLES\tMFA")
			for _, u := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", u.ID, u.Email, u.Name, u.Status, strings.Join(u.Roles, " "), u.MFA)
			}
			return tw.Flush()
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// withUser opens the state and the users service and finds USER.
func withUser(cmd *cobra.Command, sf *stateFlags, ref string, fn func(st *state, svc *users.Service, u users.User) error) error {
	st, err := sf.open(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := st.users(cmd)
	if err != nil {
		return err
	}
	u, err := svc.Find(cmd.Context(), ref)
	if errors.Is(err, users.ErrNotFound) {
		return fmt.Errorf("no user %q (verdict user list lists them)", ref)
	}
	if err != nil {
		return err
	}
	return fn(st, svc, u)
}

func newUserStatus(verb, status string) *cobra.Command {
	var sf stateFlags
	short := "Disable a user: their sessions and tokens end, and they cannot sign in"
	if status == users.StatusActive {
		short = "Enable a disabled user again"
	}
	cmd := &cobra.Command{
		Use:   verb + " USER",
		Short: short,
		Args:  argsExactly("USER (an id or an email: verdict user list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUser(cmd, &sf, args[0], func(st *state, svc *users.Service, u users.User) error {
				_, err := svc.Update(cmd.Context(), u.ID, users.Update{Status: &status}, cliMeta)
				st.audit.record(cmd.Context(), slog.LevelInfo, "user "+verb+"d", "user."+verb, err, slog.String("user_id", u.ID))
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "user %s is %s\n", u.ID, status)
				}
				return err
			})
		},
	}
	sf.add(cmd)
	return cmd
}

func newUserResetPassword() *cobra.Command {
	var (
		sf        stateFlags
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "reset-password USER",
		Short: "Set a new password (asked for); the user's sessions and tokens end",
		Args:  argsExactly("USER (an id or an email: verdict user list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			return withUser(cmd, &sf, args[0], func(st *state, svc *users.Service, u users.User) error {
				err := svc.SetPassword(cmd.Context(), u.ID, pw, cliMeta)
				st.audit.record(cmd.Context(), slog.LevelInfo, "password reset", "user.reset_password", err, slog.String("user_id", u.ID))
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", u.ID)
				}
				return err
			})
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newUserUnlock() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "unlock USER",
		Short: "Clear a user's failed sign-ins and lockout",
		Args:  argsExactly("USER (an id or an email: verdict user list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUser(cmd, &sf, args[0], func(st *state, svc *users.Service, u users.User) error {
				err := svc.Unlock(cmd.Context(), u.ID, cliMeta)
				st.audit.record(cmd.Context(), slog.LevelInfo, "user unlocked", "user.unlock", err, slog.String("user_id", u.ID))
				return err
			})
		},
	}
	sf.add(cmd)
	return cmd
}

func newUserExport() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "export USER",
		Short: "Print everything stored about a person as one JSON document",
		Args:  argsExactly("USER (an id or an email: verdict user list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUser(cmd, &sf, args[0], func(st *state, svc *users.Service, u users.User) error {
				ex, err := svc.Export(cmd.Context(), u.ID, cliMeta)
				st.audit.record(cmd.Context(), slog.LevelInfo, "user exported", "user.export", err, slog.String("user_id", u.ID))
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ex)
			})
		},
	}
	sf.add(cmd)
	return cmd
}

func newUserErase() *cobra.Command {
	var (
		sf  stateFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "erase USER --yes",
		Short: "Erase a person: tokens and sessions revoked, record deleted, audit events pseudonymised",
		Args:  argsExactly("USER (an id or an email: verdict user list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("erasure cannot be undone: add --yes")
			}
			return withUser(cmd, &sf, args[0], func(st *state, svc *users.Service, u users.User) error {
				pseudo, err := svc.Erase(cmd.Context(), u.ID, st.PseudonymKey, cliMeta)
				st.audit.record(cmd.Context(), slog.LevelInfo, "user erased", "user.erase", err, slog.String("pseudonym", pseudo))
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "user %s erased; audit events now name %s\n", u.ID, pseudo)
				}
				return err
			})
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: the erasure cannot be undone")
	return cmd
}
