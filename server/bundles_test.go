package server

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/store"
)

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name, body, link string
	typ              byte
}

// targz packs entries into a .tar.gz, in order.
func targz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.link}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleArchive packs files (sorted by name) with a manifest for rev.
func bundleArchive(t testing.TB, rev string, files map[string]string) []byte {
	t.Helper()
	entries := []tarEntry{{name: "/.manifest", body: fmt.Sprintf(`{"revision":%q}`, rev)}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		entries = append(entries, tarEntry{name: n, body: files[n]})
	}
	return targz(t, entries...)
}

const ownerTests = `tests:
  - name: owner reads
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: true
  - name: stranger reads
    input: {subject: {type: user, id: bob}, action: {name: read}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: false
`

// policyV2 also lets owners delete.
var policyV2 = strings.Replace(policyV1, `actions: ["read", "update"]`, `actions: ["read", "update", "delete"]`, 1)

func goodFiles(policy string) map[string]string {
	return map[string]string{"docs.verdict.yaml": policy, "docs_test.yaml": ownerTests}
}

type bundleKit struct {
	*harness
	kit   *authKit
	life  *bundles.Lifecycle
	st    *store.Bolt
	write string // Authorization header values
	read  string
}

// startBundles serves a lifecycle over a bbolt store in dir with limits l.
func startBundles(t *testing.T, dir string, l bundles.Limits) *bundleKit {
	t.Helper()
	cfg := bundles.DefaultConfig()
	cfg.Limits = l
	return startBundlesWith(t, dir, cfg)
}

// startBundlesWith is startBundles with a whole bundle configuration.
func startBundlesWith(t *testing.T, dir string, cfg bundles.Config) *bundleKit {
	t.Helper()
	st, err := store.OpenBolt(dir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mgr := bundles.NewManager(cfg, nil)
	life := bundles.NewLifecycle(mgr, storeadapt.Revisions(st, store.DefaultNamespace), nil)
	if _, err := life.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	kit := newAuthKit(t)
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, true), WithBundleAdmin(life))
	t.Cleanup(func() {
		h.stop()
		st.Close()
	})
	return &bundleKit{harness: h, kit: kit, life: life, st: st,
		write: "Bearer " + kit.token(t, "ci", ScopeBundlesWrite),
		read:  "Bearer " + kit.token(t, "viewer", ScopeBundlesRead)}
}

// request sends one request and decodes a JSON answer; it is safe to call
// from any goroutine (errors come back, nothing calls t.Fatal).
func request(method, u, ctype, auth string, body []byte) (int, map[string]any, []byte, http.Header, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			return 0, nil, nil, nil, fmt.Errorf("%s %s: bad JSON %q", method, u, raw)
		}
	}
	return resp.StatusCode, m, raw, resp.Header, nil
}

func (k *bundleKit) call(t *testing.T, method, path, auth string, body []byte) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	ctype := ""
	if method == http.MethodPost && path != "/v1/decide" {
		ctype = "application/gzip"
	}
	code, m, raw, hdr, err := request(method, k.url+path, ctype, auth, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, m, raw, hdr
}

func (k *bundleKit) push(t *testing.T, archive []byte, query string) (int, map[string]any) {
	t.Helper()
	code, m, _, _ := k.call(t, http.MethodPost, "/v1/bundles"+query, k.write, archive)
	return code, m
}

