package grpcapi_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/server"
)

// forwardPolicy allows exactly the inputs forward-auth must build, so that
// a field either transport gets wrong turns an expected allow into a deny
// (server's forward-auth tests decide with the same file).
var forwardPolicy = func() string {
	b, err := os.ReadFile("../forward/testdata/gateway.verdict.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func forwardHarness(t *testing.T, mutate func(*forward.Config)) *harness {
	t.Helper()
	fc := forward.DefaultConfig()
	fc.Routes = []forward.Route{{Path: "/health", Methods: []string{"GET"}}, {Path: "/todos/{id}", Methods: []string{"GET", "DELETE", "PATCH"}}}
	if mutate != nil {
		mutate(&fc)
	}
	return start(t, harnessOpts{forward: fc, files: map[string]string{"fa.verdict.yaml": forwardPolicy, ".manifest": `{"revision":"fa1"}`}})
}

// envoyCase is one original request, sent as Envoy sends it over either
// transport.
type envoyCase struct {
	name, method, path, host string
	headers                  map[string]string
}

// checkRequest is the CheckRequest Envoy sends for c: for HTTP/1.1 the
// request's headers lower-cased plus the pseudo-headers Envoy keeps
// (:authority, :method, :path), x-request-id and x-forwarded-proto; for
// HTTP/2 the same with :scheme. rawHeaders sends them as header_map
// (encode_raw_headers: true) instead of the headers map; body adds the
// request body (with_request_body).
func checkRequest(c envoyCase, protocol string, rawHeaders bool, body string) *authv3.CheckRequest {
	hs := map[string]string{":authority": c.host, ":method": c.method, ":path": c.path,
		"x-request-id": "4b4fd2a6-0f0d-4fb1-9a5b-06cde8b0b8f7", "x-forwarded-proto": "https"}
	if protocol == "HTTP/2" {
		hs[":scheme"] = "https"
	}
	for k, v := range c.headers {
		hs[strings.ToLower(k)] = v
	}
	httpReq := &authv3.AttributeContext_HttpRequest{
		Id: "12345678901234567890", Method: c.method, Path: c.path, Host: c.host, Scheme: "https", Protocol: protocol,
	}
	if rawHeaders {
		hm := &corev3.HeaderMap{}
		for k, v := range hs {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		httpReq.HeaderMap = hm
	} else {
		httpReq.Headers = hs
	}
	if body != "" {
		httpReq.Body = body
		httpReq.Size = int64(len(body))
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}}}}},
		Request: &authv3.AttributeContext_Request{Http: httpReq},
	}}
}

// outcome is what a gateway does with an answer: the status it sends (200:
// pass upstream), the headers it adds upstream (allow) or sends to the
// client (deny), and the error code of a denial's body.
type outcome struct {
	status  int
	subject string
	code    string
	www     bool
}

func (h *harness) viaHTTP(c envoyCase) outcome {
	hdr := map[string]string{"Host": c.host, "X-Forwarded-Proto": "https"}
	for k, v := range c.headers {
		hdr[k] = v
	}
	status, rh, body := h.httpDo(c.method, forward.Path+"/envoy"+c.path, "", hdr)
	o := outcome{status: status, subject: rh.Get("X-Verdict-Subject"), www: rh.Get("WWW-Authenticate") != ""}
	if status != 200 {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			h.t.Fatalf("%s: HTTP body %q: %v", c.name, body, err)
		}
		o.code = e.Error.Code
	}
	return o
}

func (h *harness) viaGRPC(ctx context.Context, req *authv3.CheckRequest) (outcome, *authv3.CheckResponse) {
	h.t.Helper()
	resp, err := authv3.NewAuthorizationClient(h.conn).Check(ctx, req)
	if err != nil {
		h.t.Fatalf("Check: %v", err)
	}
	return envoyReads(h.t, resp), resp
}

// envoyReads reads a CheckResponse as Envoy does: status.code OK is an
// allow whose ok_response headers go upstream; anything else is a denial
// sent to the client with denied_response's status (403 when unset),
// headers and body. It checks that the two agree.
func envoyReads(t *testing.T, resp *authv3.CheckResponse) outcome {
	t.Helper()
	var o outcome
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		if resp.GetDeniedResponse() != nil {
			t.Fatalf("OK status with a denied response: %v", resp)
		}
		o.status = 200
		for _, hv := range resp.GetOkResponse().GetHeaders() {
			if hv.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("allow header %s appends: a client could smuggle its own value upstream", hv.GetHeader().GetKey())
			}
			if hv.GetHeader().GetKey() == "x-verdict-subject" {
				o.subject = hv.GetHeader().GetValue()
			}
		}
		if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() == "" {
			t.Errorf("allow without a decision id in dynamic metadata: %v", resp.GetDynamicMetadata())
		}
		return o
	}
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus() == nil {
		t.Fatalf("denial without a denied response status: %v", resp)
	}
	o.status = int(d.GetStatus().GetCode())
	ctype := ""
	for _, hv := range d.GetHeaders() {
		switch hv.GetHeader().GetKey() {
		case "www-authenticate":
			o.www = true
		case "content-type":
			ctype = hv.GetHeader().GetValue()
		}
	}
	if ctype != "application/json" {
		t.Errorf("denial content-type %q", ctype)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("denial body %q: %v", d.GetBody(), err)
	}
	o.code = e.Error.Code
	return o
}

