package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// servePair serves a server built from cfg on a public and an admin
// listener until the test ends.
func servePair(t *testing.T, cfg Config, opts ...Option) (srv *Server, public, admin string) {
	t.Helper()
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	srv, err := New(cfg, mgr, nil, append([]Option{WithAuth(nil, true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	lns := []net.Listener{ln}
	if cfg.AdminAddr != "" {
		aln, _ := net.Listen("tcp", "127.0.0.1:0")
		lns = append(lns, aln)
		admin = aln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, lns[1:]...) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			srv.Close()
		})
	})
	return srv, ln.Addr().String(), admin
}

func tlsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs},
	}}
}

func getStatus(t *testing.T, c *http.Client, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	code, _ := body["error"]["code"].(string)
	return resp.StatusCode, resp.Header, code
}

// TestTLS: a TLS client connects (TLS 1.2 at least, HSTS on every answer);
// a plain HTTP client and a TLS 1.1 one are refused; a renewed certificate
// is served without a restart; a pair that does not load keeps the old one.
func TestTLS(t *testing.T) {
	pki := testutil.NewPKI(t, "verdict-test")
	_, certFile, keyFile := pki.Issue("server", false)
	cfg := DefaultConfig()
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	srv, addr, _ := servePair(t, cfg)
	c := tlsClient(pki.Pool)

	for _, path := range []string{"/healthz", "/nope", "/.well-known/oauth-authorization-server"} {
		code, hdr, _ := getStatus(t, c, "https://"+addr+path)
		if got := hdr.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s (%d): Strict-Transport-Security %q", path, code, got)
		}
	}
	resp, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %+v", resp.TLS)
	}
	serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64()

	// Plain HTTP on the TLS port: refused, never answered.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a plain HTTP request was answered 200 on the TLS listener")
		}
	}
	// TLS 1.1: refused in the handshake.
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 client connected")
	}

	// A renewed certificate (same files) is served on the next connection
	// once the reloader looks again; no restart.
	clock := time.Now()
	srv.tls.mu.Lock()
	srv.tls.now = func() time.Time { return clock }
	srv.tls.mu.Unlock()
	renewed, newCert, newKey := pki.Issue("server-renewed", false)
	copyFile(t, newCert, certFile)
	copyFile(t, newKey, keyFile)
	clock = clock.Add(2 * reloadEvery)
	c = tlsClient(pki.Pool) // a new connection
	resp, err = c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 || got.Int64() == serial {
		t.Fatalf("after renewal the server presents serial %v, want %v", got, renewed.Leaf.SerialNumber)
	}
	// Half a pair (a key that does not match): the renewed one stays.
	_, _, otherKey := pki.Issue("other", false)
	copyFile(t, otherKey, keyFile)
	clock = clock.Add(2 * reloadEvery)
	c = tlsClient(pki.Pool)
	resp, err = c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("a broken pair on disk broke the server: %v", err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Fatalf("a pair that does not load replaced the served one: serial %v", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMTLSOnChosenRoutes: with client_cert_routes [/v1/admin], an admin
// route needs a client certificate of the configured CA (403
// client_certificate_required without one), other routes do not; a
// certificate of another CA is refused in the handshake.
func TestMTLSOnChosenRoutes(t *testing.T) {
	pki := testutil.NewPKI(t, "verdict-test")
	_, certFile, keyFile := pki.Issue("server", false)
	clientCert, _, _ := pki.Issue("operator", true)
	stranger := testutil.NewPKI(t, "stranger")
	strangerCert, _, _ := stranger.Issue("mallory", true)
	cfg := DefaultConfig()
	cfg.TLS = TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: pki.CAFile, ClientCertRoutes: []string{"/v1/admin"}}
	_, addr, _ := servePair(t, cfg)
	base := "https://" + addr

	tlsOnly := tlsClient(pki.Pool)
	if code, _, errCode := getStatus(t, tlsOnly, base+"/v1/admin/clients"); code != http.StatusForbidden || errCode != CodeClientCertRequired {
		t.Errorf("admin route without a client certificate: %d %s", code, errCode)
	}
	if code, _, _ := getStatus(t, tlsOnly, base+"/healthz"); code != http.StatusOK {
		t.Errorf("a route outside client_cert_routes needs no certificate: %d", code)
	}
	mtls := tlsClient(pki.Pool, clientCert)
	// Past the certificate, the route's own check (a caller token) answers.
	if code, _, errCode := getStatus(t, mtls, base+"/v1/admin/clients"); code != http.StatusUnauthorized {
		t.Errorf("admin route with a client certificate: %d %s, want the token check's 401", code, errCode)
	}
	// Go's client offers only a certificate of a CA the server names; this
	// one sends the stranger's anyway, and the handshake fails.
	forced := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &strangerCert, nil }}}}
	if resp, err := forced.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate of another CA was accepted: %d", resp.StatusCode)
	}

	// "/" is every route: no certificate, no handshake.
	cfg.TLS.ClientCertRoutes = []string{"/"}
	_, addr, _ = servePair(t, cfg)
	if resp, err := tlsOnly.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("client_cert_routes [/]: a client without a certificate was answered %d", resp.StatusCode)
	}
	if code, _, _ := getStatus(t, mtls, "https://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("client_cert_routes [/] with a certificate: %d", code)
	}
}

