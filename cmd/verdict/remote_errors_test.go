package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// addClient adds a client with one scope to dataDir and returns its secret.
func addClient(t *testing.T, dataDir, id, scope string) string {
	t.Helper()
	code, out, errOut := cli(t, "", "client", "add", "--id", id, "--scope", scope, "--data-dir", dataDir)
	m := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("client add %s: %d %s%s", id, code, out, errOut)
	}
	return m[1]
}

// TestRemoteCommandErrorsSayWhatWentWrong: push, revisions, activate and
// preview tell a server that is down, a wrong secret and a client without
// the scope apart, each in its own words and with the URL once, and never
// call them a rejected bundle (exit 2). (A bundle the server refuses is
// "bundle rejected" with its problems, exit 1: TestBundlePushEndToEnd.)
func TestRemoteCommandErrorsSayWhatWentWrong(t *testing.T) {
	dataDir := t.TempDir()
	secret := addClient(t, dataDir, "ci", "verdict:bundles:write")
	gwSecret := addClient(t, dataDir, "gw", "verdict:decide")
	// Not --dev, so that preview needs a token too; the failed token
	// requests below stay under the server's limit.
	cfg := filepath.Join(t.TempDir(), "v.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\nserver: {token_failures: {max: 1000, window: 1m}}\n")
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
}
