package bench

// The soak server: a real `verdict serve` process for the soak and the
// activation-under-load tests (soak_test.go, swap_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// soakServer is a `verdict serve` process with signed bundles and two
// clients: gateway (verdict:decide) and ci (verdict:bundles:write).
type soakServer struct {
	bin, dir, base string
	cmd            *exec.Cmd
	exited         chan error
	log            *tailLog
	secret         map[string]string // client id → secret
	hc             *http.Client      // pushes and scrapes, apart from the load
}

// startSoakServer builds ./cmd/verdict, makes a signing key, the clients
// and a configuration, and starts `verdict serve` on a signed CEL bundle.
func startSoakServer(t *testing.T) *soakServer { return startSoakServerWith(t, "") }

// startSoakServerWith is startSoakServer with extra configuration (YAML
// appended to the file).
func startSoakServerWith(t *testing.T, extra string) *soakServer {
	t.Helper()
	dir := t.TempDir()
	s := &soakServer{bin: filepath.Join(dir, "verdict"), dir: dir, secret: map[string]string{},
		log: &tailLog{max: 32 << 10}, exited: make(chan error, 1),
		hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/verdict")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/verdict: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	if _, err := s.run("bundle", "keygen", "--out", filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	for id, scope := range map[string]string{"gateway": "verdict:decide", "ci": "verdict:bundles:write"} {
		out, err := s.run("client", "add", "--data-dir", data, "--id", id, "--scope", scope)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
				s.secret[id] = strings.TrimSpace(v)
			}
		}
		if s.secret[id] == "" {
			t.Fatalf("client add %s printed no secret:\n%s", id, out)
		}
	}
	cfg := filepath.Join(dir, "verdict.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "bundles:\n  keys:\n    soak: {algorithm: ES256, key_file: %s}\n%s",
		filepath.Join(dir, "keys", "public.pem"), extra), 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := s.archive(0)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s.base = "http://" + addr
	s.cmd = exec.Command(s.bin, "serve", "--config", cfg, "--data-dir", data, "--addr", addr, "--bundle", first)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := s.hc.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-s.exited:
			t.Fatalf("verdict serve exited: %v\n%s", err, s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("verdict serve not ready after 30s: %v\n%s", err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// run runs the verdict binary and returns its output.
func (s *soakServer) run(args ...string) (string, error) {
	out, err := exec.Command(s.bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("verdict %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// archive builds and signs push n: the CEL bundle for even n, the Rego
// one (the same decisions) for odd, under revision soak-<engine>-<n>.
func (s *soakServer) archive(n int) (string, error) {
	eng, src := "cel", celBundle
	if n%2 == 1 {
		eng, src = "rego", regoBundle
	}
	out := filepath.Join(s.dir, fmt.Sprintf("push-%d.tar.gz", n))
	_, err := s.run("bundle", "build", src, "-o", out, "--revision", fmt.Sprintf("soak-%s-%d", eng, n),
		"--signing-key", filepath.Join(s.dir, "keys", "private.pem"), "--key-id", "soak")
	return out, err
}

// pushEvery pushes a new signed revision every period until end, as a CI
// pipeline would (its own token, then POST /v1/bundles), and returns how
// long each successful push took; failures are load errors.
func (s *soakServer) pushEvery(ctx context.Context, load *soakLoad, period time.Duration, end time.Time) []time.Duration {
	var took []time.Duration
	tick := time.NewTicker(period)
	defer tick.Stop()
	for n := 2; ; n++ { // 0 and 1 served while the capacity was measured
		select {
		case <-ctx.Done():
			return took
		case now := <-tick.C:
			if now.Add(period / 4).After(end) {
				return took // no push in the last moments: it would not be seen serving
			}
		}
		start := time.Now()
		if err := s.pushNew(ctx, n); err != nil {
			load.fail(fmt.Sprintf("push %d: %v", n, err))
			continue
		}
		took = append(took, time.Since(start))
	}
}

// pushNew builds and signs push n (see archive) and pushes it.
func (s *soakServer) pushNew(ctx context.Context, n int) error {
	path, err := s.archive(n)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	tok, err := s.token(ctx, "ci", "verdict:bundles:write")
	if err != nil {
		return err
	}
	archive, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/bundles", bytes.NewReader(archive))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Activated bool `json:"activated"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &r) != nil || !r.Activated {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
	}
	return nil
}

// token gets an access token for client id with client_secret_basic.
func (s *soakServer) token(ctx context.Context, id, scope string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/oauth2/token",
		strings.NewReader("grant_type=client_credentials&scope="+scope))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, s.secret[id])
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
		return "", fmt.Errorf("token for %s: status %d: %.300s", id, resp.StatusCode, body)
	}
	return r.AccessToken, nil
}

// procSample is one look at the server process.
type procSample struct {
	at         time.Duration // since the open loop started
	rss        int64         // VmRSS of /proc/PID/status
	goroutines int64         // go_goroutines of /metrics
	fds        int64         // process_open_fds of /metrics
	cpu        time.Duration // user and system time of /proc/PID/stat
	load       string        // the machine's 1-minute load average (/proc/loadavg): others' work shows there
}

// sample reads the process's RSS and its goroutines and open files; a
// failure is a load error.
func (s *soakServer) sample(load *soakLoad) procSample {
	var out procSample
	var err error
	if out.rss, err = procRSS(s.cmd.Process.Pid); err != nil {
		load.fail("sample: " + err.Error())
	}
	if out.cpu, err = procCPU(s.cmd.Process.Pid); err != nil {
		load.fail("sample: " + err.Error())
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out.load, _, _ = strings.Cut(string(b), " ")
	}
	resp, err := s.hc.Get(s.base + "/metrics")
	if err != nil {
		load.fail("GET /metrics: " + err.Error())
		return out
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for line := range strings.Lines(string(body)) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "go_goroutines":
			out.goroutines = int64(f)
		case "process_open_fds":
			out.fds = int64(f)
		}
	}
	if resp.StatusCode != http.StatusOK || out.goroutines == 0 {
		load.fail(fmt.Sprintf("GET /metrics: status %d, go_goroutines %d", resp.StatusCode, out.goroutines))
	}
	return out
}

// procRSS is VmRSS of process pid, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// procCPU is the user and system time process pid has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 10 ms: USER_HZ is
// 100 on every Linux architecture Go runs on).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, rest, _ := bytes.Cut(b, []byte(") ")) // past the command name, which may hold spaces
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// stop sends SIGTERM and waits for a clean exit (status 0) within 30 s.
func (s *soakServer) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-s.exited:
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("still running 30s after SIGTERM")
	}
}

// tailLog keeps the last max bytes of the server's log and counts its
// ERROR lines (the server's logger writes a line at a time).
type tailLog struct {
	mu         sync.Mutex
	buf        []byte
	max        int
	errorLines atomic.Int64
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.errorLines.Add(int64(bytes.Count(p, []byte("level=ERROR"))))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > l.max {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-l.max:]...)
	}
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
