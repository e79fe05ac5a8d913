package server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/verdictpdp/verdict/bundles"
)

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		proxies []string
		header  string
		peer    string
		values  []string
		want    string
	}{
		{"no proxies: the peer, whatever is sent", nil, "", "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer", []string{"10.0.0.0/8"}, "", "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer, one hop", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},
		{"forged left entries are skipped", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"198.51.100.7, 10.1.1.1", "10.2.2.2"}, "198.51.100.7"},
		{"all trusted: the leftmost", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"garbage stops at the last trusted hop", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"1.1.1.1, junk, 10.1.1.1"}, "10.1.1.1"},
		{"no header: the peer", []string{"10.0.0.0/8"}, "", "10.0.0.5", nil, "10.0.0.5"},
		{"IPv6 with port", []string{"10.0.0.0/8"}, "", "10.0.0.5", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"single address as proxy", []string{"10.0.0.5"}, "", "10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},
		{"Forwarded", []string{"10.0.0.0/8"}, HeaderForwarded, "10.0.0.5", []string{`for=6.6.6.6, for="[2001:db8::2]:80";proto=https, for=10.1.1.1;by=10.0.0.5`}, "2001:db8::2"},
		{"Forwarded obfuscated", []string{"10.0.0.0/8"}, HeaderForwarded, "10.0.0.5", []string{`for=_hidden`}, "10.0.0.5"},
		{"X-Real-IP", []string{"10.0.0.0/8"}, HeaderXRealIP, "10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped peer", []string{"10.0.0.0/8"}, "", "::ffff:10.0.0.5", []string{"198.51.100.7"}, "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TrustedProxies = tt.proxies
			if tt.header != "" {
				cfg.ClientIPHeader = tt.header
			}
			s, err := New(cfg, bundles.NewManager(bundles.DefaultConfig(), nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var req fasthttp.Request
			for _, v := range tt.values {
				req.Header.Add(s.cfg.ClientIPHeader, v)
			}
			var fctx fasthttp.RequestCtx
			fctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(tt.peer), Port: 1234}, nil)
			c := s.app.AcquireCtx(&fctx)
			defer s.app.ReleaseCtx(c)
			if got := s.clientIP(c); got != tt.want {
				t.Fatalf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTrustedProxiesValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "not-an-ip"}
	cfg.ClientIPHeader = "X-Client"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `server.trusted_proxies: "not-an-ip"`) || !strings.Contains(err.Error(), "client_ip_header") {
		t.Fatalf("Validate: %v", err)
	}
}

// TestStrangersCannotLockAClientOut is items 3 and 4 of issue 9: behind a
// trusted load balancer, failures from one source throttle that source
// (and that source with that client), never the client's correct secret
// from another source; without trusted proxies every caller would share
// the balancer's bucket.
func TestStrangersCannotLockAClientOut(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenFailures = RateLimit{Max: 3, Window: time.Minute}
	cfg.TrustedProxies = []string{"127.0.0.1"}
	h := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil), WithTokens(&fakeTokens{}, "http://x"))
	const form = "application/x-www-form-urlencoded"
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := 0; i < 5; i++ {
		if resp, _ := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=wrong", from("198.51.100.66")...); resp.StatusCode != 401 && resp.StatusCode != 429 {
			t.Fatalf("attacker attempt %d: %d", i, resp.StatusCode)
		}
	}
	if resp, m := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=right", from("198.51.100.66")...); resp.StatusCode != 429 {
		t.Fatalf("the failing source is not throttled: %d %v", resp.StatusCode, m)
	}
	// The gateway, elsewhere, gets its token, again and again.
	for i := 0; i < 5; i++ {
		if resp, m := formPost(t, h, form, "grant_type=client_credentials&client_id=gw&client_secret=right", from("192.0.2.10")...); resp.StatusCode != 200 {
			t.Fatalf("the client's own source was locked out by a stranger: %d %v", resp.StatusCode, m)
		}
	}
	// Throttling is counted by key.
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	raw := string(b)
	if !strings.Contains(raw, `verdict_token_throttled_total{key="source"} `) || strings.Contains(raw, `verdict_token_throttled_total{key="source"} 0`) {
		t.Fatalf("throttling not counted:\n%s", grepLines(raw, "throttled"))
	}

	// Without trusted proxies the header is ignored: the forged address
	// does not escape the peer's bucket.
	cfg.TrustedProxies = nil
	h2 := start(t, cfg, bundles.NewManager(bundles.DefaultConfig(), nil), WithTokens(&fakeTokens{}, "http://x"))
	for i := 0; i < 3; i++ {
		formPost(t, h2, form, "grant_type=client_credentials&client_id=x&client_secret=wrong", from("198.51.100.1")...)
	}
	if resp, _ := formPost(t, h2, form, "grant_type=client_credentials&client_id=y&client_secret=right", from("198.51.100.2")...); resp.StatusCode != 429 {
		t.Fatalf("an untrusted X-Forwarded-For escaped the peer's bucket: %d", resp.StatusCode)
	}
}
