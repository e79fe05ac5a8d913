package client_test

// A real Verdict, started in this process, for the tests and the examples:
// the quickstart bundle (policies/quickstart) with search candidates added
// to its data, served WITHOUT --dev so that callers must authenticate,
// and OAuth clients registered in its store before it starts.

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/oauth"
)

// notOurs are goroutines of libraries that outlive any one server (see
// internal/app's tests).
var notOurs = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
}

// TestMain stops the shared server after every test and example, then
// fails the package if a goroutine of the client or of a server is left
// behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	if code == 0 {
		if err := goleak.Find(notOurs...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// verdictServer is a Verdict running in this process.
type verdictServer struct {
	// URL is its base URL; GRPCAddr its gRPC listener's address.
	URL, GRPCAddr string
	// ClientID and Secret are an OAuth client with scope verdict:decide.
	ClientID, Secret string
	// ReaderID and ReaderSecret are a client with only
	// verdict:bundles:read.
	ReaderID, ReaderSecret string

	app *app.App
	dir string
}

// searchData is the quickstart bundle's data.json with search candidates
// (data.entities): users and documents.
const searchData = `{
  "admins": ["root", "ops-oncall"],
  "entities": {
    "user": [
      {"id": "ed", "properties": {"roles": ["editor"]}},
      {"id": "olga"},
      {"id": "root"},
      {"id": "vera", "properties": {"roles": ["viewer"]}}
    ],
    "document": [
      {"id": "42", "properties": {"owner": "olga"}},
      {"id": "43", "properties": {"owner": "ed", "locked": true}},
      {"id": "44", "properties": {"owner": "ed"}}
    ]
  }
}
`

// startVerdict serves the quickstart bundle (with searchData) from a new
// directory under dir, with cfg changed by tweak (nil: none).
func startVerdict(dir string, tweak func(*app.Config)) (s *verdictServer, err error) {
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{".manifest", "documents.verdict.yaml", "quickstart_test.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "policies", "quickstart", f))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(bundle, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(bundle, "data.json"), []byte(searchData), 0o644); err != nil {
		return nil, err
	}
	cfg := app.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.GRPCAddr = "127.0.0.1:0"
	cfg.Bundles.Paths = []string{bundle}
	cfg.Bundles.RequireSignature = new(bool)
	cfg.Bundles.AcknowledgeUnsigned = true
	if tweak != nil {
		tweak(&cfg)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	ctx := context.Background()
	// Clients are registered in the store before the server holds it, as
	// `verdict client add` does.
	st, err := app.OpenState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s = &verdictServer{ClientID: "app", ReaderID: "reader", dir: dir}
	_, s.Secret, err = st.Clients.Add(ctx, oauth.ClientSpec{ID: s.ClientID, Scopes: []string{"verdict:decide"}})
	if err == nil {
		_, s.ReaderSecret, err = st.Clients.Add(ctx, oauth.ClientSpec{ID: s.ReaderID, Scopes: []string{"verdict:bundles:read"}})
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if s.app, err = app.New(cfg, app.Options{Version: "client-test"}); err != nil {
		return nil, err
	}
	if err := s.app.Start(ctx); err != nil {
		return nil, err
	}
	s.URL = "http://" + s.app.Addr().String()
	s.GRPCAddr = s.app.GRPCAddr().String()
	return s, nil
}

func (s *verdictServer) stop() {
	s.app.Close()
	os.RemoveAll(s.dir)
}

// newServer starts a Verdict of its own for t, with tweak.
func newServer(t *testing.T, tweak func(*app.Config)) *verdictServer {
	t.Helper()
	s, err := startVerdict(t.TempDir(), tweak)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.app.Close() })
	return s
}

var (
	sharedOnce sync.Once
	shared     *verdictServer
	sharedErr  error
)

// sharedServer is the one Verdict most tests and every example use,
// started on first use and stopped by TestMain.
func sharedServer() (*verdictServer, error) {
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "verdict-client-test-")
		if err != nil {
			sharedErr = err
			return
		}
		if shared, sharedErr = startVerdict(dir, nil); sharedErr != nil {
			os.RemoveAll(dir)
		}
	})
	return shared, sharedErr
}

// sharedFor is sharedServer for a test.
func sharedFor(t *testing.T) *verdictServer {
	t.Helper()
	s, err := sharedServer()
	if err != nil {
		t.Fatalf("starting Verdict: %v", err)
	}
	return s
}

// exampleServer is the base URL and client credentials of a running
// Verdict that serves policies/quickstart, for the examples.
func exampleServer() (baseURL, clientID, secret string) {
	s, err := sharedServer()
	if err != nil {
		panic(fmt.Sprintf("starting Verdict: %v", err))
	}
	return s.URL, s.ClientID, s.Secret
}

// counter is a RoundTripper that counts requests by path and remembers the
// last Authorization header sent to a decision route.
type counter struct {
	base http.RoundTripper

	mu       sync.Mutex
	paths    map[string]int
	lastAuth string
}

// newCounter is a counting HTTP client over a transport of its own, whose
// connections t's cleanup closes.
func newCounter(t *testing.T) (*counter, *http.Client) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c := &counter{base: tr, paths: map[string]int{}}
	return c, &http.Client{Transport: c}
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[r.URL.Path]++
	if strings.HasPrefix(r.URL.Path, "/access/") {
		c.lastAuth = r.Header.Get("Authorization")
	}
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// n is the number of requests to path.
func (c *counter) n(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.paths)
}

func (c *counter) auth() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAuth
}

// dialCounter counts the connections a transport opens.
type dialCounter struct {
	mu sync.Mutex
	n  int
	d  net.Dialer
}

func (d *dialCounter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return d.d.DialContext(ctx, network, addr)
}

func (d *dialCounter) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}
