package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/store"
)

func newAPIKey() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Manage API keys, for callers that cannot run an OAuth client",
		Long: `Manage API keys (docs/apikeys.md). A key is printed once, when it is created or
rotated, and kept only as an HMAC: store it then. Callers present it as
"Authorization: ApiKey <key>" or "X-API-Key: <key>" on the routes its scopes
allow.

With the embedded store these commands open the data dir directly, so they
need verdict serve stopped; while it runs use /v1/admin/apikeys, or share the
state through Redis (--store redis://...).`,
	}
	cmd.AddCommand(newAPIKeyCreate(), newAPIKeyList(), newAPIKeyRotate(), newAPIKeyRevoke())
	return cmd
}

func (st *state) apikeys(cmd *cobra.Command) (*apikeys.Service, error) {
	return st.APIKeysService(st.cfg, st.cfg.Log.Logger(cmd.ErrOrStderr()))
}

func newAPIKeyCreate() *cobra.Command {
	var (
		sf      stateFlags
		sp      apikeys.Spec
		expires string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --scope S... [--expires 90d] [--client ID]",
		Short: "Create an API key and print it (shown once)",
		Example: `  verdict apikey create --name billing-service --scope verdict:decide --expires 90d
  verdict apikey create --name ci --scope verdict:bundles:write --expires 30d`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires != "" {
				d, err := apikeys.ParseDuration(expires)
				if err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
				sp.ExpiresIn = d
			}
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			svc, err := st.apikeys(cmd)
			if err != nil {
				return err
			}
			sp.CreatedBy = "cli"
			k, text, err := svc.Create(cmd.Context(), sp)
			st.audit.record(cmd.Context(), slog.LevelInfo, "API key created", "apikey.create", err, slog.String("apikey_id", k.ID))
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"id": k.ID, "key": text, "scopes": k.Scopes, "expires_at": k.ExpiresAt})
			}
			exp := "never"
			if !k.ExpiresAt.IsZero() {
				exp = k.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API key %s created (%s; scopes %s; expires %s)\nkey: %s\n(shown once: store it now)\n",
				k.ID, k.Name, strings.Join(k.Scopes, " "), exp, text)
			return nil
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&sp.Name, "name", "", "what the key is for (shown in listings and logs)")
	f.StringArrayVar(&sp.Scopes, "scope", nil, "scope the key grants (repeatable), e.g. verdict:decide")
	f.StringVar(&expires, "expires", "", "lifetime, e.g. 90d or 720h (default: never, unless apikeys.max_lifetime is set)")
	f.StringVar(&sp.ClientID, "client", "", "the OAuth client the key acts as (its client_id in logs, limits and decisions)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAPIKeyList() *cobra.Command {
	var (
		sf     stateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API keys with their state and use (never a secret)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := sf.openReadOnly(cmd)
			if err != nil {
				return err
			}
			list := []apikeys.Info{}
			if ok {
				defer st.Close()
				svc, err := apikeys.New(st.cfg.APIKeys, readOnlyKeys(st), noRevocations{}, make([]byte, 32), nil, nil)
				if err != nil {
					return err
				}
				if list, err = svc.List(cmd.Context()); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tSTATE\tEXPIRES\tUSES\tLAST USED")
			for _, k := range list {
				exp, last := "never", "never"
				if !k.ExpiresAt.IsZero() {
					exp = k.ExpiresAt.Format(time.RFC3339)
				}
				if !k.LastUsedAt.IsZero() {
					last = k.LastUsedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, " "), k.State, exp, k.UseCount, last)
			}
			return tw.Flush()
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAPIKeyRotate() *cobra.Command {
	var (
		sf      stateFlags
		overlap string
	)
	cmd := &cobra.Command{
		Use:   "rotate ID [--overlap 24h]",
		Short: "Give a key a new secret (printed once); the old one works until the overlap ends",
		Args:  argsExactly("ID (a key id: verdict apikey list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d time.Duration
			if overlap != "" {
				v, err := apikeys.ParseDuration(overlap)
				if err != nil {
					return fmt.Errorf("--overlap: %w", err)
				}
				if d = v; d == 0 {
					d = -1
				}
			}
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			svc, err := st.apikeys(cmd)
			if err != nil {
				return err
			}
			k, text, err := svc.Rotate(cmd.Context(), args[0], d)
			st.audit.record(cmd.Context(), slog.LevelInfo, "API key rotated", "apikey.rotate", err, slog.String("apikey_id", args[0]))
			if err != nil {
				return err
			}
			until := "now"
			if !k.PrevUntil.IsZero() {
				until = k.PrevUntil.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API key %s rotated; the old secret works until %s\nkey: %s\n(shown once: store it now)\n", k.ID, until, text)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&overlap, "overlap", "", "how long the old secret keeps working (default apikeys.rotation_overlap, 24h; 0s: not at all)")
	return cmd
}

func newAPIKeyRevoke() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key: it stops working at once, on every replica within the poll interval",
		Args:  argsExactly("ID (a key id: verdict apikey list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			svc, err := st.apikeys(cmd)
			if err != nil {
				return err
			}
			err = svc.Revoke(cmd.Context(), args[0])
			st.audit.record(cmd.Context(), slog.LevelInfo, "API key revoked", "apikey.revoke", err, slog.String("apikey_id", args[0]))
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "API key %s revoked\n", args[0])
			}
			return err
		},
	}
	sf.add(cmd)
	return cmd
}

// readOnlyKeys is the state's API keys for a listing.
func readOnlyKeys(st *state) apikeys.Store {
	return storeadapt.APIKeys(st.Store, store.DefaultNamespace)
}

// noRevocations stands in for the revocation store of a listing, which
// neither revokes nor verifies.
type noRevocations struct{}

func (noRevocations) Revoke(context.Context, string, time.Time) error { return errors.New("read-only") }
func (noRevocations) Revoked(context.Context, string) (bool, error)   { return false, nil }
