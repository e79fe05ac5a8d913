package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

const policyV1 = `apiVersion: verdict.dev/v1
kind: Policy
name: documents
variables:
  is_owner: has(resource.properties.owner) && resource.properties.owner == subject.id
rules:
  - id: owners-edit
    effect: allow
    actions: ["read", "update"]
    resources: ["document"]
    condition: variables.is_owner
  - id: token-scope
    effect: allow
    actions: ["admin"]
    condition: token != null && token.scope == "admin"
  - id: suspended
    effect: deny
    condition: has(subject.properties.suspended) && subject.properties.suspended == true
`

// a request body for subject id, action name and resource owner
func body(subject, action, owner string) string {
	return fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":%q},"resource":{"type":"document","id":"42","properties":{"owner":%q}}}`, subject, action, owner)
}

type harness struct {
	t    *testing.T
	mgr  *bundles.Manager
	srv  *Server
	url  string
	stop func()
}

func activate(t *testing.T, mgr *bundles.Manager, files map[string]string) *bundles.Active {
	t.Helper()
	fs := map[string][]byte{}
	for k, v := range files {
		fs[k] = []byte(v)
	}
	b, err := bundles.FromFiles(fs, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	a, err := mgr.Prepare(context.Background(), []*bundles.Bundle{b})
	if err != nil {
		t.Fatal(err)
	}
	return mgr.Activate(a)
}

func start(t *testing.T, cfg Config, mgr *bundles.Manager, opts ...Option) *harness {
	t.Helper()
	// Decision routes are open unless a test configures authentication
	// (later options win); auth_test.go covers the closed default.
	srv, err := New(cfg, mgr, nil, append([]Option{WithAuth(nil, true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h := serveOn(t, srv)
	h.mgr = mgr
	return h
}

// serveOn serves srv on a free loopback port until the test ends.
func serveOn(t *testing.T, srv *Server) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	h := &harness{t: t, srv: srv, url: "http://" + ln.Addr().String()}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			srv.Close()
		})
	}
	t.Cleanup(h.stop)
	return h
}

func newHarness(t *testing.T, opts ...Option) *harness {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	return start(t, DefaultConfig(), mgr, opts...)
}

// with returns the harness reporting to t (for subtests).
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

func (h *harness) post(path, ctype, b string, hdr ...string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.do(h.request(http.MethodPost, path, ctype, b, hdr...))
}

// request is a request to the server with body b, Content-Type ctype
// (none when empty) and the header name, value pairs hdr.
func (h *harness) request(method, path, ctype, b string, hdr ...string) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

func (h *harness) get(path string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, map[string]any) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatalf("response is not a JSON object: %q", raw)
	}
	return resp, m
}

func decision(t *testing.T, m map[string]any) (bool, []string) {
	t.Helper()
	d, ok := m["decision"].(bool)
	if !ok {
		t.Fatalf("no decision in %v", m)
	}
	ctx, _ := m["context"].(map[string]any) // AuthZEN answers may have none
	var reasons []string
	rs, _ := ctx["reasons"].([]any)
	for _, r := range rs {
		reasons = append(reasons, r.(string))
	}
	return d, reasons
}

func TestDecide(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name    string
		body    string
		allow   bool
		reasons string
	}{
		{"owner updates", body("alice", "update", "alice"), true, "owners-edit"},
		{"stranger updates", body("bob", "update", "alice"), false, engine.ReasonNoMatch},
		{"suspended owner", `{"subject":{"type":"user","id":"alice","properties":{"suspended":true}},"action":{"name":"update"},"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}}`, false, "suspended"},
		{"caller-sent token is ignored", `{"token":{"scope":"admin"},"subject":{"type":"user","id":"x"},"action":{"name":"admin"},"resource":{"type":"document","id":"1"}}`, false, engine.ReasonNoMatch},
		{"unknown fields are ignored", `{"extra":1,"subject":{"type":"user","id":"alice","x":[]},"action":{"name":"read"},"resource":{"type":"document","id":"1","properties":{"owner":"alice"}},"context":{"ip":"10.0.0.1"}}`, true, "owners-edit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := h.post("/v1/decide", "application/json", tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %v", resp.StatusCode, m)
			}
			allow, reasons := decision(t, m)
			if allow != tc.allow || strings.Join(reasons, ",") != tc.reasons {
				t.Fatalf("got %v %v, want %v %v", allow, reasons, tc.allow, tc.reasons)
			}
			ctx := m["context"].(map[string]any)
			if ctx["revision"] != "v1" || ctx["decision_id"] == "" {
				t.Fatalf("context lacks revision or decision id: %v", ctx)
			}
		})
	}
}