// decideRevision asks whether user may action a document alice owns and
// returns the decision and the revision that made it.
func (k *bundleKit) decideRevision(t *testing.T, user, action string) (bool, string) {
	t.Helper()
	code, m, raw, _, err := request(http.MethodPost, k.url+"/v1/decide", "application/json", "", []byte(body(user, action, "alice")))
	if err != nil || code != 200 {
		t.Fatalf("decide: %d %s %v", code, raw, err)
	}
	return m["decision"].(bool), m["context"].(map[string]any)["revision"].(string)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func details(m map[string]any) []string {
	e, _ := m["error"].(map[string]any)
	var out []string
	for _, d := range e["details"].([]any) {
		out = append(out, d.(string))
	}
	return out
}

func TestPushListDownloadActivate(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	if ok, _ := k.decideRevision(t, "alice", "read"); ok {
		t.Fatal("no bundle yet: every decision is a deny")
	}
	code, m, _, _ := k.call(t, http.MethodGet, "/v1/bundles/active", k.read, nil)
	if code != 404 || errCode(m) != CodeNoActiveBundle {
		t.Fatalf("active before a push: %d %v", code, m)
	}
	v1 := bundleArchive(t, "v1", goodFiles(policyV1))
	code, m = k.push(t, v1, "")
	if code != 201 || m["revision"] != "v1" || m["activated"] != true || m["created"] != true ||
		m["tests"].(map[string]any)["passed"] != 2.0 || !strings.HasPrefix(m["digest"].(string), "sha256:") {
		t.Fatalf("push v1: %d %v", code, m)
	}
	if ok, rev := k.decideRevision(t, "alice", "read"); !ok || rev != "v1" {
		t.Fatalf("after push: %v %s", ok, rev)
	}
	// Again, identical: 200, says so, nothing new, not even an activation.
	gen := func() any {
		_, m, _, _ := k.call(t, http.MethodGet, "/v1/status", "", nil)
		return m["bundle"].(map[string]any)["generation"]
	}
	before := gen()
	code, m = k.push(t, v1, "")
	if code != 200 || m["created"] != false || m["activated"] != true || !strings.Contains(m["message"].(string), "already stored") {
		t.Fatalf("identical push: %d %v", code, m)
	}
	if after := gen(); after != before {
		t.Fatalf("an identical push activated again: generation %v → %v", before, after)
	}
	// v2 without activation: stored, v1 still serves.
	v2 := bundleArchive(t, "v2", goodFiles(policyV2))
	code, m = k.push(t, v2, "?activate=false")
	if code != 201 || m["activated"] != false {
		t.Fatalf("push v2 inactive: %d %v", code, m)
	}
	if ok, rev := k.decideRevision(t, "alice", "delete"); ok || rev != "v1" {
		t.Fatalf("v2 must not serve yet: %v %s", ok, rev)
	}
	code, m, _, _ = k.call(t, http.MethodGet, "/v1/bundles", k.read, nil)
	revs := m["revisions"].([]any)
	if code != 200 || len(revs) != 2 {
		t.Fatalf("list: %d %v", code, m)
	}
	first, second := revs[0].(map[string]any), revs[1].(map[string]any)
	if first["revision"] != "v2" || first["status"] != "inactive" || second["revision"] != "v1" || second["status"] != "active" ||
		second["pushed_by"] != "ci" || second["size"] != float64(len(v1)) || second["pushed_at"] == "" {
		t.Fatalf("list newest first with status: %v", revs)
	}
	code, m, _, _ = k.call(t, http.MethodGet, "/v1/bundles/active", k.read, nil)
	if code != 200 || m["revision"] != "v1" || m["status"] != "active" {
		t.Fatalf("active: %d %v", code, m)
	}
	code, _, raw, hdr := k.call(t, http.MethodGet, "/v1/bundles/v2", k.read, nil)
	if code != 200 || !bytes.Equal(raw, v2) || hdr.Get("Content-Type") != "application/gzip" ||
		hdr.Get("Content-Disposition") != `attachment; filename=bundle-v2.tar.gz` {
		t.Fatalf("download: %d %d bytes %v", code, len(raw), hdr)
	}
	// Forward to v2, back to v1, forward again.
	for _, step := range []struct {
		rev    string
		delete bool
	}{{"v2", true}, {"v1", false}, {"v2", true}} {
		code, m, _, _ = k.call(t, http.MethodPost, "/v1/bundles/"+step.rev+"/activate", k.write, nil)
		if code != 200 || m["revision"] != step.rev || m["activated"] != true {
			t.Fatalf("activate %s: %d %v", step.rev, code, m)
		}
		if ok, rev := k.decideRevision(t, "alice", "delete"); ok != step.delete || rev != step.rev {
			t.Fatalf("after activating %s: %v %s", step.rev, ok, rev)
		}
	}
	code, m, _, _ = k.call(t, http.MethodGet, "/v1/status", "", nil)
	if b := m["bundle"].(map[string]any); code != 200 || b["source"] != "push" || b["revision"] != "v2" || b["sources"].([]any)[0] != "push" {
		t.Fatalf("status: %v", m)
	}
	for _, p := range []string{"/v1/bundles/nope", "/v1/bundles/nope/activate"} {
		method := http.MethodGet
		if strings.HasSuffix(p, "/activate") {
			method = http.MethodPost
		}
		code, m, _, _ = k.call(t, method, p, k.write, nil)
		if code != 404 || errCode(m) != CodeNotFound {
			t.Fatalf("%s %s: %d %v", method, p, code, m)
		}
	}
}

// TestRevisionsWithColonsAndSlashes: a revision is any string a manifest
// holds; percent-encoded in the path it can be downloaded and activated.
func TestRevisionsWithColonsAndSlashes(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	for _, rev := range []string{"sha256:" + strings.Repeat("0f", 32), "release/2026-12 #1"} {
		a := bundleArchive(t, rev, goodFiles(policyV1))
		if code, m := k.push(t, a, "?activate=false"); code != 201 || m["revision"] != rev {
			t.Fatalf("push %q: %d %v", rev, code, m)
		}
		esc := url.PathEscape(rev)
		code, _, raw, hdr := k.call(t, http.MethodGet, "/v1/bundles/"+esc, k.read, nil)
		if code != 200 || !bytes.Equal(raw, a) || strings.ContainsAny(hdr.Get("Content-Disposition"), "/:#") {
			t.Fatalf("download %q: %d %v", rev, code, hdr)
		}
		code, m, _, _ := k.call(t, http.MethodPost, "/v1/bundles/"+esc+"/activate", k.write, nil)
		if code != 200 || m["revision"] != rev {
			t.Fatalf("activate %q: %d %v", rev, code, m)
		}
		if _, served := k.decideRevision(t, "alice", "read"); served != rev {
			t.Fatalf("serves %q, want %q", served, rev)
		}
	}
	if code, m := k.push(t, bundleArchive(t, "active", goodFiles(policyV1)), ""); code != 400 || errCode(m) != CodeBundleUnreadable {
		t.Fatalf("the reserved revision: %d %v", code, m)
	}
	// Go's client will not send a bad escape; write the request by hand.
	conn, err := net.Dial("tcp", strings.TrimPrefix(k.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/bundles/bad%%zz HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", k.read)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad escape: %d", resp.StatusCode)
	}
}

func TestPushErrors(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	good := bundleArchive(t, "good", goodFiles(policyV1))
	if code, m := k.push(t, good, ""); code != 201 {
		t.Fatalf("good: %d %v", code, m)
	}
	brokenCEL := strings.Replace(policyV1, "condition: variables.is_owner", "condition: variables.is_owner &&", 1)
	cases := []struct {
		name    string
		ctype   string
		auth    string
		query   string
		archive []byte
		status  int
		code    string
		want    []string // substrings of the message or of the details
	}{
		{"wrong content type", "application/json", k.write, "", good, 415, CodeUnsupportedMedia, nil},
		{"no token", "application/gzip", "", "", good, 401, CodeUnauthorized, nil},
		{"read scope cannot push", "application/gzip", k.read, "", good, 403, CodeForbidden, nil},
		{"decide scope cannot push", "application/gzip", "Bearer " + k.kit.token(t, "gw", ScopeDecide), "", good, 403, CodeForbidden, nil},
		{"bad activate", "application/gzip", k.write, "?activate=maybe", good, 400, CodeBadRequest, nil},
		{"empty body", "application/gzip", k.write, "", nil, 400, CodeBundleUnreadable, []string{"gzip"}},
		{"escaping entry", "application/gzip", k.write, "", targz(t, tarEntry{name: "../../etc/x.rego", body: "package x"}), 400, CodeBundleUnreadable, []string{`"../../etc/x.rego"`}},
		{"every compile error", "application/gzip", k.write, "", bundleArchive(t, "bad", map[string]string{
			"a.verdict.yaml": brokenCEL,
			"b.verdict.yaml": strings.Replace(policyV1, "name: documents", "name: other", 1) + "  - id: x\n    effect: allow\n    condition: \"1 + 2\"\n",
		}), 422, CodeBundleInvalid, []string{"a.verdict.yaml:", "b.verdict.yaml:", "bool"}},
		{"failing test", "application/gzip", k.write, "", bundleArchive(t, "bad", map[string]string{
			"docs.verdict.yaml": policyV1, "docs_test.yaml": strings.Replace(ownerTests, "expect: false", "expect: true", 1),
		}), 422, CodeBundleTests, []string{`docs_test.yaml:5: test "stranger reads" failed`}},
		{"conflict", "application/gzip", k.write, "", bundleArchive(t, "good", goodFiles(policyV2)), 409, CodeRevisionConflict, []string{`"good"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m, raw, _, err := request(http.MethodPost, k.url+"/v1/bundles"+tc.query, tc.ctype, tc.auth, tc.archive)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.status || errCode(m) != tc.code {
				t.Fatalf("status %d %s, want %d %s", code, raw, tc.status, tc.code)
			}
			e := m["error"].(map[string]any)
			text := e["message"].(string)
			if _, ok := e["details"]; ok {
				text += "\n" + strings.Join(details(m), "\n")
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q not in %s", w, text)
				}
			}
		})
	}
	// Two files, two problems: both listed, each as file:line:col.
	_, m := k.push(t, cases[7].archive, "")
	if d := details(m); len(d) < 2 || !strings.HasPrefix(d[0], "a.verdict.yaml:") {
		t.Fatalf("details %v", d)
	}
	// Nothing of it was stored, and good serves.
	revs, err := k.life.Revisions(context.Background())
	if err != nil || len(revs) != 1 || revs[0].Revision != "good" {
		t.Fatalf("stored after rejections: %v %v", revs, err)
	}
	if ok, rev := k.decideRevision(t, "alice", "read"); !ok || rev != "good" {
		t.Fatalf("after rejections: %v %s", ok, rev)
	}
}

// TestBundleBodyLimits: a push may be much larger than server.body_limit,
// up to the bundle limit, while /v1/decide still refuses more than its own.
func TestBundleBodyLimits(t *testing.T) {
	l := bundles.DefaultLimits()
	l.MaxCompressedBytes = 3 << 20
	k := startBundles(t, t.TempDir(), l)
	blob := make([]byte, 2<<20) // random: gzip cannot shrink it under 1 MiB
	rand.Read(blob)
	files := goodFiles(policyV1)
	files["blob.bin"] = string(blob)
	big := bundleArchive(t, "big", files)
	if len(big) <= DefaultConfig().BodyLimit {
		t.Fatalf("archive of %d bytes is not over the decide limit", len(big))
	}
	if code, m := k.push(t, big, ""); code != 201 {
		t.Fatalf("2 MiB push: %d %v", code, m)
	}
	// Over a limit, the server answers from the headers and closes without
	// reading the body; a client still writing it may see the reset before
	// the answer, so these send the headers only.
	if code, m := declareBody(t, k.url, "/v1/bundles", "application/gzip", k.write, 4<<20); code != 413 || errCode(m) != CodeTooLarge {
		t.Fatalf("over the bundle limit: %d %v", code, m)
	}
	if code, m := declareBody(t, k.url, "/v1/decide", "application/json", "", 1<<20+1); code != 413 || errCode(m) != CodeTooLarge {
		t.Fatalf("decide over 1 MiB: %d %v", code, m)
	}
	// The other bundle routes keep the small limit too.
	if code, m := declareBody(t, k.url, "/v1/bundles/big/activate", "application/gzip", k.write, int64(len(big))); code != 413 || errCode(m) != CodeTooLarge {
		t.Fatalf("activate with a 2 MiB body: %d %v", code, m)
	}
}

// declareBody sends a POST whose headers announce a body of size bytes,
// sends none of it, and returns the status and JSON answer.
func declareBody(t *testing.T, base, path, ctype, auth string, size int64) (int, map[string]any) {
	t.Helper()
	code, m, err := declare(base, path, ctype, auth, size)
	if err != nil {
		t.Fatal(err)
	}
	return code, m
}

// declare is declareBody for any goroutine: errors come back.
func declare(base, path, ctype, auth string, size int64) (int, map[string]any, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n", path, u.Host, ctype, size)
	if auth != "" {
		hdr += "Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// TestBrokenBundlesNeverReplaceTheActiveOne is guarantee 1 under load:
// while several goroutines decide without pause, ten kinds of broken bundle
// are pushed concurrently; every push gets its 4xx and every decision comes
// from the good revision with the good answer. Then a restart on the same
// store serves the last active revision.
//
// Unsigned bundles with require_signature are left to the signing tests
// (bundles.Verify in Manager.Prepare): this harness trusts any bundle.
func TestBrokenBundlesNeverReplaceTheActiveOne(t *testing.T) {
	dir := t.TempDir()
	l := bundles.DefaultLimits()
	l.MaxCompressedBytes = 256 << 10
	k := startBundles(t, dir, l)
	if code, m := k.push(t, bundleArchive(t, "good", goodFiles(policyV1)), ""); code != 201 {
		t.Fatalf("good: %d %v", code, m)
	}
	good := bundleArchive(t, "other", goodFiles(policyV1))
	noise := make([]byte, 300<<10)
	rand.Read(noise)
	rego := "package verdict\n\ndecision := true if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"})\n}\n"
	broken := []struct {
		name    string
		archive []byte
		status  int
		code    string
	}{
		{"not gzip", []byte("this is not an archive"), 400, CodeBundleUnreadable},
		{"truncated", good[:len(good)/2], 400, CodeBundleUnreadable},
		{"dot-dot path", targz(t, tarEntry{name: "a/../../x.verdict.yaml", body: policyV1}), 400, CodeBundleUnreadable},
		{"symlink", targz(t, tarEntry{name: "docs.verdict.yaml", typ: tar.TypeSymlink, link: "/etc/passwd"}), 400, CodeBundleUnreadable},
		{"CEL syntax error", bundleArchive(t, "bad-cel", map[string]string{"docs.verdict.yaml": strings.Replace(policyV1, "variables.is_owner\n", "variables.is_owner ((\n", 1)}), 422, CodeBundleInvalid},
		{"non-bool condition", bundleArchive(t, "bad-type", map[string]string{"docs.verdict.yaml": strings.Replace(policyV1, "condition: variables.is_owner", `condition: "subject.id + 'x'"`, 1)}), 422, CodeBundleInvalid},
		{"rego http.send", bundleArchive(t, "bad-rego", map[string]string{"p.rego": rego}), 422, CodeBundleInvalid},
		{"failing test", bundleArchive(t, "bad-test", map[string]string{"docs.verdict.yaml": policyV1, "docs_test.yaml": strings.Replace(ownerTests, "expect: true", "expect: false", 1)}), 422, CodeBundleTests},
		{"oversized", bundleArchive(t, "big", map[string]string{"docs.verdict.yaml": policyV1, "noise.bin": string(noise)}), 413, CodeTooLarge},
		{"revision conflict", bundleArchive(t, "good", goodFiles(policyV2)), 409, CodeRevisionConflict},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		decisions int
		bad       []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad = append(bad, fmt.Sprintf(format, args...))
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				user, want := "alice", true
				if i%2 == 1 {
					user, want = "bob", false
				}
				code, m, raw, _, err := request(http.MethodPost, k.url+"/v1/decide", "application/json", "", []byte(body(user, "read", "alice")))
				if err != nil || code != 200 {
					fail("decide: %d %s %v", code, raw, err)
					return
				}
				rev := m["context"].(map[string]any)["revision"]
				if m["decision"] != want || rev != "good" {
					fail("decision %v from %v for %s, want %v from good", m["decision"], rev, user, want)
				}
				mu.Lock()
				decisions++
				mu.Unlock()
			}
		}()
	}
	var pushes sync.WaitGroup
	for round := 0; round < 3; round++ {
		for _, b := range broken {
			pushes.Add(1)
			go func() {
				defer pushes.Done()
				var (
					code int
					m    map[string]any
					raw  []byte
					err  error
				)
				if b.status == http.StatusRequestEntityTooLarge {
					// Refused from the headers, and the connection closed
					// while a client may still be writing the body: send the
					// headers only, so the answer cannot be lost in a reset.
					code, m, err = declare(k.url, "/v1/bundles", "application/gzip", k.write, int64(len(b.archive)))
				} else {
					code, m, raw, _, err = request(http.MethodPost, k.url+"/v1/bundles", "application/gzip", k.write, b.archive)
				}
				if err != nil {
					fail("%s: %v", b.name, err)
					return
				}
				if code != b.status || errCode(m) != b.code {
					fail("%s: %d %s, want %d %s", b.name, code, raw, b.status, b.code)
				}
			}()
		}
	}
	pushes.Wait()
	cancel()
	wg.Wait()
	for _, b := range bad {
		t.Error(b)
	}
	if decisions == 0 {
		t.Fatal("no decision was made during the pushes")
	}
	revs, _ := k.life.Revisions(context.Background())
	if len(revs) != 1 {
		t.Fatalf("broken bundles were stored: %v", revs)
	}

	// v2, then roll back to good: a restart serves good.
	if code, m := k.push(t, bundleArchive(t, "v2", goodFiles(policyV2)), ""); code != 201 {
		t.Fatalf("v2: %d %v", code, m)
	}
	if code, m, _, _ := k.call(t, http.MethodPost, "/v1/bundles/good/activate", k.write, nil); code != 200 {
		t.Fatalf("roll back: %d %v", code, m)
	}
	k.stop()
	k.st.Close()
	k2 := startBundles(t, dir, l)
	if ok, rev := k2.decideRevision(t, "alice", "delete"); ok || rev != "good" {
		t.Fatalf("after restart: %v %s, want the rolled-back good", ok, rev)
	}
	if code, m, _, _ := k2.call(t, http.MethodPost, "/v1/bundles/v2/activate", k2.write, nil); code != 200 {
		t.Fatalf("forward after restart: %d %v", code, m)
	}
	if ok, rev := k2.decideRevision(t, "alice", "delete"); !ok || rev != "v2" {
		t.Fatalf("forward: %v %s", ok, rev)
	}
}

// TestActiveBundleFromPaths: a server serving bundles from disk says so.
func TestActiveBundleFromPaths(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	dir := t.TempDir()
	if err := writeFiles(dir, goodFiles(policyV1)); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.LoadPaths(context.Background(), []string{dir}); err != nil {
		t.Fatal(err)
	}
	kit := newAuthKit(t)
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, true), WithBundleAdmin(bundles.NewLifecycle(mgr, storeadapt.Revisions(st, store.DefaultNamespace), nil)))
	resp, m := h.do(mustReq(t, http.MethodGet, h.url+"/v1/bundles/active", "Bearer "+kit.token(t, "x", ScopeBundlesWrite)))
	if resp.StatusCode != 404 || errCode(m) != CodeNoActiveBundle || !strings.Contains(m["error"].(map[string]any)["message"].(string), dir) {
		t.Fatalf("active with disk bundles: %d %v", resp.StatusCode, m)
	}
	_, m = h.get("/v1/status")
	if m["bundle"].(map[string]any)["source"] != "paths" {
		t.Fatalf("status: %v", m)
	}
}

func mustReq(t *testing.T, method, u, auth string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	return req
}

func writeFiles(dir string, files map[string]string) error {
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
