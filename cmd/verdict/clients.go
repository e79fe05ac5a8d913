package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/spf13/cobra"
)

func newClient() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Manage the OAuth clients that may get tokens",
		Long: `Manage OAuth clients kept in the data dir. A client's secret is printed once,
when it is made or rotated, and stored only as an HMAC: keep it then.

With the embedded store add, remove and rotate-secret open the data dir
directly, so they need verdict serve stopped (bbolt admits one writer at a
time; while it runs use its admin API, /v1/admin/clients). list works while a
server runs: it reads a consistent copy of the database as of its last
change. With
--store redis://... (or store: in --config) they work on the Redis that the
replicas share, while they run: "verdict client add --store redis://..." adds
a client to a running cluster.

add, remove and rotate-secret log an audit event on stderr (audit=true,
action, client_id, by=cli, outcome; never the secret), in the configured log
format, like the admin routes do.`,
	}
	cmd.AddCommand(newClientAdd(), newClientList(), newClientRotate(), newClientRemove(), newClientKeygen(), newClientAssertion())
	return cmd
}

func newClientAdd() *cobra.Command {
	var (
		sf       stateFlags
		spec     oauth.ClientSpec
		jwksFile string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "add --id ID --scope S... [--grant G]...",
		Short: "Add a client and print its secret (shown once)",
		Example: `  verdict client add --id gateway --scope verdict:decide
  verdict client add --id ci --scope verdict:bundles:write --grant client_credentials
  verdict client add --id webapp --name "Web app" --scope openid --scope profile --scope email --grant authorization_code --grant refresh_token --redirect-uri https://app.example.com/callback
  verdict client add --id svc --scope verdict:decide --jwks svc-keys.json --no-secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jwksFile != "" {
				var err error
				if spec.JWKS, err = os.ReadFile(jwksFile); err != nil {
					return err
				}
			}
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			cl, secret, err := st.Clients.Add(cmd.Context(), spec)
			st.audit.record(cmd.Context(), slog.LevelInfo, "client added", "client.add", err, slog.String("client_id", spec.ID))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"client_id": cl.ID, "client_secret": secret, "scopes": cl.Scopes, "grants": cl.Grants})
			}
			fmt.Fprintf(out, "client %s added (scopes %s; grants %s)\n", cl.ID, strings.Join(cl.Scopes, " "), strings.Join(cl.Grants, " "))
			if secret != "" {
				fmt.Fprintf(out, "client_secret: %s\n(shown once: store it now)\n", secret)
			}
			return nil
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&spec.ID, "id", "", "client id (letters, digits, . _ : -)")
	f.StringArrayVar(&spec.Scopes, "scope", nil, "scope the client may ask for (repeatable), e.g. verdict:decide")
	f.StringArrayVar(&spec.Grants, "grant", nil, "grant type: client_credentials (default), authorization_code, refresh_token, token-exchange (repeatable)")
	f.StringVar(&jwksFile, "jwks", "", "file with the client's public JWK set, for private_key_jwt")
	f.BoolVar(&spec.NoSecret, "no-secret", false, "no secret: the client authenticates with private_key_jwt only (needs --jwks)")
	f.StringArrayVar(&spec.RedirectURIs, "redirect-uri", nil, "redirect URI of the authorization_code grant, matched exactly (repeatable)")
	f.StringArrayVar(&spec.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "where RP-initiated logout may return, matched exactly (repeatable)")
	f.BoolVar(&spec.FirstParty, "first-party", false, "the deployment's own app: its users are not asked for consent")
	f.BoolVar(&spec.Public, "public", false, "a public client (single-page or native app): no secret, PKCE only")
	f.StringVar(&spec.Name, "name", "", "name shown on the consent page")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientList() *cobra.Command {
	var (
		sf     stateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clients (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := sf.openReadOnly(cmd)
			if err != nil {
				return err
			}
			cs := []oauth.ClientInfo{}
			if ok {
				defer st.Close()
				if cs, err = st.Clients.List(cmd.Context()); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(cs)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSCOPES\tGRANTS\tSECRET\tJWKS")
			for _, c := range cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\n", c.ID, strings.Join(c.Scopes, " "), strings.Join(c.Grants, " "), c.HasSecret, c.HasJWKS)
			}
			return tw.Flush()
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newClientRotate() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Give a client a new secret (printed once); the old one stops working",
		Args:  argsExactly("ID (a client id: verdict client list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			secret, err := st.Clients.RotateSecret(cmd.Context(), args[0])
			st.audit.record(cmd.Context(), slog.LevelInfo, "client secret rotated", "client.rotate-secret", err, slog.String("client_id", args[0]))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client_secret: %s\n(shown once: store it now)\n", secret)
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func newClientRemove() *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a client",
		Args:  argsExactly("ID (a client id: verdict client list lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sf.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.Clients.Remove(cmd.Context(), args[0])
			st.audit.record(cmd.Context(), slog.LevelInfo, "client removed", "client.remove", err, slog.String("client_id", args[0]))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client %s removed\n", args[0])
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}
