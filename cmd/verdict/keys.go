package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/store"
)

// storeFlagHelp describes --store wherever it is.
const storeFlagHelp = `where state is kept: "bolt" (the embedded store in --data-dir, the default) or a Redis URL shared by every replica (redis://[user:pass@]host:port/db, rediss://..., redis+sentinel://host:port,.../master, redis+cluster://host:port,...)`

// stateFlags are the flags of every command that works on the state.
type stateFlags struct {
	cfgPath  string
	dataDir  string
	storeURL string
}

func (f *stateFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cfgPath, "config", "", "configuration file (its data_dir, store and keys settings apply)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "./verdict-data", "directory for durable state")
	cmd.Flags().StringVar(&f.storeURL, "store", "", storeFlagHelp)
}

func (f *stateFlags) config(cmd *cobra.Command) (app.Config, error) {
	cfg, err := app.LoadConfig(f.cfgPath)
	if err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("data-dir") {
		cfg.DataDir = f.dataDir
	}
	if cmd.Flags().Changed("store") {
		cfg.Store = f.storeURL
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// openReadOnly loads the configuration and opens the state it names for a
// listing (openStateReadOnly); ok is false, with nothing open, when the
// data dir holds no state yet, which the command lists as empty after
// saying so on stderr.
func (f *stateFlags) openReadOnly(cmd *cobra.Command) (st *state, ok bool, err error) {
	cfg, err := f.config(cmd)
	if err != nil {
		return nil, false, err
	}
	st, err = openStateReadOnly(cmd.Context(), cfg)
	if errors.Is(err, store.ErrNoDatabase) {
		fmt.Fprintf(cmd.ErrOrStderr(), "verdict: %s holds no state yet (verdict serve and verdict client add make it)\n", cfg.DataDir)
		return nil, false, nil
	}
	if err == nil {
		st.cfg = cfg
	}
	return st, err == nil, err
}

// open loads the configuration and opens the state it names, with an
// audit log on the command's stderr for the state changes it makes.
func (f *stateFlags) open(cmd *cobra.Command) (*state, error) {
	cfg, err := f.config(cmd)
	if err != nil {
		return nil, err
	}
	st, err := openState(cmd.Context(), cfg)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w; stop it first, or make the change through its admin API (/v1/admin/clients, /v1/admin/keys, /v1/admin/users: docs/api.md), or share the state through Redis (--store redis://...). The list commands work while it runs", err)
	}
	if err != nil {
		return nil, err
	}
	st.audit = auditLog{cfg.Log.Logger(cmd.ErrOrStderr())}
	st.cfg = cfg
	return st, nil
}

func newKeys() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keys Verdict signs tokens with",
		Long: `Manage the signing keys kept in the data dir. The first start of verdict serve
makes one (ES256 by default, see keys.alg in the configuration).

With the embedded store rotate and revoke open the data dir directly, so they
need verdict serve stopped (bbolt allows one writer at a time); a running
server picks the change up on its next start. list works while a server
runs: it reads a consistent copy of the database as of its last change. With
--store redis://... (or store: in --config) they work on the Redis that the
replicas share, while they run, and the change is announced to them.

rotate and revoke log an audit event on stderr (audit=true, action, kid,
by=cli, outcome), in the configured log format, like the admin routes do.`,
	}
	cmd.AddCommand(newKeysList(), newKeysRotate(), newKeysRevoke())
	return cmd
}

func newKeysList() *cobra.Command {
	var (
		sf     stateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List signing keys and their state (pending, signing, retired, revoked)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := sf.openReadOnly(cmd)
			if err != nil || !ok {
				if err == nil {
					err = printKeys(cmd, []authn.KeyInfo{}, asJSON)
				}
				return err
			}
			defer st.Close()
			return printKeys(cmd, st.Keys.List(), asJSON)
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printKeys(cmd *cobra.Command, keys []authn.KeyInfo, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(keys)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tPUBLISHED UNTIL")
	for _, k := range keys {
		until := "-"
		if !k.PublishUntil.IsZero() {
			until = k.PublishUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State,
			k.CreatedAt.Format(time.RFC3339), k.SignFrom.Format(time.RFC3339), until)
	}
	return tw.Flush()
}

func newKeysRotate() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new signing key: published now, signing after one JWKS max-age",
		Long: `Make a new signing key. It is published in /.well-known/jwks.json at once and
starts signing one JWKS max-age later (keys.jwks_max_age), so that every
verifier has fetched it first. The key it replaces stays published for the
longest access-token lifetime + clock skew + JWKS max-age after it stops
signing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			k, err := st.Keys.Rotate(cmd.Context())
			st.audit.record(cmd.Context(), slog.LevelInfo, "signing key rotated", "keys.rotate", err,
				slog.String("kid", k.KID), slog.String("alg", k.Alg), slog.Time("sign_from", k.SignFrom))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new key %s (%s) published; it signs from %s\n", k.KID, k.Alg, k.SignFrom.Format(time.RFC3339))
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func newKeysRevoke() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "revoke KID",
		Short: "Emergency: unpublish a key at once; tokens it signed stop verifying",
		Long: `Revoke a signing key: it leaves the JWKS at once and every token it signed
stops verifying. A kid may start with "-": put it after "--".`,
		Example: `  verdict keys revoke oNUteb-YCZuv0f3kK2l1Rk7l7QWcXzY3TnS6bN3Qy1A
  verdict keys revoke --data-dir /var/lib/verdict -- -Gnc6GIQ3y4mlPbE4jzO-CUDKXOkxeG9c8P8ZYZ1eKs`,
		Args: argsExactly("KID (a key id: verdict keys list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.Keys.Revoke(cmd.Context(), args[0])
			st.audit.record(cmd.Context(), slog.LevelWarn, "signing key revoked", "keys.revoke", err, slog.String("kid", args[0]))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s revoked\n", args[0])
			return printKeys(cmd, st.Keys.List(), false)
		},
	}
	sf.add(cmd)
	return cmd
}
