package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// TestCORS: off by default (no CORS header for any origin); with
// server.cors.allowed_origins, an allowed origin gets the headers and its
// preflight is answered, any other origin gets none.
func TestCORS(t *testing.T) {
	send := func(h *harness, method, path, origin string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+path, nil)
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	off := newHarness(t)
	if resp := send(off, http.MethodGet, "/healthz", "https://app.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off, yet Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if resp := send(off, http.MethodOptions, "/v1/decide", "https://app.example", "Access-Control-Request-Method", "POST"); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode == http.StatusNoContent {
		t.Fatalf("CORS off, yet a preflight was answered: %d %v", resp.StatusCode, resp.Header)
	}

	cfg := DefaultConfig()
	cfg.CORS = CORS{AllowedOrigins: []string{"https://app.example"}, AllowCredentials: true}
	on := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil))
	resp := send(on, http.MethodGet, "/healthz", "https://app.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), decisionIDHeader) {
		t.Fatalf("allowed origin: %v", resp.Header)
	}
	if resp := send(on, http.MethodGet, "/healthz", "https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin got Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	pre := send(on, http.MethodOptions, "/v1/decide", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if pre.StatusCode != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
}

func TestCORSConfigIsValidated(t *testing.T) {
	for _, tc := range []struct {
		cors    CORS
		wantErr string
	}{
		{CORS{AllowedOrigins: []string{"https://app.example", "http://localhost:3000"}, AllowCredentials: true}, ""},
		{CORS{AllowedOrigins: []string{"*"}}, ""},
		{CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}, `"*" cannot be combined with allow_credentials`},
		{CORS{AllowedOrigins: []string{"https://app.example/"}}, "must be an origin"},
		{CORS{AllowedOrigins: []string{"https://app.example/path"}}, "must be an origin"},
		{CORS{AllowedOrigins: []string{"ftp://app.example"}}, "must be an origin"},
		{CORS{AllowedOrigins: []string{"app.example"}}, "must be an origin"},
	} {
		cfg := DefaultConfig()
		cfg.CORS = tc.cors
		err := cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tc.cors, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: error %v, want %q", tc.cors, err, tc.wantErr)
		}
	}
}
