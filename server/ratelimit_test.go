package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
)

// limitHarness serves the test policy with caller tokens required, the
// given limits, and 127.0.0.1 as a trusted proxy (so that X-Forwarded-For
// names the client address).
func limitHarness(t *testing.T, kit *authKit, tweak func(*Config), opts ...Option) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	tweak(&cfg)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	return start(t, cfg, mgr, append([]Option{WithAuth(kit.verifier, false), WithTokens(&fakeTokens{}, "http://x")}, opts...)...)
}

// send posts body to path as the caller with token tok (none if "") from
// address ip, and returns the status, Retry-After and error code.
func (h *harness) send(path, tok, ip, body string) (int, string, string) {
	h.t.Helper()
	hdr := []string{"X-Forwarded-For", ip}
	if tok != "" {
		hdr = append(hdr, "Authorization", "Bearer "+tok)
	}
	resp, m := h.post(path, "application/json", body, hdr...)
	code := ""
	if e, ok := m["error"].(map[string]any); ok {
		code, _ = e["code"].(string)
	} else if e, ok := m["error"].(string); ok {
		code = e
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), code
}

// TestRateLimitPerClientAndPerAddress: on the decision route, a client
// over its rate gets 429 rate_limited with Retry-After while another client
// from the same address goes on; an address over its rate is refused
// whoever calls from it, before its token is even looked at; the refusals
// are counted by group and kind.
func TestRateLimitPerClientAndPerAddress(t *testing.T) {
	kit := newAuthKit(t)
	h := limitHarness(t, kit, func(c *Config) {
		c.RateLimits.Decide = Limit{PerClient: 3, PerIP: 5, Window: time.Hour}
	})
	alice, bob := kit.token(t, "alice", ScopeDecide), kit.token(t, "bob", ScopeDecide)
	req := body("alice", "read", "doc-1")
	for i := range 3 {
		if code, _, _ := h.send("/v1/decide", alice, "10.0.0.1", req); code != http.StatusOK {
			t.Fatalf("alice request %d: %d", i+1, code)
		}
	}
	code, retry, errCode := h.send("/v1/decide", alice, "10.0.0.1", req)
	if code != http.StatusTooManyRequests || errCode != CodeRateLimited {
		t.Fatalf("alice over her rate: %d %s", code, errCode)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Errorf("Retry-After %q", retry)
	}
	// Bob, same address: his own budget; the address has 1 left of 5
	// (alice's refused request was counted against it too).
	if code, _, _ := h.send("/v1/decide", bob, "10.0.0.1", req); code != http.StatusOK {
		t.Fatalf("bob from alice's address while alice is limited: %d", code)
	}
	if code, _, errCode := h.send("/v1/decide", bob, "10.0.0.1", req); code != http.StatusTooManyRequests || errCode != CodeRateLimited {
		t.Fatalf("the address over its rate: %d %s", code, errCode)
	}
	// The address limit runs before authentication: no token, still 429.
	if code, _, _ := h.send("/v1/decide", "", "10.0.0.1", req); code != http.StatusTooManyRequests {
		t.Fatalf("no token from a limited address: %d", code)
	}
	// Bob from elsewhere is fine; alice from elsewhere is still over hers.
	if code, _, _ := h.send("/v1/decide", bob, "10.0.0.2", req); code != http.StatusOK {
		t.Fatalf("bob from another address: %d", code)
	}
	if code, _, _ := h.send("/v1/decide", alice, "10.0.0.3", req); code != http.StatusTooManyRequests {
		t.Fatalf("alice from another address: %d", code)
	}
	// Another group is not affected.
	if code, _, _ := h.send("/access/v1/evaluation", alice, "10.0.0.1", req); code != http.StatusOK {
		t.Fatalf("AuthZEN for alice while decide is limited: %d", code)
	}
	metrics := h.scrape(t).raw
	for _, want := range []string{`verdict_rate_limited_total{by="client",group="decide"} 2`, `verdict_rate_limited_total{by="ip",group="decide"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestRateLimitEveryGroup: each public route group has its limit, keyed as
// documented, and answers in its own error shape (OAuth routes as OAuth
// errors).
func TestRateLimitEveryGroup(t *testing.T) {
	kit := newAuthKit(t)
	one := Limit{PerIP: 1, Window: time.Hour}
	h := limitHarness(t, kit, func(c *Config) {
		c.RateLimits = RateLimits{Decide: one, AuthZEN: one, ForwardAuth: one, Token: one, Introspect: one, Revoke: one, Bundles: one, Admin: one}
	})
	for _, tc := range []struct {
		method, path, ctype string
		code                string
	}{
		{http.MethodPost, "/v1/decide", "application/json", CodeRateLimited},
		{http.MethodPost, "/access/v1/evaluations", "application/json", CodeRateLimited},
		{http.MethodGet, "/v1/forward-auth/x", "", CodeRateLimited},
		{http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", oauthTooManyRequests},
		{http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", oauthTooManyRequests},
		{http.MethodPost, "/oauth2/revoke", "application/x-www-form-urlencoded", oauthTooManyRequests},
		{http.MethodGet, "/v1/bundles", "", CodeRateLimited},
		{http.MethodGet, "/v1/admin/clients", "", CodeRateLimited},
	} {
		ip := "10.1.0." + strconv.Itoa(len(tc.path))
		first := h.request(tc.method, tc.path, tc.ctype, "", "X-Forwarded-For", ip)
		resp, _ := h.do(first)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("%s: the first request was limited", tc.path)
		}
		second := h.request(tc.method, tc.path, tc.ctype, "", "X-Forwarded-For", ip)
		resp, m := h.do(second)
		got := ""
		if e, ok := m["error"].(map[string]any); ok {
			got, _ = e["code"].(string)
		} else {
			got, _ = m["error"].(string)
		}
		if resp.StatusCode != http.StatusTooManyRequests || got != tc.code || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s second request: %d %q Retry-After %q, want 429 %s", tc.method, tc.path, resp.StatusCode, got, resp.Header.Get("Retry-After"), tc.code)
		}
	}
}

// failingLimiter is a shared counter that cannot be reached.
type failingLimiter struct{ calls int }

func (f *failingLimiter) Allow(context.Context, string, int, time.Duration) (bool, time.Duration, error) {
	f.calls++
	return false, 0, errors.New("connection refused")
}

// TestRateLimitSharedCounterDown: when the shared counter fails, limits
// are counted on the replica (never all requests refused, never none
// limited) and the failures are counted.
func TestRateLimitSharedCounterDown(t *testing.T) {
	kit := newAuthKit(t)
	shared := &failingLimiter{}
	h := limitHarness(t, kit, func(c *Config) {
		c.RateLimits.Decide = Limit{PerClient: 2, Window: time.Hour}
	}, WithRateLimiter(shared))
	alice := kit.token(t, "alice", ScopeDecide)
	var codes []int
	for range 3 {
		code, _, _ := h.send("/v1/decide", alice, "10.0.0.1", body("alice", "read", "doc-1"))
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("statuses %v, want 200 200 429 (counted on the replica)", codes)
	}
	if shared.calls != 3 || !strings.Contains(h.scrape(t).raw, "verdict_rate_limit_store_errors_total 3") {
		t.Errorf("shared limiter asked %d times; metrics:\n%s", shared.calls, grepLines(h.scrape(t).raw, "rate_limit"))
	}
}

// TestLoadShedding: once server.max_in_flight requests are being answered,
// the next is refused at once with 503 overloaded and Retry-After, and
// counted; the probes and /metrics still answer; when the load drops the
// server answers again.
func TestLoadShedding(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxInFlight = 4
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	h := start(t, cfg, mgr)
	// Four requests being answered (held here, not by the clock).
	h.srv.lim.inFlight.Add(4)
	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "doc-1"))
	if e, _ := m["error"].(map[string]any); resp.StatusCode != http.StatusServiceUnavailable || e["code"] != CodeOverloaded || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("over max_in_flight: %d %v Retry-After %q", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s while shedding: %d", path, resp.StatusCode)
		}
	}
	metrics := h.scrape(t).raw
	if !strings.Contains(metrics, "verdict_requests_shed_total 1") || !strings.Contains(metrics, "verdict_requests_in_flight 5") {
		t.Errorf("metrics:\n%s", grepLines(metrics, "verdict_requests_"))
	}
	h.srv.lim.inFlight.Add(-4)
	if resp, _ := h.post("/v1/decide", "application/json", body("alice", "read", "doc-1")); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the load dropped: %d", resp.StatusCode)
	}
}

// TestLocalLimiterIsATokenBucket: max at once, then one per window/max;
// keys apart.
func TestLocalLimiterIsATokenBucket(t *testing.T) {
	l := newLocalLimiter()
	ctx := context.Background()
	for i := range 3 {
		if ok, _, _ := l.Allow(ctx, "a", 3, 30*time.Millisecond); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, after, _ := l.Allow(ctx, "a", 3, 30*time.Millisecond)
	if ok || after <= 0 || after > 10*time.Millisecond {
		t.Fatalf("4th: ok=%v retry after %v, want a refusal for at most window/max", ok, after)
	}
	if ok, _, _ := l.Allow(ctx, "b", 3, 30*time.Millisecond); !ok {
		t.Fatal("another key shares the bucket")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, _ := l.Allow(ctx, "c", 10, time.Hour); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 10 {
		t.Fatalf("50 concurrent requests against 10 an hour: %d allowed", allowed)
	}
}

func TestRateLimitConfigIsValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RateLimits.Token = Limit{PerClient: 5}
	cfg.RateLimits.Admin = Limit{PerIP: -1, Window: time.Second}
	cfg.MaxInFlight = -1
	err := cfg.Validate()
	for _, want := range []string{"rate_limits.token.window must be positive", "rate_limits.admin: per_client and per_ip must not be negative", "max_in_flight must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
}
