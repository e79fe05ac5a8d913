package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientKeygenAndAssertion: the key pair and assertion the CLI makes
// get a token by private_key_jwt from a running server; the assertion is
// good once.
func TestClientKeygenAndAssertion(t *testing.T) {
	dataDir, keyDir := t.TempDir(), filepath.Join(t.TempDir(), "svc-key")
	if code, out, errOut := cli(t, "", "client", "keygen", "--out", keyDir); code != 0 || !strings.Contains(out, "kid ") {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(keyDir, "private.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private.pem: %v %v", fi, err)
	}
	if code, _, errOut := cli(t, "", "client", "keygen", "--out", keyDir); code != 2 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over existing files: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "client", "add", "--id", "svc", "--scope", "verdict:decide",
		"--jwks", filepath.Join(keyDir, "jwks.json"), "--no-secret", "--data-dir", dataDir); code != 0 {
		t.Fatalf("client add: %d %s", code, errOut)
	}
	addr := freeAddr(t)
	stop := serveAt(t, addr, dataDir)
	defer stop()
	base := "http://" + addr
	code, assertion, errOut := cli(t, "", "client", "assertion", "--client-id", "svc",
		"--key", filepath.Join(keyDir, "private.pem"), "--aud", base+"/oauth2/token")
	if code != 0 {
		t.Fatalf("assertion: %d %s", code, errOut)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {strings.TrimSpace(assertion)},
	}
	post := func() (int, map[string]any) {
		resp, err := http.PostForm(base+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := post(); code != 200 || m["access_token"] == nil || m["scope"] != "verdict:decide" {
		t.Fatalf("token by the CLI's assertion: %d %v", code, m)
	}
	if code, m := post(); code != 401 || m["error"] != "invalid_client" {
		t.Fatalf("the same assertion again: %d %v", code, m)
	}
	if code, _, errOut := cli(t, "", "client", "assertion", "--client-id", "svc", "--key", filepath.Join(keyDir, "private.pem"),
		"--aud", base+"/oauth2/token", "--ttl", "10m"); code != 2 || !strings.Contains(errOut, "5m") {
		t.Fatalf("--ttl over 5m: %d %s", code, errOut)
	}
}
