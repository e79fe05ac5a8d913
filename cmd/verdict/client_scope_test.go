package main

import (
	"strings"
	"testing"
)

// TestClientAddRefusesUnknownVerdictScopes: a misspelt Verdict scope is
// refused with the known ones listed, and nothing is stored; a scope of
// the deployment's own namespace is accepted.
func TestClientAddRefusesUnknownVerdictScopes(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "gw", "--scope", "verdict:nope", "--data-dir", dataDir)
	if code == 0 || !strings.Contains(errOut, `scope "verdict:nope" is not one of Verdict's (verdict:decide, verdict:bundles:read, verdict:bundles:write, verdict:scim, verdict:admin)`) {
		t.Fatalf("client add --scope verdict:nope: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ := cli(t, "", "client", "list", "--data-dir", dataDir); strings.Contains(out, "gw") {
		t.Fatalf("the refused client was stored:\n%s", out)
	}
	if code, _, errOut := cli(t, "", "client", "add", "--id", "app", "--scope", "todo:read", "--scope", "verdict:decide", "--data-dir", dataDir); code != 0 {
		t.Fatalf("client add with an own-namespace scope: exit %d %s", code, errOut)
	}
}
