package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// newBundleShadow is `verdict bundle shadow REVISION`: start, report, stop
// or promote the shadowing of a stored revision on a server.
func newBundleShadow() *cobra.Command {
	var (
		rem                   remote
		ratio                 float64
		examples              int
		report, stop, promote bool
	)
	cmd := &cobra.Command{
		Use:   "shadow REVISION",
		Short: "Shadow a stored bundle revision on live traffic (every replica), report, stop or promote it",
		Long: `Without a flag: every replica of the server at --server decides a share
(--ratio) of its live decisions with the stored REVISION too, off the request
path: the answers stay the active revision's, and the two are compared. With
--report: this replica's counts so far (decisions compared, the candidate's
disagreements grouped by outcome, with examples). --stop ends shadowing;
--promote activates REVISION (as verdict bundle activate) and ends it.
Authenticates as for push (--client-id, $VERDICT_CLIENT_SECRET).`,
		Example: `  verdict bundle shadow v42 --ratio 0.2 --server https://verdict.example.com --client-id ci
  verdict bundle shadow v42 --report --server https://verdict.example.com --client-id ci
  verdict bundle shadow v42 --promote --server https://verdict.example.com --client-id ci`,
		Args: argsExactly("REVISION (a stored revision: verdict bundle revisions lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, f := range []bool{report, stop, promote} {
				if f {
					n++
				}
			}
			if n > 1 {
				return &usageError{cmd: cmd, msg: "use one of --report, --stop and --promote"}
			}
			return rem.run(cmd, func(ctx context.Context, hc *http.Client, base string) error {
				u := base + "/v1/bundles/" + url.PathEscape(args[0]) + "/shadow"
				method, body := http.MethodPost, fmt.Sprintf(`{"ratio":%g,"examples":%d}`, ratio, examples)
				switch {
				case report:
					method, body = http.MethodGet, ""
				case stop:
					method, body = http.MethodDelete, ""
				case promote:
					method, body, u = http.MethodPost, "", u+"/promote"
				}
				var out any
				ctype := ""
				if body != "" {
					ctype = "application/json"
				}
				if _, err := call(ctx, hc, method, u, ctype, []byte(body), &out); err != nil {
					unknown := func(f *apiFailure) bool { return f.status == http.StatusNotFound }
					return rem.peer().explain(cmd, "shadow", err, unknown)
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			})
		},
	}
	cmd.Flags().Float64Var(&ratio, "ratio", 0.1, "share of live decisions shadowed (more than 0, at most 1)")
	cmd.Flags().IntVar(&examples, "examples", 5, "example inputs kept per disagreement (0-100)")
	cmd.Flags().BoolVar(&report, "report", false, "print this replica's shadow report")
	cmd.Flags().BoolVar(&stop, "stop", false, "end shadowing (every replica)")
	cmd.Flags().BoolVar(&promote, "promote", false, "activate REVISION and end shadowing")
	rem.flags(cmd)
	return cmd
}
