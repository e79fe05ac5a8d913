//go:build unix

package pgtest

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/redistest"
)

// RequireEnv is the environment variable that turns missing PostgreSQL
// binaries from a skip into a failure (the same as redistest's).
const RequireEnv = redistest.RequireEnv

// startTimeout bounds the wait for the server to report itself ready.
const startTimeout = 30 * time.Second

// stopTimeout bounds the wait for the server to exit after SIGQUIT, before
// it is killed.
const stopTimeout = 10 * time.Second

// debianBins is where Debian's postgresql-<ver> packages put the server
// programs, which are not on PATH.
const debianBins = "/usr/lib/postgresql/*/bin"

// Server is one PostgreSQL server listening on 127.0.0.1. Its methods are
// safe for concurrent use.
type Server struct {
	port int
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when cmd has been waited for.
	exited chan struct{}
}

// Start runs initdb in a new directory of t.TempDir() and starts postgres
// on a free port of 127.0.0.1 (trust authentication for the superuser
// "postgres", fsync off), waits until it accepts connections, and stops it
// when the test ends. It skips (or fails, see RequireEnv) when initdb or
// postgres is not installed, and fails the test when the server does not
// come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinaries(os.Getenv("PATH"), debianBins)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("pgtest: %v, and %s=1 requires the PostgreSQL tests (apt-get install postgresql)", err, RequireEnv)
		}
		t.Skipf("pgtest: %v; skipping a test that needs a real PostgreSQL (apt-get install postgresql, or set %s=1 to fail instead)", err, RequireEnv)
	}
	dir := t.TempDir()
	cred, err := prepareDir(dir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(bin.initdb, "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = environ()
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: %s: %v\n%s", bin.initdb, err, out)
	}
	s := &Server{dir: dir}
	var lastErr error
	for range 5 { // a free port can be taken between probe and bind
		if s.port, err = freePort(); err != nil {
			t.Fatalf("pgtest: free port: %v", err)
		}
		if lastErr = s.start(bin.postgres, cred); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("pgtest: start %s: %v", bin.postgres, lastErr)
	return nil
}

// DSN is the server's connection string for the superuser and the
// "postgres" database: "postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable".
func (s *Server) DSN() string {
	return "postgres://postgres@" + s.Addr() + "/postgres?sslmode=disable"
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Stop shuts the server down at once (SIGQUIT: no checkpoint, as nothing
// is kept), kills it if it has not exited within stopTimeout, and waits
// for it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// start launches postgres on s.port and waits until it is ready.
func (s *Server) start(postgres string, cred *syscall.Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sockets := filepath.Join(s.dir, "sock")
	if err := os.MkdirAll(sockets, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(sockets, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	// A unix socket's path is limited to 107 bytes; a deep TMPDIR goes
	// without one (the DSN uses TCP anyway).
	if len(sockets)+len("/.s.PGSQL.65535.lock") > 100 {
		sockets = ""
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	data := filepath.Join(s.dir, "data")
	cmd := exec.Command(postgres, "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+sockets,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "autovacuum=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=40",
		// Files under the data directory rather than /dev/shm, which
		// containers keep small.
		"-c", "dynamic_shared_memory_type=mmap",
	)
	cmd.Dir = s.dir
	cmd.Env = environ()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := waitReady(data, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd = nil
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// waitReady waits until the postmaster.pid of the data directory says
// "ready" (its eighth line, as pg_ctl reads it: the server accepts
// connections), or the process exits.
func waitReady(data string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("postgres exited")
		default:
		}
		if pidFileStatus(filepath.Join(data, "postmaster.pid")) == "ready" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready within %v", startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidFileStatus is the status line of a postmaster.pid ("" when the file
// or the line is missing).
func pidFileStatus(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 1; sc.Scan(); i++ {
		if i == 8 {
			return strings.TrimSpace(sc.Text())
		}
	}
	return ""
}

// binaries are the programs Start runs, from one installation.
type binaries struct {
	initdb, postgres string
}

// findBinaries finds initdb on path, else in the directories matching
// pattern (the highest version first), and postgres next to it (the same
// installation), else on path.
func findBinaries(path, pattern string) (binaries, error) {
	var dirs []string
	for _, d := range filepath.SplitList(path) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	more, _ := filepath.Glob(pattern)
	slices.SortFunc(more, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	dirs = append(dirs, more...)
	for _, d := range dirs {
		initdb := filepath.Join(d, "initdb")
		if !executable(initdb) {
			continue
		}
		// A symlink on PATH (/usr/local/bin/initdb) leads to the
		// installation whose postgres must go with it.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			if pg := filepath.Join(filepath.Dir(real), "postgres"); executable(pg) {
				return binaries{initdb: real, postgres: pg}, nil
			}
		}
		if pg := filepath.Join(d, "postgres"); executable(pg) {
			return binaries{initdb: initdb, postgres: pg}, nil
		}
		for _, p := range dirs {
			if pg := filepath.Join(p, "postgres"); executable(pg) {
				return binaries{initdb: initdb, postgres: pg}, nil
			}
		}
		return binaries{}, fmt.Errorf("PostgreSQL's initdb is at %s but its postgres program is not installed", initdb)
	}
	return binaries{}, fmt.Errorf("PostgreSQL is not installed (no initdb on PATH or in %s)", pattern)
}

// version is the major version in a /usr/lib/postgresql/<ver>/bin path (0
// when there is none).
func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// prepareDir makes dir usable by the user the server runs as. As root, that
// is the postgres OS user: dir is given to it, and dir's parent (the
// test's own temporary directory, which testing creates 0700) opened for
// traversal; the credential to run the programs with is returned. Otherwise
// the programs run as the current user and the credential is nil.
func prepareDir(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs a postgres OS user to run as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("the postgres OS user: %w", err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		return nil, err
	}
	// The directories above must let others through already: opening
	// them (/root, say) is not a test's business.
	for d := filepath.Dir(filepath.Dir(dir)); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("the postgres OS user cannot reach %s (mode %v): set TMPDIR to a directory it can", d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// environ is this process's environment without the PG* variables, which
// would point the programs elsewhere.
func environ() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
