package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/verdictpdp/verdict/internal/testutil"
)

// TestTyposExitWithASuggestion: a misspelt subcommand of every command
// group (the top level, bundle, keys, client, ...) exits 2 and suggests the
// command meant, instead of printing the group's help and exiting 0.
func TestTyposExitWithASuggestion(t *testing.T) {
	var groups []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			groups = append(groups, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(nil, io.Discard, io.Discard))
	if len(groups) < 4 {
		t.Fatalf("found only %d command groups", len(groups))
	}
	for _, g := range groups {
		sub := g.Commands()[0].Name()
		typo := sub[1:2] + sub[:1] + sub[2:] // "test" -> "etst", "add" -> "dad"
		path := strings.Fields(g.CommandPath())[1:]
		code, out, errOut := cli(t, "", append(path, typo, "x")...)
		if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "`+typo+`"`) ||
			!regexp.MustCompile(`Did you mean [^?\n]*\b`+sub+`\b[^?\n]*\?`).MatchString(errOut) || !strings.Contains(errOut, "Run '"+g.CommandPath()+" --help'") {
			t.Errorf("%s %s: exit %d, stdout %q, stderr:\n%s", g.CommandPath(), typo, code, out, errOut)
		}
	}
	// A bare group and --help still print the help, successfully.
	for _, args := range [][]string{{"bundle"}, {"keys", "--help"}, {"help", "client"}} {
		if code, out, _ := cli(t, "", args...); code != 0 || !strings.Contains(out, "Available Commands:") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	_, want, _ := cli(t, "", "version")
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		if code, out, errOut := cli(t, "", args...); code != 0 || out != want || !strings.HasPrefix(out, "verdict ") {
			t.Errorf("%v: %d %q %q (verdict version says %q)", args, code, out, errOut, want)
		}
	}
}

// TestArgumentErrorsSayWhatIsExpected: a missing or extra argument, an
// unknown flag or a missing required flag names what the command expects
// and shows its usage line; exit 2.
func TestArgumentErrorsSayWhatIsExpected(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"bundle", "test"}, []string{"verdict bundle test: missing PATH (a bundle directory or .tar.gz)", "Usage: verdict bundle test PATH [flags]", "Run 'verdict bundle test --help'"}},
		{[]string{"bundle", "lint"}, []string{"verdict bundle lint: missing PATH (a bundle directory or .tar.gz)"}},
		{[]string{"bundle", "push", "--server", "http://127.0.0.1:1"}, []string{"missing FILE|DIR (the bundle to push: a .tar.gz or a directory)", "Usage: verdict bundle push FILE|DIR"}},
		{[]string{"bundle", "activate"}, []string{"missing REVISION (a stored revision"}},
		{[]string{"bundle", "sign"}, []string{"missing DIR (the bundle directory to sign)"}},
		{[]string{"bundle", "preview"}, []string{"missing CANDIDATE"}},
		{[]string{"keys", "revoke"}, []string{"verdict keys revoke: missing KID"}},
		{[]string{"client", "remove"}, []string{"verdict client remove: missing ID"}},
		{[]string{"bundle", "test", "a", "b"}, []string{`too many arguments: it takes PATH, got "a" "b"`}},
		{[]string{"serve", "policies/quickstart"}, []string{`verdict serve: unexpected argument "policies/quickstart": it takes flags only`, "Usage: verdict serve [flags]"}},
		{[]string{"serve", "--bundel", "x"}, []string{"verdict serve: unknown flag: --bundel", "Usage: verdict serve [flags]"}},
		{[]string{"decide"}, []string{"verdict decide: missing --bundle PATH", "Usage: verdict decide"}},
		{[]string{"bundle", "push", "dir"}, []string{"verdict bundle push: missing --server URL and --client-id ID"}},
		{[]string{"bundle", "revisions"}, []string{"verdict bundle revisions: missing --server URL and --client-id ID"}},
		{[]string{"bundle", "sign", "dir"}, []string{"verdict bundle sign: missing --signing-key KEY.pem"}},
		{[]string{"bundle", "build", "dir"}, []string{"verdict bundle build: missing -o FILE.tar.gz"}},
		{[]string{"bundle", "keygen"}, []string{"verdict bundle keygen: missing --out DIR"}},
		{[]string{"client", "keygen"}, []string{"verdict client keygen: missing --out DIR"}},
		{[]string{"client", "assertion"}, []string{"verdict client assertion: missing --client-id ID, --key private.pem and --aud TOKEN_URL"}},
	} {
		code, out, errOut := cli(t, "", c.args...)
		ok := code == 2 && out == ""
		for _, w := range c.want {
			ok = ok && strings.Contains(errOut, w)
		}
		if !ok {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", c.args, code, out, errOut)
		}
	}
}

// helpExamples returns the example command lines of a help text, with
// continued lines joined and comments left out.
func helpExamples(help string) []string {
	var cmds []string
	cont := false
	for _, line := range strings.Split(help, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case cont:
			cmds[len(cmds)-1] += " " + strings.TrimSuffix(line, `\`)
		case strings.HasPrefix(line, "verdict ") || strings.HasPrefix(line, "echo '"):
			cmds = append(cmds, strings.TrimSuffix(line, `\`))
		default:
			continue
		}
		cont = strings.HasSuffix(line, `\`)
	}
	return cmds
}

// TestHelpExamplesRun: the examples `verdict --help` and `verdict serve
// --help` open with run as written from the repository root: the server
// becomes ready on the unsigned quickstart and allows an editor's update,
// the local decide allows it too. Only the address and data dir are added
// (a free port, a temporary directory).
func TestHelpExamplesRun(t *testing.T) {
	root := repoRoot(t)
	_, rootHelp, _ := cli(t, "", "--help")
	_, serveHelp, _ := cli(t, "", "serve", "--help")
	ran := 0
	for _, ex := range append(helpExamples(rootHelp), helpExamples(serveHelp)...) {
		if !strings.Contains(ex, "policies/quickstart") {
			continue
		}
		ran++
		stdin := ""
		if strings.HasPrefix(ex, "echo '") {
			var cmd string
			stdin, cmd, _ = strings.Cut(strings.TrimPrefix(ex, "echo '"), "'")
			ex = strings.TrimSpace(strings.TrimSpace(cmd)[1:]) // after the |
		}
		args := strings.Fields(strings.TrimPrefix(ex, "verdict "))
		for i, a := range args {
			if strings.HasPrefix(a, "policies/") {
				args[i] = filepath.Join(root, a)
			}
		}
		if args[0] != "serve" {
			if code, out, errOut := cli(t, stdin, args...); code != 0 || (args[0] == "decide" && !strings.Contains(out, `"decision": true`)) {
				t.Errorf("%s: exit %d\n%s%s", ex, code, out, errOut)
			}
			continue
		}
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		logs := &testutil.SyncBuffer{}
		go func() {
			done <- run(ctx, append(args, "--addr", addr, "--data-dir", t.TempDir()), strings.NewReader(""), io.Discard, logs)
		}()
		ready := false
		for i := 0; i < 250 && !ready; i++ {
			if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == 200
				if resp.StatusCode == 503 && strings.Contains(logs.String(), "rejected") {
					break
				}
			}
			if !ready {
				time.Sleep(20 * time.Millisecond)
			}
		}
		allowed := ready && decideOwnerless(t, "http://"+addr)
		cancel()
		<-done
		if !ready || !allowed {
			t.Errorf("%s: ready %v, editor may update %v; log:\n%s", ex, ready, allowed, logs.String())
		}
	}
	if ran < 3 {
		t.Fatalf("only %d examples on policies/quickstart in the help texts:\n%s\n%s", ran, rootHelp, serveHelp)
	}
}

// decideOwnerless asks base, without a caller token, whether an editor may
// update a document of someone else: the quickstart says yes.
func decideOwnerless(t *testing.T, base string) bool {
	t.Helper()
	resp, err := http.Post(base+"/v1/decide", "application/json", strings.NewReader(
		`{"subject":{"type":"user","id":"ed","properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42","properties":{"owner":"olga"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && strings.Contains(string(b), `"decision":true`)
}
