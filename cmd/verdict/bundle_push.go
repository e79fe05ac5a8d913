package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/bundles"
)

// secretEnv holds the client secret of the bundle commands; a flag would
// put it in the shell history and the process list.
const secretEnv = "VERDICT_CLIENT_SECRET"

// remote is the server a bundle command talks to and how it authenticates.
type remote struct {
	server   string
	clientID string
	timeout  time.Duration
}

func (r *remote) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.server, "server", "", "base URL of the Verdict server, such as https://verdict.example.com (required)")
	f.StringVar(&r.clientID, "client-id", "", "OAuth client id with scope verdict:bundles:write; its secret is read from $"+secretEnv+" (required)")
	f.DurationVar(&r.timeout, "timeout", 2*time.Minute, "how long the whole command may take")
}

// client returns an HTTP client that sends a client-credentials token for
// verdict:bundles:write, fetched from the server's token endpoint.
func (r *remote) client(ctx context.Context) (*http.Client, string, error) {
	if r.server == "" || r.clientID == "" {
		return nil, "", errors.New("--server and --client-id are required")
	}
	base := strings.TrimSuffix(r.server, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("--server %q is not an http(s) URL", r.server)
	}
	secret := os.Getenv(secretEnv)
	if secret == "" {
		return nil, "", fmt.Errorf("$%s is empty: set it to the secret of client %q", secretEnv, r.clientID)
	}
	cc := clientcredentials.Config{ClientID: r.clientID, ClientSecret: secret, TokenURL: base + "/oauth2/token",
		Scopes: []string{"verdict:bundles:write"}}
	return cc.Client(ctx), base, nil
}

// check is the usage error of a command run without --server or
// --client-id.
func (r *remote) check(cmd *cobra.Command) error {
	if r.server == "" || r.clientID == "" {
		return missingFlag(cmd, "--server URL and --client-id ID (the server, and a client with scope verdict:bundles:write whose secret is in $"+secretEnv+")")
	}
	return nil
}

// peer describes the server and client for error messages.
func (r *remote) peer() peer {
	return peer{base: strings.TrimSuffix(r.server, "/"), clientID: r.clientID, scope: "verdict:bundles:write", timeout: r.timeout.String()}
}

// run calls fn with a context bounded by --timeout and a client that
// authenticates to the server.
func (r *remote) run(cmd *cobra.Command, fn func(ctx context.Context, hc *http.Client, base string) error) error {
	if err := r.check(cmd); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), r.timeout)
	defer cancel()
	hc, base, err := r.client(ctx)
	if err != nil {
		return err
	}
	return fn(ctx, hc, base)
}

// apiFailure is a refusal by the server, with the details it listed.
type apiFailure struct {
	status  int
	code    string
	message string
	details []string
}

func (f *apiFailure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", f.status, f.code, f.message)
	for _, d := range f.details {
		b.WriteString("\n  " + d)
	}
	return b.String()
}

// rejected reports whether the server refused the bundle itself (as
// opposed to the request or the credentials): exit status 1.
func (f *apiFailure) rejected() bool {
	switch f.code {
	case "bundle_unreadable", "bundle_invalid", "bundle_tests_failed", "bundle_revision_conflict", "bundle_signature_invalid", "payload_too_large":
		return true
	}
	return false
}