// TestCheckDecidesLikeForwardAuth sends each original request to
// /v1/forward-auth (Envoy's HTTP service) and, in each shape Envoy's gRPC
// client sends it, to Check, and wants the same outcome from all.
func TestCheckDecidesLikeForwardAuth(t *testing.T) {
	h := forwardHarness(t, nil)
	alice := "Bearer " + h.token("alice")
	bob := "Bearer " + h.token("bob")
	ua := map[string]string{"User-Agent": "ua/1"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"User-Agent": "ua/1"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		c    envoyCase
		want outcome
	}{
		{envoyCase{"member reads a todo", "GET", "/todos/42", "api.test", with("Authorization", alice)}, outcome{status: 200, subject: "alice"}},
		{envoyCase{"query string is not the path", "GET", "/todos/42?x=1&y=%2F", "api.test", with("Authorization", alice)}, outcome{status: 200, subject: "alice"}},
		{envoyCase{"another user", "GET", "/todos/42", "api.test", with("Authorization", bob)}, outcome{status: 403, code: "access_denied"}},
		{envoyCase{"another host", "GET", "/todos/42", "evil.test", with("Authorization", alice)}, outcome{status: 403, code: "access_denied"}},
		{envoyCase{"method not allowed by the policy", "DELETE", "/todos/42", "api.test", with("Authorization", alice)}, outcome{status: 403, code: "access_denied"}},
		{envoyCase{"anonymous health", "GET", "/health", "api.test", ua}, outcome{status: 200, subject: ""}},
		{envoyCase{"anonymous todo", "GET", "/todos/42", "api.test", ua}, outcome{status: 401, code: "unauthorized", www: true}},
		{envoyCase{"invalid token", "GET", "/health", "api.test", with("Authorization", "Bearer not.a.jwt")}, outcome{status: 401, code: "unauthorized", www: true}},
		{envoyCase{"basic auth is anonymous", "GET", "/health", "api.test", with("Authorization", "Basic YTpi")}, outcome{status: 200}},
		{envoyCase{"unmatched path is evaluated", "POST", "/open/unmatched", "api.test", ua}, outcome{status: 200}},
		{envoyCase{"escaped slash stays in its segment", "GET", "/todos/4%2F2", "api.test", with("Authorization", alice)}, outcome{status: 403, code: "access_denied"}},
		{envoyCase{"a failing rule is a deny", "PATCH", "/todos/42", "api.test", with("Authorization", alice)}, outcome{status: 403, code: "access_denied"}},
		{envoyCase{"wrong user agent", "GET", "/todos/42", "api.test", map[string]string{"User-Agent": "curl", "Authorization": alice}}, outcome{status: 403, code: "access_denied"}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.c.name, func(t *testing.T) {
			if got := h.viaHTTP(tc.c); got != tc.want {
				t.Errorf("HTTP forward-auth: %+v, want %+v", got, tc.want)
			}
			for _, shape := range []struct {
				name, protocol string
				raw            bool
				body           string
			}{{"HTTP/1.1", "HTTP/1.1", false, ""}, {"HTTP/2", "HTTP/2", false, ""}, {"HTTP/1.1 header_map", "HTTP/1.1", true, ""},
				{"HTTP/2 with body", "HTTP/2", false, `{"title":"x"}`}} {
				got, _ := h.viaGRPC(ctx, checkRequest(tc.c, shape.protocol, shape.raw, shape.body))
				if got != tc.want {
					t.Errorf("gRPC Check (%s): %+v, want %+v", shape.name, got, tc.want)
				}
			}
		})
	}
}

