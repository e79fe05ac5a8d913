package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRemoteCommandErrorsSayWhatWentWrong: push, revisions, activate and
// preview tell a server that is down, a wrong secret and a client without
// the scope apart, each in its own words and with the URL once, and never
// call them a rejected bundle (exit 2); a bundle the server refuses is
// "rejected" with the server's problems (exit 1).
func TestRemoteCommandErrorsSayWhatWentWrong(t *testing.T) {
	dataDir := t.TempDir()
	_, out, _ := cli(t, "", "client", "add", "--id", "ci", "--scope", "verdict:bundles:write", "--data-dir", dataDir)
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	_, out, _ = cli(t, "", "client", "add", "--id", "gw", "--scope", "verdict:decide", "--data-dir", dataDir)
	gwSecret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	// Not --dev, so that preview needs a token too; the failed token
	// requests below stay under the server's limit.
	cfg := filepath.Join(t.TempDir(), "v.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false}\nserver: {token_failures: {max: 1000, window: 1m}}\n")
	addr := freeAddr(t)
	stop, _ := serveWith(t, addr, dataDir, "--config", cfg)
	defer stop()
	up, down := "http://"+addr, "http://"+freeAddr(t)
	dir := bundleDir(t, map[string]string{".manifest": `{"revision":"v1"}`, "p.verdict.yaml": policy, "p_test.yaml": tests})
	commands := map[string][]string{
		"push":      {"bundle", "push", dir},
		"revisions": {"bundle", "revisions"},
		"activate":  {"bundle", "activate", "v1"},
		"preview":   {"bundle", "preview", dir},
	}
	for name, args := range commands {
		for _, c := range []struct {
			what, server, client, secret string
			want                         []string
		}{
			{"server down", down, "ci", secret, []string{"cannot reach the server at " + down + ":", "connection refused", "is verdict serve running there"}},
			{"wrong secret", up, "ci", "not-the-secret", []string{"authentication failed", `client "ci"`, "$VERDICT_CLIENT_SECRET", "invalid_client"}},
			{"unknown client", up, "nobody", secret, []string{"authentication failed", `client "nobody"`, "check --client-id"}},
			{"missing scope", up, "gw", gwSecret, []string{`client "gw" may not get a token with scope verdict:bundles:write`}},
		} {
			t.Setenv(secretEnv, c.secret)
			code, stdout, errOut := cli(t, "", append(args, "--server", c.server, "--client-id", c.client)...)
			ok := code == 2 && stdout == "" && !strings.Contains(errOut, "rejected") && !strings.Contains(errOut, "refused:") &&
				strings.Count(errOut, c.server) == 1
			for _, w := range c.want {
				ok = ok && strings.Contains(errOut, w)
			}
			if !ok {
				t.Errorf("%s, %s: exit %d, stdout %q, stderr:\n%s", name, c.what, code, stdout, errOut)
			}
		}
	}
	// Preview without a client: the server wants a token, and says so.
	code, stdout, errOut := cli(t, "", "bundle", "preview", dir, "--server", up)
	if code != 2 || stdout != "" || !strings.Contains(errOut, "requires an access token: give --client-id") {
		t.Errorf("preview without a token: exit %d %q\n%s", code, stdout, errOut)
	}
	// A bundle the server refuses is rejected, with its problems.
	t.Setenv(secretEnv, secret)
	broken := bundleDir(t, map[string]string{"p.verdict.yaml": strings.Replace(policy, "== subject.id", "== subject.nope(", 1)})
	code, _, errOut = cli(t, "", "bundle", "push", broken, "--server", up, "--client-id", "ci")
	if code != 1 || !strings.HasPrefix(errOut, "bundle rejected: 422 bundle_invalid") || !strings.Contains(errOut, "p.verdict.yaml:7:") {
		t.Errorf("broken push: exit %d\n%s", code, errOut)
	}
}