// call sends one request and decodes a JSON answer into out; a non-2xx
// answer is an *apiFailure, a failure to connect or get a token another
// error.
func call(ctx context.Context, hc *http.Client, method, u, ctype string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err // a *url.Error naming method and URL: peer.explain says what it means
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code    string   `json:"code"`
				Message string   `json:"message"`
				Details []string `json:"details"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			return resp.StatusCode, &apiFailure{status: resp.StatusCode, code: "http_error", message: strings.TrimSpace(string(raw))}
		}
		return resp.StatusCode, &apiFailure{status: resp.StatusCode, code: e.Error.Code, message: e.Error.Message, details: e.Error.Details}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, u, err)
	}
	return resp.StatusCode, nil
}

type pushAnswer struct {
	bundles.PushResult
	Message string `json:"message"`
}

func printResult(w io.Writer, r pushAnswer) {
	fmt.Fprintf(w, "revision:  %s\ndigest:    %s\ntests:     %d passed, %d failed\nactivated: %v\n%s\n",
		r.Revision, r.Digest, r.Tests.Passed, r.Tests.Failed, r.Activated, r.Message)
}

func newBundlePush() *cobra.Command {
	var (
		rem        remote
		noActivate bool
		cfgPath    string
	)
	cmd := &cobra.Command{
		Use:   "push FILE|DIR",
		Short: "Push a bundle to a running server, which tests, stores and activates it",
		Long: `Push the bundle at FILE (a .tar.gz) or DIR (packed to a .tar.gz in memory) to
the server at --server. The server reads it safely, verifies its signature,
compiles every policy, runs its *_test.yaml cases, stores the revision and
activates it (not with --no-activate). Nothing changes on the server unless all
of that passes.

The command gets an access token with the client credentials grant from
--server's /oauth2/token: --client-id names a client with scope
verdict:bundles:write (verdict client add --scope verdict:bundles:write) and
the secret is read from $VERDICT_CLIENT_SECRET.

Prints the revision, digest and test counts on success. A rejected bundle
prints every problem (each compile error as file:line:col, each failing test)
and exits 1; bad usage, bad credentials or an unreachable server exit 2.`,
		Example: `  export VERDICT_CLIENT_SECRET=...
  verdict bundle push ./policies/quickstart --server https://verdict.example.com --client-id ci
  verdict bundle push bundle.tar.gz --server http://127.0.0.1:8700 --client-id ci --no-activate`,
		Args: argsExactly("FILE|DIR (the bundle to push: a .tar.gz or a directory)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rem.check(cmd); err != nil {
				return err
			}
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			var archive []byte
			if fi.IsDir() {
				b, err := bundles.Load(args[0], cfg.BundleLimits)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "bundle rejected before pushing:", err)
					return exitError{1}
				}
				if archive, err = bundles.Pack(b); err != nil {
					return err
				}
			} else if archive, err = os.ReadFile(args[0]); err != nil {
				return err
			}
			return rem.run(cmd, func(ctx context.Context, hc *http.Client, base string) error {
				u := base + "/v1/bundles"
				if noActivate {
					u += "?activate=false"
				}
				var res pushAnswer
				if _, err := call(ctx, hc, http.MethodPost, u, "application/gzip", archive, &res); err != nil {
					return rem.peer().explain(cmd, "bundle rejected", err, nil)
				}
				printResult(cmd.OutOrStdout(), res)
				return nil
			})
		},
	}
	rem.flags(cmd)
	cmd.Flags().BoolVar(&noActivate, "no-activate", false, "store the revision without activating it (activate later with verdict bundle activate)")
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file whose bundle limits apply when packing a directory")
	return cmd
}

func newBundleRevisions() *cobra.Command {
	var (
		rem     remote
		asJSON  bool
		current bool
	)
	cmd := &cobra.Command{
		Use:   "revisions",
		Short: "List the bundle revisions stored on a server, newest first",
		Long: `List the revisions stored on the server at --server, newest first, with their
status (active or inactive), when and by whom they were pushed, their digest and
test counts. Authenticates as for push (--client-id, $VERDICT_CLIENT_SECRET).`,
		Example: `  verdict bundle revisions --server https://verdict.example.com --client-id ci`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rem.run(cmd, func(ctx context.Context, hc *http.Client, base string) error {
				if err := listRevisions(ctx, cmd, hc, base, asJSON, current); err != nil {
					return rem.peer().explain(cmd, "listing revisions failed", err, nil)
				}
				return nil
			})
		},
	}
	rem.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.Flags().BoolVar(&current, "active", false, "print only the active revision")
	return cmd
}

func listRevisions(ctx context.Context, cmd *cobra.Command, hc *http.Client, base string, asJSON, current bool) error {
	var out struct {
		Revisions []bundles.RevisionInfo `json:"revisions"`
	}
	if _, err := call(ctx, hc, http.MethodGet, base+"/v1/bundles", "", nil, &out); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tSTATUS\tPUSHED AT\tPUSHED BY\tTESTS\tDIGEST")
	for _, r := range out.Revisions {
		if current && r.Status != bundles.StatusActive {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", r.Revision, r.Status, r.PushedAt.Format(time.RFC3339),
			r.PushedBy, r.Tests.Passed, r.Tests.Passed+r.Tests.Failed, r.Digest)
	}
	return tw.Flush()
}

func newBundleActivate() *cobra.Command {
	var rem remote
	cmd := &cobra.Command{
		Use:   "activate REVISION",
		Short: "Activate a stored bundle revision on a server (roll back or forward)",
		Long: `Make the stored REVISION the active bundle of the server at --server. The
server reads, verifies, compiles and tests the stored archive again first (its
limits or keys may have changed since the push); if that fails, the bundle that
serves keeps serving and the problems are printed (exit 1). Authenticates as
for push (--client-id, $VERDICT_CLIENT_SECRET).`,
		Example: `  verdict bundle activate v41 --server https://verdict.example.com --client-id ci`,
		Args:    argsExactly("REVISION (a stored revision: verdict bundle revisions lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rem.run(cmd, func(ctx context.Context, hc *http.Client, base string) error {
				var res pushAnswer
				u := base + "/v1/bundles/" + url.PathEscape(args[0]) + "/activate"
				if _, err := call(ctx, hc, http.MethodPost, u, "", nil, &res); err != nil {
					// An unknown revision counts as rejected: exit 1.
					unknown := func(f *apiFailure) bool { return f.status == http.StatusNotFound }
					return rem.peer().explain(cmd, "activation failed", err, unknown)
				}
				printResult(cmd.OutOrStdout(), res)
				return nil
			})
		},
	}
	rem.flags(cmd)
	return cmd
}