func TestDecisionIDsAreUnique(t *testing.T) {
	h := newHarness(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		_, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
		id := m["context"].(map[string]any)["decision_id"].(string)
		if seen[id] {
			t.Fatalf("decision id %s repeated (cache hits must get fresh ids)", id)
		}
		seen[id] = true
	}
}

func TestBatch(t *testing.T) {
	h := newHarness(t)
	items := `[{"subject":{"type":"user","id":"alice"}},{"subject":{"type":"user","id":"bob"}},{"action":{"name":"read"}},{"resource":{"type":"document","id":"2","properties":{"owner":"bob"}}}]`
	top := `"subject":{"type":"user","id":"alice"},"action":{"name":"update"},"resource":{"type":"document","id":"1","properties":{"owner":"alice"}}`
	cases := []struct {
		semantic string
		want     []bool
	}{
		{"", []bool{true, false, true, false}},
		{"execute_all", []bool{true, false, true, false}},
		{"deny_on_first_deny", []bool{true, false}},
		{"permit_on_first_permit", []bool{true}},
	}
	for _, tc := range cases {
		t.Run(tc.semantic, func(t *testing.T) {
			opts := ""
			if tc.semantic != "" {
				opts = fmt.Sprintf(`,"options":{"evaluations_semantic":%q}`, tc.semantic)
			}
			resp, m := h.post("/v1/decide", "application/json", "{"+top+`,"evaluations":`+items+opts+"}")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %v", resp.StatusCode, m)
			}
			evs := m["evaluations"].([]any)
			if len(evs) != len(tc.want) {
				t.Fatalf("%d results, want %d: %v", len(evs), len(tc.want), evs)
			}
			for i, e := range evs {
				got, _ := decision(t, e.(map[string]any))
				if got != tc.want[i] {
					t.Errorf("item %d: %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
	// An empty evaluations array is a single evaluation.
	_, m := h.post("/v1/decide", "application/json", "{"+top+`,"evaluations":[]}`)
	if d, _ := decision(t, m); !d {
		t.Fatalf("empty evaluations: %v", m)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	deep := strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64)
	cases := []struct {
		name, ctype, body string
		status            int
		code, msg         string
	}{
		{"malformed", "application/json", `{"subject":`, 400, CodeInvalidJSON, "malformed JSON"},
		{"trailing data", "application/json", body("a", "read", "a") + "{}", 400, CodeInvalidJSON, "after the top-level value"},
		{"empty body", "application/json", "", 400, CodeInvalidJSON, "empty"},
		{"not an object", "application/json", `[1]`, 400, CodeInvalidInput, "JSON object"},
		{"missing subject", "application/json", `{"action":{"name":"read"},"resource":{"type":"d","id":"1"}}`, 400, CodeInvalidInput, "subject: is required"},
		{"subject id not a string", "application/json", `{"subject":{"type":"user","id":7},"action":{"name":"read"},"resource":{"type":"d","id":"1"}}`, 400, CodeInvalidInput, "subject.id: must be a string"},
		{"missing action name", "application/json", `{"subject":{"type":"user","id":"a"},"action":{},"resource":{"type":"d","id":"1"}}`, 400, CodeInvalidInput, "action.name: is required"},
		{"properties not object", "application/json", `{"subject":{"type":"user","id":"a","properties":[]},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}`, 400, CodeInvalidInput, "subject.properties: must be an object"},
		{"context not object", "application/json", `{"subject":{"type":"user","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"context":"x"}`, 400, CodeInvalidInput, "context: must be an object"},
		{"explain not bool", "application/json", `{"explain":"yes","subject":{"type":"user","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}`, 400, CodeInvalidInput, "explain"},
		{"evaluations not array", "application/json", `{"evaluations":{}}`, 400, CodeInvalidInput, "evaluations: must be an array"},
		{"item not object", "application/json", `{"evaluations":[1]}`, 400, CodeInvalidInput, "evaluations[0]: must be an object"},
		{"item missing field", "application/json", `{"evaluations":[{"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"}},{"subject":{"type":"u"}}]}`, 400, CodeInvalidInput, "evaluations[1].subject.id"},
		{"bad semantic", "application/json", `{"options":{"evaluations_semantic":"some"},"evaluations":[{}]}`, 400, CodeInvalidInput, "evaluations_semantic"},
		{"too deep", "application/json", `{"subject":{"type":"user","id":"a","properties":` + deep + `},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}`, 400, CodeTooDeep, "deeper than 64"},
		{"wrong content type", "text/plain", body("a", "read", "a"), 415, CodeUnsupportedMedia, "application/json"},
		{"no content type", "", body("a", "read", "a"), 415, CodeUnsupportedMedia, "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := h.with(t).post("/v1/decide", tc.ctype, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, m)
			}
			e, ok := m["error"].(map[string]any)
			if !ok {
				t.Fatalf("no error object: %v", m)
			}
			if e["code"] != tc.code || !strings.Contains(e["message"].(string), tc.msg) {
				t.Fatalf("error %v, want code %s containing %q", e, tc.code, tc.msg)
			}
		})
	}
	// Nesting of exactly 64 levels is accepted.
	ok := `{"subject":{"type":"user","id":"a","properties":` + strings.Repeat(`{"a":`, 61) + "1" + strings.Repeat("}", 61) + `},"action":{"name":"r"},"resource":{"type":"d","id":"1"}}`
	if resp, m := h.post("/v1/decide", "application/json", ok); resp.StatusCode != 200 {
		t.Fatalf("64 levels: status %d %v", resp.StatusCode, m)
	}
	// A batch over the limit.
	many := `{"subject":{"type":"u","id":"a"},"action":{"name":"r"},"resource":{"type":"d","id":"1"},"evaluations":[` + strings.TrimSuffix(strings.Repeat("{},", 1001), ",") + "]}"
	if resp, m := h.post("/v1/decide", "application/json", many); resp.StatusCode != 400 {
		t.Fatalf("1001 items: status %d %v", resp.StatusCode, m)
	}
}

// TestBodyTooLarge announces a body over the limit the way a client does,
// with Content-Length, and reads the answer before sending the rest: the
// server must refuse it with 413 and a JSON error without reading it.
func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"subject\":", 2<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m errorBody
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 || m.Error.Code != CodeTooLarge {
		t.Fatalf("status %d, error %+v", resp.StatusCode, m)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Fatal("a 413 must carry a request id too")
	}
	// A body just under the limit is read and judged on its content.
	small := DefaultConfig()
	small.BodyLimit = 300
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	h2 := start(t, small, mgr)
	if resp, _ := h2.post("/v1/decide", "application/json", body("a", "read", "a")); resp.StatusCode != 200 {
		t.Fatalf("a body under the limit: %d", resp.StatusCode)
	}
	if resp, m := h2.post("/v1/decide", "application/json", body(strings.Repeat("a", 300), "read", "a")); resp.StatusCode != 413 {
		t.Fatalf("a body over a 300-byte limit: %d %v", resp.StatusCode, m)
	}
}

func TestRequestID(t *testing.T) {
	h := newHarness(t)
	resp, _ := h.post("/v1/decide", "application/json", body("a", "read", "a"), "X-Request-ID", "req-123")
	if got := resp.Header.Get("X-Request-ID"); got != "req-123" {
		t.Fatalf("echoed %q", got)
	}
	resp, _ = h.post("/v1/decide", "text/plain", "x")
	if got := resp.Header.Get("X-Request-ID"); len(got) < 16 {
		t.Fatalf("no request id made on an error response: %q", got)
	}
	resp, _ = h.post("/v1/decide", "application/json", body("a", "read", "a"), "X-Request-ID", strings.Repeat("x", 300))
	if got := resp.Header.Get("X-Request-ID"); len(got) > 200 {
		t.Fatalf("an oversized request id was echoed")
	}
}

func TestExplainCanBeDisabled(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	cfg := DefaultConfig()
	cfg.AllowExplain = false
	h := start(t, cfg, mgr)
	resp, m := h.post("/v1/decide", "application/json", strings.Replace(body("alice", "read", "alice"), "{", `{"explain":true,`, 1))
	if resp.StatusCode != 403 || m["error"].(map[string]any)["code"] != CodeExplainDisabled {
		t.Fatalf("explain when disabled: %d %v", resp.StatusCode, m)
	}
	if resp, _ := h.post("/v1/decide", "application/json", body("alice", "read", "alice")); resp.StatusCode != 200 {
		t.Fatalf("a plain decision: %d", resp.StatusCode)
	}
}

// slowBundle activates a policy that loops n×n times, with engine limits
// high enough that only a request deadline or shutdown stops it.
func slowBundle(t *testing.T, n int) *bundles.Manager {
	t.Helper()
	cfg := bundles.DefaultConfig()
	cfg.Engine.Timeout = 5 * time.Second
	cfg.Engine.CostLimit = 1 << 40
	mgr := bundles.NewManager(cfg, nil)
	activate(t, mgr, map[string]string{"s.verdict.yaml": fmt.Sprintf(`apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: slow
    effect: allow
    condition: lists.range(%d).all(i, lists.range(%d).all(j, i + j >= 0))
`, n, n)})
	return mgr
}

// TestRequestTimeoutBoundsABatch: when the request's time is up, the items
// left are denied with verdict:timeout instead of running on.
func TestRequestTimeoutBoundsABatch(t *testing.T) {
	mgr := slowBundle(t, 1000)
	cfg := DefaultConfig()
	cfg.RequestTimeout = time.Millisecond
	h := start(t, cfg, mgr)
	items := strings.TrimSuffix(strings.Repeat(`{},`, 5), ",")
	resp, m := h.post("/v1/decide", "application/json", strings.Replace(body("a", "read", "a"), "{", `{"evaluations":[`+items+`],`, 1))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs := m["evaluations"].([]any)
	if len(evs) != 5 {
		t.Fatalf("%d results", len(evs))
	}
	for i, e := range evs {
		allow, reasons := decision(t, e.(map[string]any))
		if allow || reasons[0] != engine.ReasonTimeout {
			t.Fatalf("item %d: %v %v", i, allow, reasons)
		}
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	h := newHarness(t)
	resp, m := h.get("/nope")
	if resp.StatusCode != 404 || m["error"].(map[string]any)["code"] != CodeNotFound {
		t.Fatalf("404: %d %v", resp.StatusCode, m)
	}
	for _, p := range []string{"/healthz", "/readyz", "/v1/status", "/openapi.json"} {
		req, _ := http.NewRequest(http.MethodHead, h.url+p, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", p, r.StatusCode)
		}
	}
	resp, m = h.get("/v1/decide")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || m["error"].(map[string]any)["code"] != CodeMethodNotAllowed {
		t.Fatalf("405: %d %v %v", resp.StatusCode, resp.Header, m)
	}
}

func TestReadinessAndNoBundle(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	h := start(t, DefaultConfig(), mgr)
	if resp, m := h.get("/healthz"); resp.StatusCode != 200 || m["status"] != "ok" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, m)
	}
	if resp, m := h.get("/readyz"); resp.StatusCode != 503 {
		t.Fatalf("readyz without a bundle: %d %v", resp.StatusCode, m)
	}
	resp, m := h.post("/v1/decide", "application/json", body("alice", "read", "alice"))
	if resp.StatusCode != 200 {
		t.Fatalf("decide without bundle: %d", resp.StatusCode)
	}
	if allow, reasons := decision(t, m); allow || reasons[0] != engine.ReasonNoPolicy {
		t.Fatalf("without a bundle: %v %v", allow, reasons)
	}
	if _, m := h.get("/v1/status"); m["ready"] != false {
		t.Fatalf("status: %v", m)
	}
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	if resp, m := h.get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz with a bundle: %d %v", resp.StatusCode, m)
	}
	_, m = h.get("/v1/status")
	b := m["bundle"].(map[string]any)
	if b["revision"] != "v1" || b["policies"].(map[string]any)["cel"].(float64) != 1 || b["loaded_at"] == "" {
		t.Fatalf("status bundle: %v", b)
	}
}

