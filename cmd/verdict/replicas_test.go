package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/tcpproxy"
	"github.com/verdictpdp/verdict/internal/testutil"
)

// The replicas of these tests poll every testPoll and turn unready after
// testStale without a sync.
const (
	testPoll  = 250 * time.Millisecond
	testStale = 2 * time.Second
	// testFailures failed token requests per IP are allowed a minute.
	testFailures = 4
)

// cluster is several `verdict serve` processes (in process, each on its
// own port) on one Redis, with a client that may decide and push bundles.
type cluster struct {
	t        testing.TB
	redis    *redistest.Server
	replicas []*replicaProc
	secret   string
	tokens   *clientcredentials.Config
	// dataDir holds the pepper every replica shares.
	dataDir string
}

type replicaProc struct {
	base string
	logs *testutil.SyncBuffer
	stop func()
}

// replicaConfig is the configuration every replica shares: one issuer
// (the load balancer's URL, so a token of one replica verifies on all),
// unsigned bundles for the test, and a short poll and staleness bound.
func replicaConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "verdict.yaml")
	writeFile(t, p, fmt.Sprintf("bundles: {require_signature: false, acknowledge_unsigned: true}\ntokens: {issuer: http://verdict.test}\n"+
		"server: {token_failures: {max: %d, window: 1m}}\nreplica: {poll_interval: %s, stale_after: %s}\n", testFailures, testPoll, testStale))
	return p
}

// startCluster starts n replicas on a fresh Redis; storeURL(i) may route a
// replica through a proxy ("" means Redis directly).
func startCluster(t testing.TB, n int, storeURL func(rs *redistest.Server, i int) string) *cluster {
	t.Helper()
	rs := redistest.Start(t)
	cfg := replicaConfig(t)
	// Every replica shares the data dir's pepper (the key client secrets
	// are HMACed with), as an operator copies it to every machine.
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "client", "add", "--id", "ops", "--scope", "verdict:decide", "--scope", "verdict:bundles:write",
		"--store", rs.URL(), "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("client add: %d %s", code, errOut)
	}
	c := &cluster{t: t, redis: rs, secret: regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1], dataDir: dataDir}
	for i := range n {
		u := rs.URL()
		if storeURL != nil {
			if s := storeURL(rs, i); s != "" {
				u = s
			}
		}
		c.replicas = append(c.replicas, startReplicaProc(t, cfg, u, dataDir))
	}
	c.tokens = &clientcredentials.Config{ClientID: "ops", ClientSecret: c.secret, TokenURL: c.replicas[0].base + "/oauth2/token",
		Scopes: []string{"verdict:decide", "verdict:bundles:write"}}
	return c
}

