package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil"
)

// TestServeTLSAndAdminListener runs `verdict serve` from a configuration
// file with TLS (files relative to it), a client-certificate route and an
// admin listener: a TLS client is answered and a plain one is not; metrics
// are on the admin listener only; the admin routes need a client
// certificate there; the issuer is announced as https.
func TestServeTLSAndAdminListener(t *testing.T) {
	pki := testutil.NewPKI(t, "verdict-ci")
	_, certFile, keyFile := pki.Issue("server", false)
	operator, _, _ := pki.Issue("operator", true)
	dir := filepath.Dir(certFile)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "verdict.yaml")
	writeFile(t, cfg, "server:\n  addr: "+addr+"\n  admin_addr: "+adminAddr+"\n  tls:\n    cert_file: "+filepath.Base(certFile)+
		"\n    key_file: "+filepath.Base(keyFile)+"\n    client_ca_file: "+filepath.Base(pki.CAFile)+"\n    client_cert_routes: [/v1/admin]\n"+
		"bundles: {require_signature: false, acknowledge_unsigned: true}\n")
	// Relative paths resolve against the file, not the working directory.
	if wd, _ := os.Getwd(); filepath.Dir(cfg) == wd {
		t.Fatal("the configuration must not sit in the working directory for this test")
	}
	if code, _, errOut := cli(t, "", "config", "validate", cfg); code != 0 {
		t.Fatalf("config validate: %d %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &testutil.SyncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--data-dir", t.TempDir(), "--bundle", filepath.Join("..", "..", "policies", "quickstart")},
			strings.NewReader(""), &strings.Builder{}, logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	mtls := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{operator}}}}
	status := func(c *http.Client, url string) int {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.WaitFor(t, "serve answering over TLS:\n"+logs.String(), 20*time.Millisecond, func() bool {
		resp, err := client.Get("https://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the TLS listener")
		}
	}
	if got := status(client, "https://"+addr+"/metrics"); got != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", got)
	}
	if got := status(client, "https://"+adminAddr+"/metrics"); got != http.StatusOK {
		t.Errorf("admin /metrics: %d", got)
	}
	if got := status(client, "https://"+adminAddr+"/v1/admin/clients"); got != http.StatusForbidden {
		t.Errorf("admin route without a client certificate: %d, want 403", got)
	}
	if got := status(mtls, "https://"+adminAddr+"/v1/admin/clients"); got != http.StatusUnauthorized {
		t.Errorf("admin route with a client certificate, no token: %d, want 401", got)
	}
	resp, err := client.Get("https://" + addr + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Issuer string `json:"issuer"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.Issuer != "https://"+addr {
		t.Errorf("issuer %q, want https://%s", meta.Issuer, addr)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
		t.Error("no Strict-Transport-Security over TLS")
	}
	for _, want := range []string{"https://" + addr, "admin listener", "https://" + adminAddr} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the start log does not say %q:\n%s", want, logs.String())
		}
	}
}
