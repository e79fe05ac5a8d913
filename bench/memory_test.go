package bench

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/verdictpdp/verdict/oauth/oauthtest"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/server"
	"github.com/verdictpdp/verdict/store"
)

// TestUploadMemory is the memory budget of hostile bundle uploads (issue 9,
// item 2), measured as this process's resident set around a real server on
// a loopback listener:
//   - parallel unauthenticated 60 MiB pushes are refused from their headers,
//     so the server's RSS barely moves (it used to read each body: +64 MiB
//     apiece, kept);
//   - parallel authenticated gzip bombs (small archives that unpack past
//     bundles.max_bytes) cost at most a small multiple of max_bytes each
//     while they are read, and the memory is given back once they are
//     answered.
//
// Reproduce: go test -run TestUploadMemory -v ./bench/
func TestUploadMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory makes RSS meaningless; make test runs ./bench without -race")
	}
	if _, err := rss("VmRSS"); err != nil {
		t.Skipf("no /proc/self/status here: %v", err)
	}
	const (
		maxBytes = 32 << 20
		fileSize = 8 << 20
		parallel = 4
	)
	u := startUploadServer(t, bundles.Limits{MaxCompressedBytes: 64 << 20, MaxBytes: maxBytes, MaxFileBytes: fileSize, MaxFiles: 100, MaxPathLength: 256})
	settle()
	base, _ := rss("VmRSS")

	// Unauthenticated pushes that really send 60 MiB each.
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() { codes[i] = pushRaw(t, u.addr, "", 60<<20) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != 401 {
			t.Fatalf("unauthenticated push %d: %d, want 401", i, c)
		}
	}
	after, _ := rss("VmRSS")
	t.Logf("8 parallel unauthenticated 60 MiB pushes: RSS %+.1f MiB (base %.1f MiB)", mib(after-base), mib(base))
	if after-base > 24<<20 {
		t.Errorf("unauthenticated uploads grew RSS by %.1f MiB; they must be refused before their bodies are read", mib(after-base))
	}

	// Authenticated gzip bombs: five 8 MiB files of zeros, 40 MiB unpacked
	// against a 32 MiB limit, about 40 KiB compressed.
	bomb := zeroBomb(t, 5, fileSize)
	settle()
	base, _ = rss("VmRSS")
	peakReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	for range parallel {
		wg.Go(func() {
			code, body := u.push(bomb)
			if code != 400 || !strings.Contains(body, "limit") {
				t.Errorf("bomb push: %d %s", code, body)
			}
		})
	}
	wg.Wait()
	if peakReset {
		peak, _ := rss("VmHWM")
		ratio := float64(peak-base) / float64(parallel*maxBytes)
		t.Logf("%d parallel %d KiB bombs against max_bytes %d MiB: peak RSS %+.1f MiB = %.2f × (parallel × max_bytes)",
			parallel, len(bomb)>>10, maxBytes>>20, mib(peak-base), ratio)
		if ratio > 2 {
			t.Errorf("unpacking bombs took %.2f × their limits at the peak; want at most 2", ratio)
		}
	} else {
		t.Log("cannot reset the peak RSS (/proc/self/clear_refs); peak not checked")
	}
	// Released afterwards: no settle() here, the server must give it back
	// itself.
	after, _ = rss("VmRSS")
	t.Logf("after the bombs were answered: RSS %+.1f MiB", mib(after-base))
	if after-base > 24<<20 {
		t.Errorf("RSS stayed %.1f MiB above where it was before the bombs", mib(after-base))
	}
}

// uploadServer is a server with the bundle routes and a push token.
type uploadServer struct {
	addr, token string
}

func startUploadServer(t *testing.T, l bundles.Limits) *uploadServer {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := bundles.DefaultConfig()
	cfg.Limits = l
	mgr := bundles.NewManager(cfg, nil)
	life := bundles.NewLifecycle(mgr, storeadapt.Revisions(st, store.DefaultNamespace), nil)
	iss, v := oauthtest.Tokens(t, noRevocations{})
	at, err := iss.Issue("ci", "ci", []string{server.ScopeBundlesWrite}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.DefaultConfig(), mgr, nil, server.WithAuth(v, false), server.WithBundleAdmin(life))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return &uploadServer{addr: ln.Addr().String(), token: at.Token}
}

func (u *uploadServer) push(archive []byte) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+u.addr+"/v1/bundles", bytes.NewReader(archive))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pushRaw sends a push announcing size bytes and writes them (zeros) while
// it waits for the answer; it returns the status.
func pushRaw(t *testing.T, addr, auth string, size int) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	hdr := fmt.Sprintf("POST /v1/bundles HTTP/1.1\r\nHost: %s\r\nContent-Type: application/gzip\r\nContent-Length: %d\r\n", addr, size)
	if auth != "" {
		hdr += "Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
		t.Error(err)
		return 0
	}
	go func() {
		chunk := make([]byte, 1<<20)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return // the server closed: the answer came first
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// zeroBomb is a .tar.gz of n files of size zeros each.
func zeroBomb(t *testing.T, n, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	zeros := make([]byte, size)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("blob%d.bin", i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(zeros)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// rss reads one of this process's memory figures (VmRSS, VmHWM) in bytes.
func rss(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// settle gives garbage back to the system so that a baseline is a floor.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

type noRevocations struct{}

func (noRevocations) Revoked(context.Context, string) (bool, error) { return false, nil }