// TestCheckRefusals covers what only a gRPC Check can send, and the
// gateway gate.
func TestCheckRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("malformed original requests are 400 no_original_request", func(t *testing.T) {
		h := forwardHarness(t, nil)
		for name, c := range map[string]envoyCase{
			"no path":         {"", "GET", "", "api.test", nil},
			"relative path":   {"", "GET", "todos/42", "api.test", nil},
			"absolute URL":    {"", "GET", "https://api.test/todos/42", "api.test", nil},
			"not a method":    {"", "GE T", "/todos/42", "api.test", nil},
			"CONNECT no path": {"", "CONNECT", "", "api.test:443", nil},
		} {
			got, _ := h.viaGRPC(ctx, checkRequest(c, "HTTP/1.1", false, ""))
			if got.status != 400 || got.code != "no_original_request" {
				t.Errorf("%s: %+v", name, got)
			}
		}
		got, _ := h.viaGRPC(ctx, &authv3.CheckRequest{})
		if got.status != 400 {
			t.Errorf("an empty CheckRequest: %+v", got)
		}
	})
	t.Run("dot segments never match a route", func(t *testing.T) {
		// Over HTTP, fasthttp removes them before forward-auth sees the
		// path; Envoy sends the path as the client wrote it unless its
		// normalize_path is on (docs/gateways.md says to turn it on). An
		// unclean path matches no route: evaluated with resource.id "".
		h := forwardHarness(t, nil)
		got, _ := h.viaGRPC(ctx, checkRequest(envoyCase{"", "GET", "/todos/../health", "api.test", map[string]string{"user-agent": "ua/1"}}, "HTTP/1.1", false, ""))
		if got.status != 401 || got.code != "unauthorized" {
			t.Errorf("%+v", got)
		}
	})
	t.Run("host from :authority when Host is empty", func(t *testing.T) {
		h := forwardHarness(t, nil)
		req := checkRequest(envoyCase{"", "GET", "/todos/42", "api.test", map[string]string{"user-agent": "ua/1", "authorization": "Bearer " + h.token("alice")}}, "HTTP/2", false, "")
		req.Attributes.Request.Http.Host = ""
		if got, _ := h.viaGRPC(ctx, req); got.status != 200 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("untrusted gateway", func(t *testing.T) {
		h := forwardHarness(t, func(c *forward.Config) { c.TrustedProxies = []string{"10.0.0.0/8"} })
		got, _ := h.viaGRPC(ctx, checkRequest(envoyCase{"", "GET", "/health", "api.test", nil}, "HTTP/1.1", false, ""))
		if got.status != 403 || got.code != "untrusted_proxy" {
			t.Errorf("%+v", got)
		}
	})
	t.Run("shared secret in metadata", func(t *testing.T) {
		h := forwardHarness(t, func(c *forward.Config) { c.SharedSecret = "s3cret" })
		req := checkRequest(envoyCase{"", "GET", "/health", "api.test", nil}, "HTTP/1.1", false, "")
		if got, _ := h.viaGRPC(ctx, req); got.status != 403 || got.code != "untrusted_proxy" {
			t.Errorf("without the secret: %+v", got)
		}
		wrong := metadata.AppendToOutgoingContext(ctx, "x-verdict-proxy-secret", "nope")
		if got, _ := h.viaGRPC(wrong, req); got.status != 403 {
			t.Errorf("a wrong secret: %+v", got)
		}
		right := metadata.AppendToOutgoingContext(ctx, "x-verdict-proxy-secret", "s3cret")
		if got, _ := h.viaGRPC(right, req); got.status != 200 {
			t.Errorf("the secret: %+v", got)
		}
	})
	t.Run("no bundle is a deny", func(t *testing.T) {
		h := start(t, harnessOpts{})
		got, _ := h.viaGRPC(ctx, checkRequest(envoyCase{"", "GET", "/health", "api.test", nil}, "HTTP/1.1", false, ""))
		if got.status != 401 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("configured response headers", func(t *testing.T) {
		h := forwardHarness(t, func(c *forward.Config) {
			c.ResponseHeaders = map[string]string{"X-User": "subject.id", "X-Route": "route", "X-Rev": "revision", "X-Client": "token.client_id"}
		})
		req := checkRequest(envoyCase{"", "GET", "/todos/42", "api.test", map[string]string{"user-agent": "ua/1", "authorization": "Bearer " + h.token("alice")}}, "HTTP/1.1", false, "")
		_, resp := h.viaGRPC(ctx, req)
		got := map[string]string{}
		for _, hv := range resp.GetOkResponse().GetHeaders() {
			got[hv.GetHeader().GetKey()] = hv.GetHeader().GetValue()
		}
		want := map[string]string{"x-user": "alice", "x-route": "/todos/{id}", "x-rev": "fa1", "x-client": "alice"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("headers %v, want %v", got, want)
		}
	})
}

// TestCheckShedAndHeaderCase: a call over server.max_in_flight is refused
// at once (health never), and header names that are not lower-case (a
// client that is not Envoy) are read as Envoy's.
func TestCheckShedAndHeaderCase(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxInFlight = 1
	fc := forward.DefaultConfig()
	fc.Routes = []forward.Route{{Path: "/health", Methods: []string{"GET"}}, {Path: "/todos/{id}", Methods: []string{"GET"}}}
	h := start(t, harnessOpts{cfg: cfg, forward: fc, files: map[string]string{"fa.verdict.yaml": forwardPolicy}})
	ctx := context.Background()
	req := checkRequest(envoyCase{"", "GET", "/todos/42", "api.test", nil}, "HTTP/1.1", false, "")
	req.Attributes.Request.Http.Headers = map[string]string{"User-Agent": "ua/1", "Authorization": "Bearer " + h.token("alice")}
	if got, _ := h.viaGRPC(ctx, req); got.status != 200 || got.subject != "alice" {
		t.Fatalf("mixed-case header names: %+v", got)
	}

	done, ok := h.srv.Admit() // the one slot, taken
	if !ok {
		t.Fatal("no slot")
	}
	_, err := authv3.NewAuthorizationClient(h.conn).Check(ctx, req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "overloaded") {
		t.Errorf("over max_in_flight: %v", err)
	}
	if r, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health while full: %v %v", r, err)
	}
	done()
	if got, _ := h.viaGRPC(ctx, req); got.status != 200 {
		t.Errorf("after the slot was freed: %+v", got)
	}
}
