// Package redistest starts real redis-server processes for tests: a
// standalone server on a free port (Start), a Sentinel watching one
// (StartSentinel) or a Redis Cluster of masters (StartCluster). Each server keeps nothing on disk outside t.TempDir()
// (no RDB snapshots, no AOF) and is killed when the test ends.
//
// When redis-server (or, for a cluster, redis-cli) is not installed the
// test is skipped with a message saying so, unless the environment sets
// VERDICT_REQUIRE_INTEGRATION=1, in which case it fails: CI sets it so that
// the Redis tests can never be skipped there.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing redis-server
// or redis-cli from a skip into a failure.
const RequireEnv = "VERDICT_REQUIRE_INTEGRATION"

// startTimeout bounds the wait for a server to answer PING and for a
// cluster to report cluster_state:ok.
const startTimeout = 20 * time.Second

// Server is one redis-server process listening on 127.0.0.1. Its methods
// are safe for concurrent use.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string
	// sentinelConf, when set, makes the process a Sentinel with that
	// (writable) configuration file.
	sentinelConf string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when cmd has been waited for.
	exited chan struct{}
}

// Start starts a redis-server on a free port of 127.0.0.1 with a temporary
// directory, waits until it answers PING and kills it when the test ends.
// It skips (or fails, see RequireEnv) when redis-server is not installed,
// and fails the test when the server does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	need(t, "redis-server")
	var lastErr error
	for range 5 { // a free port can be taken between probe and bind
		port, err := freePort(false)
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s := &Server{t: t, port: port, dir: t.TempDir()}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's "redis://127.0.0.1:port/0".
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port is the server's TCP port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

// Stop kills the server (SIGKILL, as a crash would) and waits until it
// has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same port
// and directory (its data is gone: nothing is persisted), failing the test
// if it does not come up.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old socket may linger for a moment; retry briefly.
	deadline := time.Now().Add(startTimeout)
	for {
		if err = s.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
}

// start launches the process and waits for PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.sentinelConf != "" {
		args = append([]string{s.sentinelConf, "--sentinel"}, args...)
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := waitPing(s.Addr(), exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd = nil
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// waitPing waits until addr answers PING with PONG, or the process exits.
func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		if reply, err := Do(addr, "PING"); err == nil && reply == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer PING within %v", addr, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Do sends one command to addr over a fresh connection and returns the
// first line of the reply without its type byte ("PONG" for PING, the
// payload of a bulk string, "" for a nil reply); an error reply is an
// error. It is meant for setting up servers, not as a client: use go-redis
// in tests.
func Do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bulk reply %q", line)
		}
		if n < 0 { // a nil reply
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return line[1:], nil
	}
}

// StartSentinel starts one Redis Sentinel on a free port that monitors
// master under the name masterName (quorum 1), waits until it answers PING
// and kills it when the test ends. Its URL for Verdict is
// "redis+sentinel://" + Addr() + "/" + masterName. It skips (or fails, see
// RequireEnv) when redis-server is not installed.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	need(t, "redis-server")
	var lastErr error
	for range 5 {
		port, err := freePort(false)
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 2000\n", masterName, master.port)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("redistest: sentinel config: %v", err)
		}
		s := &Server{t: t, port: port, dir: dir, sentinelConf: conf}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: start redis sentinel: %v", lastErr)
	return nil
}

// Cluster is a Redis Cluster of masters without replicas, every slot
// assigned.
type Cluster struct {
	// Nodes are the cluster's masters.
	Nodes []*Server
}

// Addrs are the nodes' "127.0.0.1:port" addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the cluster as a Verdict store URL:
// "redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...".
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// StartCluster starts n (at least 3) cluster-enabled redis-servers, joins
// them with `redis-cli --cluster create` and waits until every node reports
// cluster_state:ok. The nodes are killed when the test ends. It skips (or
// fails, see RequireEnv) when redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	need(t, "redis-server")
	need(t, "redis-cli")
	c := &Cluster{}
	for range n {
		var node *Server
		var lastErr error
		for range 5 {
			port, err := freePort(true) // the cluster bus uses port+10000
			if err != nil {
				t.Fatalf("redistest: free port: %v", err)
			}
			dir := t.TempDir()
			s := &Server{t: t, port: port, dir: dir, args: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "5000",
			}}
			if lastErr = s.start(); lastErr == nil {
				node = s
				break
			}
		}
		if node == nil {
			t.Fatalf("redistest: start cluster node: %v", lastErr)
		}
		t.Cleanup(node.Stop)
		c.Nodes = append(c.Nodes, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, node := range c.Nodes {
		for {
			info, err := exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(node.port), "cluster", "info").Output()
			if err == nil && strings.Contains(string(info), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s not cluster_state:ok within %v: %v\n%s", node.Addr(), startTimeout, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// need skips or fails t when the program is not on PATH.
func need(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redistest: %s is not installed and %s=1 requires the Redis tests", program, RequireEnv)
		}
		t.Skipf("redistest: %s is not installed; skipping a test that needs a real Redis (set %s=1 to fail instead)", program, RequireEnv)
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago;
// with bus, port+10000 (a cluster node's bus port) was free too.
func freePort(bus bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !bus {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		lb, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		lb.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}
