package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/internal/redistest"
)

// These tests put real gateways, started on free ports, in front of a small
// upstream, with Verdict's /v1/forward-auth deciding with the
// policies/gateway-example bundle and its verdict.yaml: what the gateway
// lets through reaches the upstream, what Verdict denies never does.

const gatewayExample = "../policies/gateway-example"

// upstream is the protected service: it counts the requests that reach it
// and remembers the X-Verdict-Subject the gateway passed.
type upstream struct {
	url      string
	mu       sync.Mutex
	hits     int
	subjects []string
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.subjects = append(u.subjects, r.Header.Get("X-Verdict-Subject"))
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream %s %s", r.Method, r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	u.url = ln.Addr().String()
	return u
}

func (u *upstream) seen() (int, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	last := ""
	if len(u.subjects) > 0 {
		last = u.subjects[len(u.subjects)-1]
	}
	return u.hits, last
}

// gatewayVerdict serves the gateway example with the forward_auth section of
// its verdict.yaml, verifying end-user tokens with kit.
func gatewayVerdict(t *testing.T) (*harness, *authKit) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(gatewayExample, "verdict.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		ForwardAuth forward.Config `yaml:"forward_auth"`
	}
	file.ForwardAuth = forward.DefaultConfig()
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	fa, err := forward.New(file.ForwardAuth)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.Load(gatewayExample, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	a, err := mgr.Prepare(context.Background(), []*bundles.Bundle{b})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Activate(a)
	kit := newAuthKit(t)
	return start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, false), WithForwardAuth(fa)), kit
}

// needBinary returns the path of a gateway binary, skipping the test when it
// is missing, or failing it under VERDICT_REQUIRE_INTEGRATION=1.
func needBinary(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range append([]string{name}, candidates...) {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv(redistest.RequireEnv) == "1" {
		t.Fatalf("%s is not installed and %s=1 requires the gateway tests (apt-get install %s)", name, redistest.RequireEnv, name)
	}
	t.Skipf("%s is not installed: skipping the %s gateway test (apt-get install %s; %s=1 makes this a failure)", name, name, name, redistest.RequireEnv)
	return ""
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runGateway starts cmd in its own process group, with its output in
// dir/gateway.out, kills the group (master and workers) when the test ends
// and waits until addr accepts connections.
func runGateway(t *testing.T, cmd *exec.Cmd, dir, addr string, logs func() string) {
	t.Helper()
	outPath := filepath.Join(dir, "gateway.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	report := func() string { b, _ := os.ReadFile(outPath); return string(b) + "\n" + logs() }
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, report())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s:\n%s", cmd.Path, addr, report())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gatewayScenario drives requests through the gateway at base and checks
// which reach up.
func gatewayScenario(t *testing.T, base string, up *upstream, kit *authKit) {
	member := "Bearer " + mustIssue(t, kit, "alice", map[string]any{"roles": []string{"member"}})
	admin := "Bearer " + mustIssue(t, kit, "root", map[string]any{"roles": []string{"admin"}})
	cases := []struct {
		name, method, path, auth string
		status                   int
		reaches                  bool
		subject, www             string
	}{
		{"public route for anonymous", "GET", "/health", "", 200, true, "", ""},
		{"missing token on a protected route", "GET", "/todos/1", "", 401, false, "", "Bearer"},
		{"invalid token", "GET", "/todos/1", "Bearer not.a.token", 401, false, "", "invalid_token"},
		{"member reads a todo", "GET", "/todos/1?full=1", member, 200, true, "alice", ""},
		{"member may not delete", "DELETE", "/todos/1", member, 403, false, "", ""},
		{"admin deletes", "DELETE", "/todos/1", admin, 200, true, "root", ""},
		{"an unmatched route is denied", "GET", "/admin/secrets", admin, 403, false, "", ""},
		{"a path that is not clean matches no route", "GET", "/health/../todos/1", admin, 403, false, "", ""},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range cases {
		before, _ := up.seen()
		req, err := http.NewRequest(tc.method, base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		after, subject := up.seen()
		switch {
		case resp.StatusCode != tc.status:
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		case tc.reaches != (after == before+1) || after > before+1:
			t.Errorf("%s: upstream hits %d → %d, reaches %v", tc.name, before, after, tc.reaches)
		case tc.reaches && subject != tc.subject:
			t.Errorf("%s: upstream saw X-Verdict-Subject %q, want %q", tc.name, subject, tc.subject)
		case !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.www):
			t.Errorf("%s: WWW-Authenticate %q, want it to contain %q", tc.name, resp.Header.Get("WWW-Authenticate"), tc.www)
		}
	}
}

func TestNginxAuthRequest(t *testing.T) {
	bin := needBinary(t, "nginx", "/usr/sbin/nginx")
	h, kit := gatewayVerdict(t)
	up := startUpstream(t)
	dir := t.TempDir()
	port := freeLoopbackPort(t)
	verdict := strings.TrimPrefix(h.url, "http://")
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location = /_verdict {
      internal;
      proxy_pass http://%[3]s/v1/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }
    location / {
      auth_request /_verdict;
      auth_request_set $verdict_subject $upstream_http_x_verdict_subject;
      proxy_set_header X-Verdict-Subject $verdict_subject;
      proxy_pass http://%[4]s;
    }
  }
}
`, dir, port, verdict, up.url)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	runGateway(t, cmd, dir, addr, func() string { b, _ := os.ReadFile(filepath.Join(dir, "error.log")); return string(b) })
	gatewayScenario(t, "http://"+addr, up, kit)
}

func TestCaddyForwardAuth(t *testing.T) {
	bin := needBinary(t, "caddy")
	h, kit := gatewayVerdict(t)
	up := startUpstream(t)
	dir := t.TempDir()
	port := freeLoopbackPort(t)
	verdict := strings.TrimPrefix(h.url, "http://")
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %[1]s/data
}

http://127.0.0.1:%[2]d {
	forward_auth %[3]s {
		uri /v1/forward-auth
		copy_headers X-Verdict-Subject
	}
	reverse_proxy %[4]s
}
`, dir, port, verdict, up.url)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	// Caddy keeps its state under $HOME and the XDG directories: all in dir.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runGateway(t, cmd, dir, addr, func() string { return "" })
	gatewayScenario(t, "http://"+addr, up, kit)
}