// TestAdminListener: with admin_addr, metrics, status, bundles and admin
// routes are answered on the admin listener and 404 on the public one;
// decisions are not answered on the admin listener; both answer the
// probes.
func TestAdminListener(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminAddr = "127.0.0.1:1" // replaced by the test's own listener
	_, public, admin := servePair(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second}
	status := func(addr, method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/v1/status", "/v1/bundles", "/v1/bundles/active", "/v1/admin/clients", "/v1/admin/keys", "/console", "/console/login"} {
		if got := status(public, http.MethodGet, path); got != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", path, got)
		}
		if got := status(admin, http.MethodGet, path); got == http.StatusNotFound {
			t.Errorf("admin %s: 404", path)
		}
	}
	if got := status(admin, http.MethodGet, "/metrics"); got != http.StatusOK {
		t.Errorf("admin /metrics: %d", got)
	}
	if got := status(public, http.MethodPost, "/v1/bundles"); got != http.StatusNotFound {
		t.Errorf("public bundle push: %d, want 404", got)
	}
	if got := status(public, http.MethodPost, "/v1/decide"); got != http.StatusOK {
		t.Errorf("public decide: %d", got)
	}
	for _, path := range []string{"/v1/decide", "/access/v1/evaluation"} {
		if got := status(admin, http.MethodPost, path); got != http.StatusNotFound {
			t.Errorf("admin %s: %d, want 404", path, got)
		}
	}
	for _, addr := range []string{public, admin} {
		for _, path := range []string{"/healthz", "/readyz"} {
			if got := status(addr, http.MethodGet, path); got != http.StatusOK {
				t.Errorf("%s%s: %d", addr, path, got)
			}
		}
	}
}

func TestTLSConfigIsValidated(t *testing.T) {
	pki := testutil.NewPKI(t, "verdict-test")
	_, certFile, keyFile := pki.Issue("server", false)
	for _, tc := range []struct {
		tls  TLS
		want string
	}{
		{TLS{CertFile: certFile}, "set both or neither"},
		{TLS{CertFile: certFile, KeyFile: pki.CAFile}, "tls.cert_file/key_file"},
		{TLS{CertFile: certFile, KeyFile: keyFile, MinVersion: "1.1"}, `tls.min_version "1.1"`},
		{TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: pki.CAFile}, "needs tls.client_cert_routes"},
		{TLS{CertFile: certFile, KeyFile: keyFile, ClientCertRoutes: []string{"/v1/admin"}}, "needs tls.client_ca_file"},
		{TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: keyFile, ClientCertRoutes: []string{"/v1/admin"}}, "holds no PEM CERTIFICATE"},
		{TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: pki.CAFile, ClientCertRoutes: []string{"v1/admin/"}}, "client_cert_routes[0]"},
		{TLS{ClientCAFile: pki.CAFile, ClientCertRoutes: []string{"/"}}, "need tls.cert_file and tls.key_file"},
	} {
		cfg := DefaultConfig()
		cfg.TLS = tc.tls
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.tls, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.AdminAddr = cfg.Addr
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "its own port") {
		t.Errorf("admin_addr = addr: %v", err)
	}
}
