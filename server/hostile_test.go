package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/bundles"
)

// exchange writes payload on a fresh connection to h and reads every
// response the server sends until it closes the connection (or 5 s pass,
// which means it left the connection open). It returns the responses with
// their bodies read, and whether the server closed the connection.
func exchange(t *testing.T, h *harness, payload string) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, payload); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return resps, bodies, !(errors.As(err, &ne) && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
}

// TestSmugglingIsRefusedAndTheConnectionClosed is item 1 of issue 9: a
// request whose length two parsers could read differently gets a 400 and
// the connection is closed, so the bytes after it (here a GET /metrics,
// which a path-filtering proxy in front would never have let through) are
// never answered.
func TestSmugglingIsRefusedAndTheConnectionClosed(t *testing.T) {
	h := newHarness(t)
	const smuggled = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct{ name, head, body string }{
		{"CL then TE", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
		{"TE then CL", "POST /v1/decide HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n", "0\r\n\r\n"},
		{"two equal CL", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n", ""},
		{"two differing CL", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 37\r\n", ""},
		{"TE not chunked", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n", "0\r\n\r\n"},
		{"TE list", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"},
		{"TE identity", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n", ""},
		{"TE twice", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
		{"TE lower case", "POST /healthz HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n", "0\r\n\r\n"},
		{"TE in HTTP/1.0", "POST /healthz HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
		{"obsolete folding", "POST /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n", ""},
		{"two Host", "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, h, tt.head+"\r\n"+tt.body+smuggled)
			if len(resps) != 1 {
				t.Fatalf("got %d responses, want exactly 1: %q", len(resps), bodies)
			}
			if resps[0].StatusCode != 400 {
				t.Fatalf("status %d, want 400: %s", resps[0].StatusCode, bodies[0])
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(bodies[0]), &eb); err != nil {
				t.Fatalf("not a JSON error: %q", bodies[0])
			}
			if eb.Error.Code != CodeBadFraming && eb.Error.Code != CodeBadRequest {
				t.Errorf("code %q, want %s (or fasthttp's own bad_request)", eb.Error.Code, CodeBadFraming)
			}
			if !closed {
				t.Fatal("the connection stayed open after an ambiguous request")
			}
		})
	}
	// The same connection handling answers a well-formed pipeline in full:
	// the test would see a smuggled response.
	resps, bodies, _ := exchange(t, h, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"+smuggled+
		"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if len(resps) != 3 || resps[1].StatusCode != 200 || !strings.Contains(bodies[1], "verdict_") {
		t.Fatalf("a clean pipeline of three: %d responses %q", len(resps), bodies)
	}
	// A chunked request alone is fine.
	resps, bodies, _ = exchange(t, h, "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body("a", "read", "a")), body("a", "read", "a")))
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Fatalf("a chunked decide: %d responses %q", len(resps), bodies)
	}
}

// TestUnauthorisedUploadsAreRefusedFromTheHeaders is item 2: the caller of a
// bundle upload is identified from the headers; without a token that may
// push, the answer comes before any of the (declared 60 MiB) body is sent.
func TestUnauthorisedUploadsAreRefusedFromTheHeaders(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	decideOnly := "Bearer " + k.kit.token(t, "gw", ScopeDecide)
	tests := []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"no token", "/v1/bundles", "", 401, CodeUnauthorized},
		{"bad token", "/v1/bundles", "Bearer not-a-token", 401, CodeUnauthorized},
		{"token without the scope", "/v1/bundles", decideOnly, 403, CodeForbidden},
		{"read scope only", "/v1/bundles", k.read, 403, CodeForbidden},
		{"preview without a token on a closed server", "/v1/bundles/preview", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.status == 0 {
				return // below, on a closed server
			}
			code, m := declareBody(t, k.url, tt.path, "application/gzip", tt.auth, 60<<20)
			if code != tt.status || errCode(m) != tt.code {
				t.Fatalf("got %d %v, want %d %s", code, m, tt.status, tt.code)
			}
		})
	}
	// An authorised push of the same size is refused only for its size
	// (64 MiB is the default archive limit, so 60 MiB is read: the server
	// waits for the body, which this test does not send).
	if code, m := declareBody(t, k.url, "/v1/bundles", "application/gzip", k.write, 65<<20); code != 413 || errCode(m) != CodeTooLarge {
		t.Fatalf("an authorised push over the archive limit: %d %v", code, m)
	}
	// A small unauthorised push still gets the same answer, and the
	// connection is closed.
	resps, bodies, closed := exchange(t, k.harness, "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nContent-Length: 1\r\n\r\nx")
	if len(resps) != 1 || resps[0].StatusCode != 401 || !closed {
		t.Fatalf("one-byte unauthenticated push: %d responses %q closed=%v", len(resps), bodies, closed)
	}
	// Expect: 100-continue gets the refusal, never a 100.
	resps, bodies, closed = exchange(t, k.harness, "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nContent-Length: 62914560\r\nExpect: 100-continue\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 401 || !closed {
		t.Fatalf("expect-continue push without a token: %d responses %q closed=%v", len(resps), bodies, closed)
	}
	// Chunked: no length to refuse by, refused all the same.
	resps, bodies, closed = exchange(t, k.harness, "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"+strings.Repeat("x", 1<<16)+"\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 401 || !closed {
		t.Fatalf("chunked push without a token: %d %q closed=%v", len(resps), bodies, closed)
	}
	// Chunked, with a token that may not push: 403, the token still read.
	resps, bodies, closed = exchange(t, k.harness, "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nAuthorization: "+k.read+"\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"+strings.Repeat("x", 1<<16)+"\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 403 || !closed {
		t.Fatalf("chunked push with a read token: %d %q closed=%v", len(resps), bodies, closed)
	}
	// A real authorised push works.
	if code, m := k.push(t, bundleArchive(t, "v2", goodFiles(policyV2)), ""); code != 201 {
		t.Fatalf("authorised push: %d %v", code, m)
	}
	// The refusals are counted.
	_, _, raw, _ := k.call(t, http.MethodGet, "/metrics", "", nil)
	if !strings.Contains(string(raw), `verdict_requests_refused_total{reason="upload"}`) ||
		strings.Contains(string(raw), `verdict_requests_refused_total{reason="upload"} 0`) {
		t.Fatalf("upload refusals are not counted:\n%s", grepLines(string(raw), "refused"))
	}
}

// TestPreviewUploadNeedsATokenOnAClosedServer: previews are opened by
// serve --dev like decisions; on a closed server an upload without a token
// is refused from its headers.
func TestPreviewUploadNeedsATokenOnAClosedServer(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	closed := start(t, DefaultConfig(), k.mgr, WithAuth(k.kit.verifier, false), WithBundleAdmin(k.life))
	if code, m := declareBody(t, closed.url, "/v1/bundles/preview", "application/gzip", "", 60<<20); code != 401 || errCode(m) != CodeUnauthorized {
		t.Fatalf("preview upload without a token: %d %v", code, m)
	}
	// On the open (dev) server the same preview is read (and judged on
	// its content type).
	resps, bodies, _ := exchange(t, k.harness, "POST /v1/bundles/preview HTTP/1.1\r\nHost: x\r\nContent-Type: application/gzip\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")
	if len(resps) != 1 || resps[0].StatusCode != 415 {
		t.Fatalf("preview on an open server: %q", bodies)
	}
}

// TestDuplicateAuthorizationIsRefused is item 6: two Authorization headers
// (a valid one first) never decide.
func TestDuplicateAuthorizationIsRefused(t *testing.T) {
	kit := newAuthKit(t)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, false), WithTokens(&fakeTokens{}, "http://x"))
	good := "Bearer " + kit.token(t, "gw", ScopeDecide)
	b := body("alice", "read", "alice")
	for _, path := range []string{"/v1/decide", "/oauth2/token", "/v1/forward-auth", "/healthz"} {
		payload := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: %s\r\nAuthorization: junk\r\nContent-Length: %d\r\n\r\n%s", path, good, len(b), b)
		resps, bodies, _ := exchange(t, h, payload)
		if len(resps) != 1 || resps[0].StatusCode != 400 || !strings.Contains(bodies[0], CodeDuplicateHeader) {
			t.Fatalf("%s with two Authorization headers: %q", path, bodies)
		}
	}
	// One header decides.
	if resp, m := h.post("/v1/decide", "application/json", b, "Authorization", good); resp.StatusCode != 200 {
		t.Fatalf("one Authorization header: %d %v", resp.StatusCode, m)
	}
}

// TestSafetyHeaders is item 7: nosniff, Referrer-Policy: no-referrer and a
// Content-Security-Policy that lets nothing load or frame on every response
// (every route group; HSTS only over TLS, TestTLS), no-store on every
// answer that carries a decision, a token or an error, the JWKS still
// cacheable.
func TestSafetyHeaders(t *testing.T) {
	h := newHarness(t, WithTokens(&fakeTokens{}, "http://x"), WithJWKS(fixedJWKS{}))
	check := func(what string, resp *http.Response, cacheControl string) {
		t.Helper()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", what, got)
		}
		if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", what, got)
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", what, got)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: Strict-Transport-Security %q over plain HTTP", what, got)
		}
		if cacheControl == "" {
			return
		}
		if got := resp.Header.Get("Cache-Control"); got != cacheControl {
			t.Errorf("%s: Cache-Control %q, want %q", what, got, cacheControl)
		}
	}
	resp, _ := h.post("/v1/decide", "application/json", body("a", "read", "a"))
	check("decide", resp, "no-store")
	resp, _ = h.post("/access/v1/evaluation", "application/json", body("a", "read", "a"))
	check("AuthZEN evaluation", resp, "no-store")
	resp, _ = h.post("/v1/decide", "application/json", `{`)
	check("400", resp, "no-store")
	resp, _ = h.get("/nope")
	check("404", resp, "no-store")
	resp, _ = formPost(t, h, "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=gw&client_secret=right")
	check("token", resp, "no-store")
	resp, _ = h.get("/.well-known/jwks.json")
	check("JWKS", resp, "public, max-age=300")
	resp, _ = h.get("/healthz")
	check("healthz", resp, "no-store")
	// Every other route group: metrics, OpenAPI, OAuth metadata, AuthZEN
	// metadata and search, bundles and admin (refused or not).
	for _, path := range []string{"/metrics", "/openapi.json", "/.well-known/oauth-authorization-server",
		"/.well-known/authzen-configuration", "/v1/bundles", "/v1/admin/clients", "/v1/status", "/readyz"} {
		req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		check(path, resp, "")
	}
	resp, _ = h.post("/access/v1/search/action", "application/json", `{"subject":{"type":"user","id":"a"},"resource":{"type":"document","id":"1"}}`)
	check("AuthZEN search", resp, "")
	// An answer fasthttp gives before any handler runs (a body over the
	// limit) has them too.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 2<<20)
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("413", resp, "no-store")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStrictJSONOnEveryRoute is item 5: every route that reads JSON refuses
// a duplicate member, invalid UTF-8 and a number no float64 holds with a 400
// that says what and where, and decides nothing.
func TestStrictJSONOnEveryRoute(t *testing.T) {
	h := newHarness(t)
	dup := `{"subject":{"type":"user","id":"ed","id":"root"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`
	badUTF8 := "{\"subject\":{\"type\":\"user\",\"id\":\"e\xffd\"},\"action\":{\"name\":\"read\"},\"resource\":{\"type\":\"document\",\"id\":\"1\"}}"
	surrogate := `{"subject":{"type":"user","id":"e\ud800d"},"action":{"name":"read"},"resource":{"type":"document","id":"1"}}`
	huge := `{"subject":{"type":"user","id":"ed"},"action":{"name":"read"},"resource":{"type":"document","id":"1"},"context":{"n":1e400}}`
	cases := []struct{ name, body, want string }{
		{"duplicate member", dup, `duplicate member "id" (at %s/subject`},
		{"invalid UTF-8", badUTF8, "UTF-8 (at %s/subject/id, byte"},
		{"lone surrogate", surrogate, "%s/subject/id"},
		{"out of range", huge, "1e400 is out of the range of a 64-bit float (at %s/context/n"},
	}
	routes := []struct{ path, wrap, at string }{
		{"/v1/decide", "%s", ""},
		{"/access/v1/evaluation", "%s", ""},
		{"/access/v1/evaluations", `{"evaluations":[%s]}`, "/evaluations/0"},
		{"/access/v1/search/resource", "%s", ""},
		{"/v1/bundles/preview", `{"bundle":"","inputs":[%s]}`, "/inputs/0"},
	}
	for _, r := range routes {
		for _, c := range cases {
			t.Run(r.path+" "+c.name, func(t *testing.T) {
				resp, m := h.post(r.path, "application/json", fmt.Sprintf(r.wrap, c.body))
				if resp.StatusCode != 400 && resp.StatusCode != 404 {
					t.Fatalf("status %d: %v", resp.StatusCode, m)
				}
				if resp.StatusCode == 404 { // a route this harness does not serve
					t.Skipf("%s is not served here", r.path)
				}
				msg := fmt.Sprint(m["error"])
				if want := fmt.Sprintf(c.want, r.at); errCode(m) != CodeInvalidJSON || !strings.Contains(msg, want) {
					t.Fatalf("got %v, want invalid_json naming %q", m, want)
				}
			})
		}
	}
	// A legitimate document with the same members once decides.
	if resp, m := h.post("/v1/decide", "application/json", strings.Replace(dup, `,"id":"root"`, "", 1)); resp.StatusCode != 200 {
		t.Fatalf("the valid document: %d %v", resp.StatusCode, m)
	}
}

// TestAdminJSONIsStrict: the admin routes read JSON through the same
// decoder.
func TestAdminJSONIsStrict(t *testing.T) {
	kit := newAuthKit(t)
	pepper, _ := oauth.NewPepper()
	reg, err := oauth.NewClients(&memClients{m: map[string]oauth.Client{}}, pepper, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil), WithAuth(kit.verifier, false), WithClientAdmin(reg))
	code, m := adminReq(t, h, "POST", "/v1/admin/clients", kit.token(t, "ops", ScopeAdmin), `{"id":"gw","id":"admin","scopes":["verdict:decide"]}`)
	if code != 400 || errCode(m) != CodeInvalidJSON || !strings.Contains(fmt.Sprint(m), `duplicate member "id"`) {
		t.Fatalf("admin client with a duplicate id: %d %v", code, m)
	}
	if list, _ := reg.List(context.Background()); len(list) != 0 {
		t.Fatalf("a refused request created clients: %v", list)
	}
}
