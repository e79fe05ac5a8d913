package main

import (
	"encoding/json"
	"strings"
	"testing"
)

type keyInfo struct {
	KID   string `json:"kid"`
	Alg   string `json:"alg"`
	State string `json:"state"`
}

func listKeys(t *testing.T, dir string) []keyInfo {
	t.Helper()
	code, out, errOut := cli(t, "", "keys", "list", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys list: %d %s", code, errOut)
	}
	return parseKeys(t, out)
}

// parseKeys decodes the output of keys list --json.
func parseKeys(t *testing.T, out string) []keyInfo {
	t.Helper()
	var ks []keyInfo
	if err := json.Unmarshal([]byte(out), &ks); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	return ks
}

func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	if ks := listKeys(t, dir); len(ks) != 0 {
		t.Fatalf("a listing made keys: %+v", ks)
	}
	// The first command that writes the state makes the first key, as the
	// first start of serve does.
	addClient(t, dir, "x", "verdict:decide")
	first := listKeys(t, dir)
	if len(first) != 1 || first[0].State != "signing" || first[0].Alg != "ES256" || len(first[0].KID) != 43 {
		t.Fatalf("first start: %+v", first)
	}
	if again := listKeys(t, dir); again[0].KID != first[0].KID {
		t.Fatal("the key did not survive a restart")
	}
	code, out, _ := cli(t, "", "keys", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "published") {
		t.Fatalf("rotate: %d %s", code, out)
	}
	ks := listKeys(t, dir)
	if len(ks) != 2 || ks[0].State != "signing" || ks[1].State != "pending" {
		t.Fatalf("after rotate: %+v", ks)
	}
	code, out, _ = cli(t, "", "keys", "revoke", "--data-dir", dir, "--", ks[0].KID)
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	states := map[string]int{}
	for _, k := range listKeys(t, dir) {
		states[k.State]++
	}
	if states["revoked"] != 1 || states["signing"] != 1 {
		t.Fatalf("after revoking the signer a key must sign at once: %v", states)
	}
	if code, _, errOut := cli(t, "", "keys", "revoke", "nosuchkid", "--data-dir", dir); code != 2 || !strings.Contains(errOut, "nosuchkid") {
		t.Fatalf("unknown kid: %d %s", code, errOut)
	}
}

func TestKeysAlgFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/v.yaml"
	writeFile(t, cfg, "data_dir: state\nkeys: {alg: EdDSA}\n")
	if code, _, errOut := cli(t, "", "keys", "rotate", "--config", cfg); code != 0 {
		t.Fatalf("rotate: %d %s", code, errOut)
	}
	code, out, errOut := cli(t, "", "keys", "list", "--json", "--config", cfg)
	if code != 0 || strings.Count(out, `"EdDSA"`) != 2 {
		t.Fatalf("EdDSA from config: %d %s %s", code, out, errOut)
	}
	writeFile(t, cfg, "data_dir: state\nkeys: {alg: RS256, rsa_bits: 1024}\n")
	if code, _, errOut := cli(t, "", "keys", "rotate", "--config", cfg); code != 2 || !strings.Contains(errOut, "2048") {
		t.Fatalf("RSA 1024 must be refused: %d %s", code, errOut)
	}
}