func TestEngineTroubleIsADenyNotA500(t *testing.T) {
	cfg := bundles.DefaultConfig()
	cfg.Engine.CostLimit = 50
	mgr := bundles.NewManager(cfg, nil)
	activate(t, mgr, map[string]string{"c.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: c
rules:
  - id: heavy
    effect: allow
    actions: ["read"]
    condition: lists.range(500).map(i, i * 2).size() > 0
  - id: broken
    effect: allow
    actions: ["broken"]
    condition: subject.id + 1 == 2
`})
	h := start(t, DefaultConfig(), mgr)
	for action, reason := range map[string]string{"read": engine.ReasonCostLimit, "broken": engine.ReasonError} {
		resp, m := h.post("/v1/decide", "application/json", body("a", action, "a"))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", action, resp.StatusCode)
		}
		allow, reasons := decision(t, m)
		msg, _ := m["context"].(map[string]any)["error"].(string)
		if allow || reasons[0] != reason || msg == "" {
			t.Fatalf("%s: %v", action, m)
		}
		if strings.Contains(msg, "rule") {
			t.Fatalf("%s: the cause names policy internals without explain: %q", action, msg)
		}
		// With explain, the caller asked for the detail.
		_, m = h.post("/v1/decide", "application/json", strings.Replace(body("a", action, "a"), "{", `{"explain":true,`, 1))
		if msg, _ := m["context"].(map[string]any)["error"].(string); !strings.Contains(msg, "rule") {
			t.Fatalf("%s: explain did not give the detailed cause: %q", action, msg)
		}
	}
}

func TestExplain(t *testing.T) {
	h := newHarness(t)
	_, m := h.post("/v1/decide", "application/json", strings.Replace(body("alice", "update", "alice"), "{", `{"explain":true,`, 1))
	ex, ok := m["context"].(map[string]any)["explain"].([]any)
	if !ok || len(ex) == 0 {
		t.Fatalf("no explain: %v", m)
	}
	first := ex[0].(map[string]any)
	if first["rule"] != "owners-edit" || first["matched"] != true {
		t.Fatalf("explain: %v", ex)
	}
}

// TestShutdownDrainsInFlight cancels the server while a slow decision is
// running: the request must still get its answer.
func TestShutdownDrainsInFlight(t *testing.T) {
	mgr := slowBundle(t, 1500)
	h := start(t, DefaultConfig(), mgr)
	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post(h.url+"/v1/decide", "application/json", bytes.NewBufferString(body("a", "read", "a")))
		if err != nil {
			got <- result{err: err}
			return
		}
		resp.Body.Close()
		got <- result{status: resp.StatusCode}
	}()
	time.Sleep(50 * time.Millisecond) // let the request reach the handler
	h.stop()
	r := <-got
	if r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request lost on shutdown: %+v", r)
	}
}

// TestOpenAPIListsEveryRoute keeps the document and the routes in step.
type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func TestReadyzChecksTheStore(t *testing.T) {
	if resp, m := newHarness(t, WithStore(pinger{})).get("/readyz"); resp.StatusCode != 200 || m["checks"].(map[string]any)["store"] != "ok" {
		t.Fatalf("store up: %d %v", resp.StatusCode, m)
	}
	resp, m := newHarness(t, WithStore(pinger{err: fmt.Errorf("down")})).get("/readyz")
	if resp.StatusCode != 503 || m["checks"].(map[string]any)["store"] != "unreachable" {
		t.Fatalf("store down: %d %v", resp.StatusCode, m)
	}
}

type fixedJWKS struct{}

func (fixedJWKS) JWKS() ([]byte, error) {
	return []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA","use":"sig"}]}`), nil
}
func (fixedJWKS) MaxAge() time.Duration { return 5 * time.Minute }

func TestJWKSRoute(t *testing.T) {
	h := newHarness(t, WithJWKS(fixedJWKS{}))
	resp, m := h.get("/.well-known/jwks.json")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=300" || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %v", resp.StatusCode, resp.Header)
	}
	if keys, _ := m["keys"].([]any); len(keys) != 1 {
		t.Fatalf("jwks body: %v", m)
	}
	if resp, _ := newHarness(t).get("/.well-known/jwks.json"); resp.StatusCode != 404 {
		t.Fatalf("without keys: %d", resp.StatusCode)
	}
}

type swappableJWKS struct{ doc atomic.Value }

func (s *swappableJWKS) JWKS() ([]byte, error) { return s.doc.Load().([]byte), nil }
func (s *swappableJWKS) MaxAge() time.Duration { return time.Minute }

// TestJWKSETag: the key set carries an ETag; If-None-Match with it is a
// 304 without a body; once the keys change, the old tag gets the new set.
func TestJWKSETag(t *testing.T) {
	keys := &swappableJWKS{}
	keys.doc.Store([]byte(`{"keys":[{"kid":"k1"}]}`))
	h := newHarness(t, WithJWKS(keys))
	get := func(inm string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/.well-known/jwks.json", nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("")
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || tag == "" || strings.HasPrefix(tag, "W/") || body == "" {
		t.Fatalf("first fetch: %d, ETag %q, body %q", resp.StatusCode, tag, body)
	}
	for _, inm := range []string{tag, `"other", ` + tag, "W/" + tag} {
		if resp, body := get(inm); resp.StatusCode != 304 || body != "" || resp.Header.Get("Cache-Control") != "public, max-age=60" {
			t.Errorf("If-None-Match %s: %d %q %v, want 304 without a body", inm, resp.StatusCode, body, resp.Header)
		}
	}
	if resp, _ := get(`"other"`); resp.StatusCode != 200 {
		t.Errorf("If-None-Match of another tag: %d, want 200", resp.StatusCode)
	}
	keys.doc.Store([]byte(`{"keys":[{"kid":"k1"},{"kid":"k2"}]}`))
	resp, body = get(tag)
	if resp.StatusCode != 200 || !strings.Contains(body, "k2") || resp.Header.Get("ETag") == tag {
		t.Fatalf("after a key was added, the old tag: %d, ETag %q, body %q", resp.StatusCode, resp.Header.Get("ETag"), body)
	}
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	h := newHarness(t, append(signInStack(t, "http://x"), WithJWKS(fixedJWKS{}), WithTokens(&fakeTokens{}, "http://x"))...)
	resp, doc := h.get("/openapi.json")
	if resp.StatusCode != 200 || doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %d %v", resp.StatusCode, doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	for _, r := range h.srv.table() {
		// Fiber's :name is OpenAPI's {name}; a trailing wildcard is {path}.
		p := strings.Replace(regexp.MustCompile(`:(\w+)`).ReplaceAllString(r.path, "{$1}"), "/*", "/{path}", 1)
		item, ok := paths[p].(map[string]any)
		if !ok {
			t.Errorf("route %s %s is not in the OpenAPI document", r.method, r.path)
			continue
		}
		if _, ok := item[strings.ToLower(r.method)]; !ok {
			t.Errorf("route %s %s has no operation in the OpenAPI document", r.method, r.path)
		}
	}
	for p := range paths {
		// Not h.get: /metrics answers text, not JSON.
		resp, err := http.Get(h.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 {
			t.Errorf("documented path %s is not served", p)
		}
	}
}