func startReplicaProc(t testing.TB, cfg, storeURL, dataDir string) *replicaProc {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &testutil.SyncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--addr", addr, "--store", storeURL, "--data-dir", dataDir},
			strings.NewReader(""), io.Discard, logs)
	}()
	r := &replicaProc{base: "http://" + addr, logs: logs}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("serve exit %d: %s", code, logs.String())
			}
		})
	}
	t.Cleanup(r.stop)
	for range 250 {
		if resp, err := http.Get(r.base + "/healthz"); err == nil {
			resp.Body.Close()
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve never answered: %s", logs.String())
	return nil
}

// token is a fresh access token of the ops client from replica 0.
func (c *cluster) token() string {
	c.t.Helper()
	tok, err := c.tokens.Token(context.Background())
	if err != nil {
		c.t.Fatalf("token: %v", err)
	}
	return tok.AccessToken
}

// revisionArchive is the test policy as a bundle archive of revision rev.
func revisionArchive(t testing.TB, rev string) []byte {
	t.Helper()
	b, err := bundles.FromFiles(map[string][]byte{
		".manifest": []byte(fmt.Sprintf(`{"revision":%q}`, rev)), "p.verdict.yaml": []byte(policy), "p_test.yaml": []byte(tests),
	}, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundles.Pack(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// push posts archive to base and returns the status and Retry-After.
func push(t testing.TB, base, tok string, archive []byte) (int, string) {
	t.Helper()
	return postAs(t, base+"/v1/bundles", "application/gzip", tok, bytes.NewReader(archive))
}

// postAs posts body to target with bearer token tok and returns the
// status and Retry-After.
func postAs(t testing.TB, target, contentType, tok string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, body)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// decision is one answer of base on whether user may read owner's
// document.
type decision struct {
	status   int
	allow    bool
	revision string
}

func decideAs(client *http.Client, base, tok, user, owner string) (decision, error) {
	body := fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":%q}}}`, user, owner)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/decide", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return decision{}, err
	}
	defer resp.Body.Close()
	var m struct {
		Decision bool `json:"decision"`
		Context  struct {
			Revision string `json:"revision"`
		} `json:"context"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return decision{}, fmt.Errorf("decide: %q", raw)
		}
	}
	return decision{status: resp.StatusCode, allow: m.Decision, revision: m.Context.Revision}, nil
}

// status is a replica's /v1/status, the parts these tests compare.
type status struct {
	Bundle *struct {
		Revision string `json:"revision"`
	} `json:"bundle"`
	Replica *struct {
		Generation uint64 `json:"generation"`
		Reachable  bool   `json:"reachable"`
		Healthy    bool   `json:"healthy"`
	} `json:"replica"`
}

func statusOf(base string) (status, error) {
	var s status
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// revision is what base serves ("" for nothing or on error).
func revision(base string) string {
	s, err := statusOf(base)
	if err != nil || s.Bundle == nil {
		return ""
	}
	return s.Bundle.Revision
}

// readyz returns the status and checks of base's /readyz.
func readyz(t testing.TB, base string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Checks map[string]any `json:"checks"`
	}
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m.Checks
}

// within polls cond every millisecond for at most d and reports how long
// it took to hold, or fails the test.
func within(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// allServe waits until every replica serves rev.
func (c *cluster) allServe(rev string, d time.Duration) time.Duration {
	c.t.Helper()
	return within(c.t, d, "every replica serves "+rev, func() bool {
		for _, r := range c.replicas {
			if revision(r.base) != rev {
				return false
			}
		}
		return true
	})
}

// pushAll pushes revision rev to replica 0 and waits until every replica
// serves it.
func (c *cluster) pushAll(tok, rev string) {
	c.t.Helper()
	if code, _ := push(c.t, c.replicas[0].base, tok, revisionArchive(c.t, rev)); code != 200 && code != 201 {
		c.t.Fatalf("push %s: %d", rev, code)
	}
	c.allServe(rev, 5*time.Second)
}

// TestReplicasServeOnePush: a bundle pushed to one replica is served by
// all three.
func TestReplicasServeOnePush(t *testing.T) {
	c := startCluster(t, 3, nil)
	tok := c.token()
	c.pushAll(tok, "v1")
	for i, r := range c.replicas {
		d, err := decideAs(http.DefaultClient, r.base, tok, "alice", "alice")
		if err != nil || d.status != 200 || !d.allow || d.revision != "v1" {
			t.Fatalf("replica %d: %+v %v", i, d, err)
		}
		if code, checks := readyz(t, r.base); code != 200 || checks["store"] != "ok" || checks["sync"] != "ok" {
			t.Fatalf("replica %d readyz: %d %v", i, code, checks)
		}
	}
}

// TestReplicasRejectARevokedToken: a token revoked on replica A is
// rejected by B and C within the poll interval, although they had
// verified (and cached) it.
func TestReplicasRejectARevokedToken(t *testing.T) {
	c := startCluster(t, 3, nil)
	tok := c.token()
	c.pushAll(tok, "v1")
	for i, r := range c.replicas {
		if code := decideStatus(t, r.base, tok, "alice"); code != 200 {
			t.Fatalf("replica %d before the revocation: %d", i, code)
		}
	}
	revokeToken(t, c.replicas[0].base, "ops", c.secret, tok)
	for i, r := range c.replicas[1:] {
		took := within(t, 4*testPoll, fmt.Sprintf("replica %d rejects the revoked token", i+1), func() bool {
			return decideStatus(t, r.base, tok, "alice") == 401
		})
		t.Logf("replica %d rejected the revoked token after %s", i+1, took)
	}
}

// TestReplicasFailStaticWhileRedisIsDown: Redis is killed during a
// decision load on every replica: no decision fails or changes; token
// issuance and bundle pushes answer 503 with Retry-After; /readyz reports
// the store unreachable and stays ready until stale_after, then 503, and
// from then on a caller token is checked against the store again (a 503,
// never a pass). Redis comes back (with its data, as with persistence on):
// every replica converges to the same generation and revision, is ready
// and decides again.
func TestReplicasFailStaticWhileRedisIsDown(t *testing.T) {
	c := startCluster(t, 3, nil)
	tok := c.token()
	c.pushAll(tok, "v1")

	// The load: every replica, allowed and denied users, one token (its
	// verification cached, as a gateway's steady token is).
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var total, failed atomic.Int64
	var firstFailure atomic.Value
	for _, r := range c.replicas {
		for _, user := range []string{"alice", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for ctx.Err() == nil {
					d, err := decideAs(client, r.base, tok, user, "alice")
					total.Add(1)
					if err != nil || d.status != 200 || d.allow != (user == "alice") || d.revision != "v1" {
						failed.Add(1)
						firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s as %s: %+v %v", r.base, user, d, err))
					}
					time.Sleep(time.Millisecond) // a steady load, not a CPU hog
				}
			}()
		}
	}
	time.Sleep(100 * time.Millisecond) // the load runs before the kill

	if _, err := redistest.Do(c.redis.Addr(), "SAVE"); err != nil {
		t.Fatal(err)
	}
	c.redis.Stop()
	down := time.Now()
	for i, r := range c.replicas {
		within(t, 4*testPoll, fmt.Sprintf("replica %d reports the store unreachable", i), func() bool {
			_, checks := readyz(t, r.base)
			return checks["store"] == "unreachable"
		})
	}
	time.Sleep(2 * testPoll) // the load goes on with Redis down, seen as such
	stopLoad()
	wg.Wait()
	if since := time.Since(down); since >= testStale {
		t.Fatalf("the load ran %s into the outage, past stale_after (%s): the machine is too slow for this test", since, testStale)
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d decisions failed; first: %v", n, total.Load(), firstFailure.Load())
	}
	t.Logf("%d decisions before and during the outage, none failed", total.Load())
	a := c.replicas[0].base
	if code, checks := readyz(t, a); code != 200 && time.Since(down) < testStale {
		t.Fatalf("readyz before stale_after: %d %v (fail-static keeps it ready)", code, checks)
	}

	if code, retry := push(t, a, tok, revisionArchive(t, "v2")); code != 503 || retry == "" {
		t.Fatalf("push with Redis down: %d, Retry-After %q", code, retry)
	}
	req, _ := http.NewRequest(http.MethodPost, a+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ops", c.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("token with Redis down: %d %v", resp.StatusCode, resp.Header)
	}
	for i, r := range c.replicas {
		within(t, testStale+4*testPoll, fmt.Sprintf("replica %d unready after stale_after", i), func() bool {
			code, checks := readyz(t, r.base)
			return code == 503 && checks["sync"] == "stale" && checks["store"] == "unreachable"
		})
		// Stale: the cached verification is dropped (a millisecond after
		// /readyz can report it), and the revocation check needs the store.
		within(t, testPoll, fmt.Sprintf("replica %d, stale, stops deciding with a token it cannot check", i), func() bool {
			code, retry := decideRetry(t, r.base, tok)
			if code != 200 && (code != 503 || retry == "") {
				t.Fatalf("replica %d, stale: %d, Retry-After %q; want 503 with Retry-After", i, code, retry)
			}
			return code == 503
		})
	}

	c.redis.Restart()
	back := time.Now()
	gen, err := redistest.Do(c.redis.Addr(), "GET", "{verdict:}gen")
	if err != nil {
		t.Fatal(err)
	}
	took := within(t, 10*time.Second, "every replica converges", func() bool {
		for _, r := range c.replicas {
			s, err := statusOf(r.base)
			if err != nil || s.Replica == nil || !s.Replica.Healthy || fmt.Sprint(s.Replica.Generation) != gen || s.Bundle == nil || s.Bundle.Revision != "v1" {
				return false
			}
			if code, _ := readyz(t, r.base); code != 200 {
				return false
			}
		}
		return true
	})
	t.Logf("Redis down %s; every replica converged %s after it came back", back.Sub(down).Round(time.Millisecond), took)
	for i, r := range c.replicas {
		for user, want := range map[string]bool{"alice": true, "bob": false} {
			if d, err := decideAs(http.DefaultClient, r.base, tok, user, "alice"); err != nil || d.status != 200 || d.allow != want || d.revision != "v1" {
				t.Fatalf("replica %d after the return, %s: %+v %v", i, user, d, err)
			}
		}
	}
	// Writes work again, on every replica.
	if code, _ := push(t, c.replicas[2].base, c.token(), revisionArchive(t, "v2")); code != 200 && code != 201 {
		t.Fatalf("push after Redis came back: %d", code)
	}
	c.allServe("v2", 5*time.Second)
}

// throughProxy is a startCluster storeURL that routes replica i to Redis
// through a TCP proxy it starts (closed when the test ends) and stores in
// *px, and the others directly.
func throughProxy(t testing.TB, i int, px **tcpproxy.Proxy) func(rs *redistest.Server, j int) string {
	return func(rs *redistest.Server, j int) string {
		if j != i {
			return ""
		}
		p, err := tcpproxy.Start(rs.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		*px = p
		return "redis://" + p.Addr() + "/0"
	}
}

// decideRetry is the status and Retry-After of a decision on base with
// bearer token tok.
func decideRetry(t testing.TB, base, tok string) (int, string) {
	t.Helper()
	body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	return postAs(t, base+"/v1/decide", "application/json", tok, strings.NewReader(body))
}

// TestReplicasVerifyUnseenTokensWhileRedisIsDown: while Redis is down and
// before stale_after, replica B verifies caller tokens it has never seen
// from its mirror of the revoked token ids: a valid one issued on A before
// the outage decides (200, the policy's answer), and one revoked on A
// before the outage is rejected (401). B heard of that revocation only
// from its poll's repair (its subscription is cut), so it holds no
// ForgetJTI tombstone for it: only the mirror knows. Past stale_after an
// uncached token is a 503 with Retry-After, never a 200.
func TestReplicasVerifyUnseenTokensWhileRedisIsDown(t *testing.T) {
	var px *tcpproxy.Proxy
	c := startCluster(t, 2, throughProxy(t, 1, &px))
	a, b := c.replicas[0].base, c.replicas[1]
	tok := c.token()
	c.pushAll(tok, "v1")
	// Issued on A before the outage; B never sees them before it.
	unseen, revoked, unseenLater := c.token(), c.token(), c.token()

	px.CutSubscriptions()
	// revokeAndRepair revokes tok on A and reports whether B reached the
	// revocation's generation by a repair (its subscription cut) rather
	// than by the announcement.
	revokeAndRepair := func(tok string) bool {
		repairs := strings.Count(b.logs.String(), "replica: repaired")
		revokeToken(t, a, "ops", c.secret, tok)
		gen, err := redistest.Do(c.redis.Addr(), "GET", "{verdict:}gen")
		if err != nil {
			t.Fatal(err)
		}
		within(t, 4*testPoll+time.Second, "B repairs to the revocation's generation", func() bool {
			s, err := statusOf(b.base)
			return err == nil && s.Replica != nil && fmt.Sprint(s.Replica.Generation) == gen
		})
		return strings.Count(b.logs.String(), "replica: repaired") > repairs
	}
	// A first revocation proves the cut is in effect (an announcement
	// already in flight through the proxy when it was cut can still
	// arrive); only then is the token revoked that the mirror must know.
	if !revokeAndRepair(c.token()) && !revokeAndRepair(c.token()) {
		t.Fatal("B never repaired: its subscription was not cut")
	}
	if !revokeAndRepair(revoked) {
		t.Fatal("B did not repair: its subscription was not cut, so a tombstone and not the mirror would reject the token")
	}

	c.redis.Stop()
	down := time.Now()
	for user, want := range map[string]bool{"alice": true, "bob": false} {
		d, err := decideAs(http.DefaultClient, b.base, unseen, user, "alice")
		if err != nil || d.status != 200 || d.allow != want || d.revision != "v1" {
			t.Fatalf("B, Redis down, a valid token it never saw, as %s: %+v %v; want 200 and allow %v", user, d, err, want)
		}
	}
	if code, _ := decideRetry(t, b.base, revoked); code != 401 {
		t.Fatalf("B, Redis down, a token revoked before the outage: %d, want 401", code)
	}
	if code, _ := decideRetry(t, a, revoked); code != 401 {
		t.Fatalf("A, Redis down, the token it revoked: %d, want 401", code)
	}
	if since := time.Since(down); since >= testStale {
		t.Fatalf("the checks ran %s into the outage, past stale_after (%s): the machine is too slow for this test", since, testStale)
	}
	if code, _ := readyz(t, b.base); code != 200 && time.Since(down) < testStale {
		t.Fatalf("B's readyz before stale_after: %d", code)
	}
	// The same story in B's metrics: it repaired, and its mirror answered
	// for the token it never saw.
	for series, least := range map[string]float64{"verdict_replica_repairs_total": 1, "verdict_replica_mirror_answers_total": 1} {
		if v := metric(t, b.base, series); v < least {
			t.Errorf("B's %s = %v during the outage, want at least %v", series, v, least)
		}
	}

	within(t, testStale+4*testPoll+time.Second, "B unready after stale_after", func() bool {
		code, checks := readyz(t, b.base)
		return code == 503 && checks["sync"] == "stale"
	})
	if v := metric(t, b.base, "verdict_replica_healthy"); v != 0 {
		t.Errorf("B, stale: verdict_replica_healthy = %v, want 0", v)
	}
	// Not cached: the mirror is not trusted once stale, at once.
	for name, tok := range map[string]string{"never presented": unseenLater, "revoked": revoked} {
		if code, retry := decideRetry(t, b.base, tok); code != 503 || retry == "" {
			t.Fatalf("B, stale, a token %s: %d, Retry-After %q; want 503 with Retry-After", name, code, retry)
		}
	}
	// Cached during the outage: dropped when B turns stale (a timer, a
	// millisecond after /readyz can report it), then checked again.
	within(t, testPoll, "B, stale, drops the verification it cached during the outage", func() bool {
		code, retry := decideRetry(t, b.base, unseen)
		if code != 200 && (code != 503 || retry == "") {
			t.Fatalf("B, stale, the token it verified during the outage: %d, Retry-After %q", code, retry)
		}
		return code == 503
	})
}

// aclUser is the ACL user docs/operations.md ("Redis store") documents,
// read from the document itself, with password pw.
func aclUser(t testing.TB) []string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^ACL SETUSER verdict on >PASSWORD .*$`).Find(doc)
	if line == nil {
		t.Fatal("docs/operations.md documents no ACL SETUSER line")
	}
	return strings.Fields(strings.Replace(string(line), ">PASSWORD", ">pw", 1))
}

// TestReplicasShareTokenRateLimits: failed token requests counted on one
// replica count on the others (the counters are in Redis, under the store's
// hash tag). The replicas connect as the documented ACL user, so that
// everything a replica does (the store, its sync and the limiter) is
// proven to need no more.
func TestReplicasShareTokenRateLimits(t *testing.T) {
	c := startCluster(t, 3, func(rs *redistest.Server, i int) string {
		if i == 0 {
			if _, err := redistest.Do(rs.Addr(), aclUser(t)...); err != nil {
				t.Fatalf("ACL SETUSER: %v", err)
			}
		}
		return "redis://verdict:pw@" + rs.Addr() + "/0"
	})
	// The replicas follow each other as that user.
	c.pushAll(c.token(), "v1")
	tokenStatus := func(base, secret string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("ops", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range testFailures {
		if code := tokenStatus(c.replicas[i%2].base, "wrong"); code != 401 {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	if code := tokenStatus(c.replicas[2].base, c.secret); code != 429 {
		t.Fatalf("the right secret on the third replica after %d failures on the others: %d, want 429", testFailures, code)
	}
	if n, err := redistest.Do(c.redis.Addr(), "EXISTS", "{verdict:}ratelimit:ip:127.0.0.1"); err != nil || n != "1" {
		t.Fatalf("the per-IP counter in Redis: %q %v", n, err)
	}
	// The pushes went through the bundles group's rate limit, shared in
	// Redis (redis_rate's key) by the same user.
	if n, err := redistest.Do(c.redis.Addr(), "EXISTS", "rate:{verdict:}routelimit:bundles:ip:127.0.0.1"); err != nil || n != "1" {
		keys, _ := redistest.Do(c.redis.Addr(), "KEYS", "rate:*")
		t.Fatalf("the bundles route limit in Redis: %q %v; keys %s\n%s", n, err, keys, c.replicas[0].logs.String())
	}
	for _, r := range c.replicas {
		if strings.Contains(r.logs.String(), "NOPERM") || strings.Contains(r.logs.String(), "counting on this replica") {
			t.Fatalf("a command was refused to the documented ACL user: %s", r.logs.String())
		}
	}
}

// TestReplicaWithACutSubscriptionConverges: replica C reaches Redis
// through a TCP proxy that silently drops everything Redis sends on C's
// subscription; a push to A reaches C through its poll, within the poll
// interval.
func TestReplicaWithACutSubscriptionConverges(t *testing.T) {
	var px *tcpproxy.Proxy
	c := startCluster(t, 3, throughProxy(t, 2, &px))
	tok := c.token()
	c.pushAll(tok, "v1")
	px.CutSubscriptions()
	if code, _ := push(t, c.replicas[0].base, tok, revisionArchive(t, "v2")); code != 200 && code != 201 {
		t.Fatalf("push: %d", code)
	}
	took := within(t, 2*testPoll+time.Second, "replica C serves v2", func() bool { return revision(c.replicas[2].base) == "v2" })
	t.Logf("replica C, its subscription cut, served v2 after %s (poll interval %s)", took, testPoll)
	if !strings.Contains(c.replicas[2].logs.String(), "replica: repaired") {
		t.Fatal("replica C did not repair: the subscription was not cut")
	}
}

// BenchmarkPushPropagation measures how long a bundle pushed to one of
// three replicas takes to be served by all of them (p50 and p99 reported;
// the target is p99 < 50 ms). Run it with -benchtime=100x for 100 pushes.
func BenchmarkPushPropagation(b *testing.B) {
	c := startCluster(b, 3, nil)
	tok := c.token()
	// after: from the push's answer (the pushing replica serves it) until
	// the other two do; total: from sending the push (read, verify,
	// compile, test and store included).
	var after, total []time.Duration
	b.ResetTimer()
	for i := range b.N {
		rev := fmt.Sprintf("p%d", i)
		archive := revisionArchive(b, rev)
		start := time.Now()
		if code, _ := push(b, c.replicas[i%3].base, tok, archive); code != 200 && code != 201 {
			b.Fatalf("push: %d", code)
		}
		answered := time.Now()
		c.allServe(rev, 5*time.Second)
		after = append(after, time.Since(answered))
		total = append(total, time.Since(start))
	}
	b.StopTimer()
	q := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(after, 0.5), "p50-ms")
	b.ReportMetric(q(after, 0.99), "p99-ms")
	b.ReportMetric(q(total, 0.5), "push-p50-ms")
	b.ReportMetric(q(total, 0.99), "push-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// metricsText is base's /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// metric is the value of the unlabelled series name in base's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	raw := metricsText(t, base)
	for _, line := range strings.Split(raw, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics:\n%s", name, raw)
	return 0
}
