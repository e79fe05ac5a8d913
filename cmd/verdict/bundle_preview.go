package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verdictpdp/verdict/internal/app"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
	"github.com/verdictpdp/verdict/server"
)

func newBundlePreview() *cobra.Command {
	var (
		serverURL, clientID, tokenURL string
		against, inputsPath, cfgPath  string
		asJSON, all                   bool
	)
	cmd := &cobra.Command{
		Use:   "preview CANDIDATE (--server URL | --against ACTIVE) [--inputs FILE]",
		Short: "Show which decisions a candidate bundle would change, before pushing it",
		Long: `Decide a set of inputs under the active revision and under the candidate bundle
CANDIDATE (a directory or .tar.gz) and print the inputs whose decision changes,
with a summary. Nothing is pushed, stored or activated.

With --server, the running server previews (POST /v1/bundles/preview) against
its active revision. With --client-id, a token with scope verdict:bundles:write
is fetched first by OAuth 2 client credentials from --token-url (default
URL/oauth2/token), the secret read from $VERDICT_CLIENT_SECRET; without it no
token is sent (a serve --dev server on loopback).

With --against ACTIVE (a directory or .tar.gz), the preview runs locally, with
no server, comparing CANDIDATE to ACTIVE; --config applies the engine, bundle
limits and bundles.schemas of serve.

--inputs FILE is a JSON array of decision inputs in the /v1/decide shape
({subject, action, resource, context}); without it the test cases of both
bundles are decided. The candidate's failing tests are reported, not fatal.

Exit status: 0 when the preview ran (whatever changed), 1 when the candidate
was rejected (unreadable, does not compile) or the server refused the preview,
2 on bad usage.`,
		Example: `  verdict bundle preview ./policies/next --against ./policies/current
  VERDICT_CLIENT_SECRET=... verdict bundle preview bundle.tar.gz \
      --server https://pdp.example.com --client-id ci --inputs inputs.json`,
		Args: argsExactly("CANDIDATE (the bundle directory or .tar.gz to preview)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (serverURL == "") == (against == "") {
				return errors.New("give exactly one of --server URL (preview on a server) and --against ACTIVE (local)")
			}
			if clientID != "" && serverURL == "" {
				return errors.New("--client-id needs --server")
			}
			cfg, err := app.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			var rawInputs []byte
			if inputsPath != "" {
				if rawInputs, err = readLimited(inputsPath, int64(cfg.Server.BodyLimit)); err != nil {
					return fmt.Errorf("--inputs: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			reject := func(err error) error {
				fmt.Fprintf(out, "candidate rejected:\n%v\n", err)
				return exitError{1}
			}
			cand, err := bundles.Load(args[0], cfg.BundleLimits)
			if err != nil {
				return reject(err)
			}
			var rep *bundles.PreviewReport
			if against != "" {
				inputs, err := pdp.ParsePreviewInputs(rawInputs, cfg.Server.MaxDepth, cfg.Server.MaxBatch)
				if err != nil {
					return fmt.Errorf("--inputs: %w", err)
				}
				rep, err = previewLocal(cmd.Context(), cfg, cand, against, inputs)
				if err != nil {
					return reject(err)
				}
			} else {
				base := strings.TrimSuffix(serverURL, "/")
				if tokenURL == "" {
					tokenURL = base + "/oauth2/token"
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				defer cancel()
				hc := &http.Client{Timeout: time.Minute}
				if clientID != "" {
					secret := os.Getenv(secretEnv)
					if secret == "" {
						return fmt.Errorf("--client-id needs the client secret in $%s", secretEnv)
					}
					cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL,
						Scopes: []string{server.ScopeBundlesWrite}}
					hc = cc.Client(context.WithValue(ctx, oauth2.HTTPClient, hc))
				}
				rep, err = previewRemote(ctx, hc, base, cand, rawInputs)
				if err != nil {
					// Any refusal of the candidate or the inputs (4xx other than
					// authentication) counts as rejected: exit 1.
					refused := func(f *apiFailure) bool { return f.status/100 == 4 }
					return peer{base: base, clientID: clientID, scope: server.ScopeBundlesWrite}.explain(cmd, "preview refused", err, refused)
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printPreview(out, rep, all)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "", "base URL of the Verdict server that previews against its active revision")
	f.StringVar(&clientID, "client-id", "", "OAuth client id for a token with verdict:bundles:write (secret in $VERDICT_CLIENT_SECRET)")
	f.StringVar(&tokenURL, "token-url", "", "token endpoint (default: the server's /oauth2/token)")
	f.StringVar(&against, "against", "", "local mode: the active bundle (directory or .tar.gz) to compare with")
	f.StringVar(&inputsPath, "inputs", "", "JSON file with an array of decision inputs (default: both bundles' test cases)")
	f.BoolVar(&asJSON, "json", false, "print the whole report as JSON (as the server answers it)")
	f.BoolVar(&all, "all", false, "list unchanged inputs too")
	f.StringVar(&cfgPath, "config", "", "configuration file whose engine, bundle limits and bundles.schemas apply (as under serve)")
	return cmd
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over the %d-byte limit (server.body_limit)", path, max)
	}
	return b, nil
}

// previewLocal compares cand with the bundle at activePath as the server
// would, with neither activated; failing tests of either do not stop it.
func previewLocal(ctx context.Context, cfg app.Config, cand *bundles.Bundle, activePath string, inputs []bundles.PreviewInput) (*bundles.PreviewReport, error) {
	mgr := bundles.NewManager(cfg.BundleConfig(), nil)
	ab, err := bundles.Load(activePath, cfg.BundleLimits)
	if err != nil {
		return nil, fmt.Errorf("--against: %w", err)
	}
	active, _, err := mgr.Trial(ctx, []*bundles.Bundle{ab})
	if err != nil {
		return nil, fmt.Errorf("--against %s does not compile:\n%w", activePath, err)
	}
	c, failures, err := mgr.Trial(ctx, []*bundles.Bundle{cand})
	if err != nil {
		return nil, err
	}
	if len(inputs) == 0 {
		inputs = bundles.DefaultInputs(active, c)
	}
	return bundles.Preview(ctx, active, c, failures, inputs), nil
}

// previewRemote asks the server at base for a preview of cand (and the
// inputs, a JSON array, when given) with hc. A refusal is an *apiFailure.
func previewRemote(ctx context.Context, hc *http.Client, base string, cand *bundles.Bundle, inputs []byte) (*bundles.PreviewReport, error) {
	archive, err := bundles.Pack(cand)
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, err := mw.CreateFormFile("bundle", "bundle.tar.gz")
	if err != nil {
		return nil, err
	}
	w.Write(archive)
	if len(inputs) > 0 {
		if w, err = mw.CreateFormFile("inputs", "inputs.json"); err != nil {
			return nil, err
		}
		w.Write(inputs)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var rep bundles.PreviewReport
	if _, err := call(ctx, hc, http.MethodPost, base+"/v1/bundles/preview", mw.FormDataContentType(), body.Bytes(), &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// printPreview writes the summary and a table of the changed inputs (all
// inputs with showAll).
func printPreview(w io.Writer, r *bundles.PreviewReport, showAll bool) {
	active := "no active bundle"
	if r.Active != nil {
		active = "active " + r.Active.Revision
	}
	fmt.Fprintf(w, "candidate %s against %s\n", r.Candidate.Revision, active)
	fmt.Fprintf(w, "candidate tests: %d passed, %d failed\n", r.Tests.Passed, r.Tests.Failed)
	for _, f := range r.Tests.Failures {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	s := r.Summary
	fmt.Fprintf(w, "%d inputs: %d changed (%d allow→deny, %d deny→allow), %d unchanged, %d with errors\n",
		s.Total, s.Changed, s.AllowToDeny, s.DenyToAllow, s.Unchanged, s.Errors)
	var rows []bundles.PreviewItem
	for _, it := range r.Items {
		if showAll || it.Changed || it.ReasonsChanged {
			rows = append(rows, it)
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "\nno decision changes")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE\tSOURCE\tNAME\tSUBJECT\tACTION\tRESOURCE\tACTIVE\tCANDIDATE")
	for _, it := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", change(it), it.Source, it.Name,
			entity(it.Input["subject"]), name(it.Input["action"]), entity(it.Input["resource"]),
			verdict(it.Active), verdict(it.Candidate))
	}
	tw.Flush()
}

func change(it bundles.PreviewItem) string {
	switch {
	case it.Changed && it.Active.Decision:
		return "allow→deny"
	case it.Changed:
		return "deny→allow"
	case it.ReasonsChanged:
		return "reasons"
	}
	return "-"
}

func verdict(o bundles.PreviewOutcome) string {
	d := "deny"
	if o.Decision {
		d = "allow"
	}
	s := d + " [" + strings.Join(o.Reasons, ",") + "]"
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

func entity(v any) string {
	m, _ := v.(map[string]any)
	return fmt.Sprintf("%v:%v", m["type"], m["id"])
}

func name(v any) string {
	m, _ := v.(map[string]any)
	return fmt.Sprint(m["name"])
}
