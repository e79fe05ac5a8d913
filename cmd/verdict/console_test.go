package main

import (
	"bytes"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
)

// consoleBrowser is a cookie-keeping HTTP client that, like a test of a
// browser's requests, does not follow redirects (their targets are
// checked).
type consoleBrowser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleBrowser(t *testing.T, base string) *consoleBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &consoleBrowser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *consoleBrowser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// upload posts files (name → content) as the multipart field of a form,
// with the CSRF token and, when activate, the activate box ticked.
func (b *consoleBrowser) upload(path, csrf, field string, files map[string]string, activate bool) (*http.Response, string) {
	b.t.Helper()
	fields := map[string]string{"csrf": csrf}
	if activate {
		fields["activate"] = "on"
	}
	return b.multipart(path, fields, field, files)
}

// multipart posts a multipart form of fields and files (name → content)
// in the file field field.
func (b *consoleBrowser) multipart(path string, fields map[string]string, field string, files map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	for name, content := range files {
		part, err := w.CreateFormFile(field, name)
		if err != nil {
			b.t.Fatal(err)
		}
		_, _ = part.Write([]byte(content))
	}
	_ = w.Close()
	req, err := http.NewRequest("POST", b.base+path, &body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the form on page path.
func (b *consoleBrowser) csrf(path string) string {
	b.t.Helper()
	resp, page := b.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF field: %.300s", path, resp.StatusCode, page)
	}
	return m[1]
}

// docSchema is v2's schema of resource type doc (the playground shows it).
const docSchema = `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
 "properties": {"resource": {"properties": {"properties": {"properties": {"owner": {"type": "string"}}}}}}}`

// consoleServe starts a serve (--dev) whose store has an admin client
// "ops" and a decide-only client "gw", and two pushed revisions: v1 (the
// owners rule, with its tests) and v2 (also everyone-reads, so that the
// playground and the preview can tell them apart, and a schema of doc), v2
// active. It returns
// the base URL and the two clients' secrets; the server stops with t.
func consoleServe(t *testing.T) (base, ops, gw string) {
	t.Helper()
	dataDir := t.TempDir()
	ops, gw = addClient(t, dataDir, "ops", "verdict:admin"), addClient(t, dataDir, "gw", "verdict:decide")
	t.Setenv("VERDICT_CLIENT_SECRET", addClient(t, dataDir, "ci", "verdict:bundles:write"))
	addr := freeAddr(t)
	base = "http://" + addr
	stop := serveDev(t, addr, dataDir)
	t.Cleanup(func() { stop() })
	everyone := policy + "  - id: everyone-reads\n    effect: allow\n    actions: [read]\n    condition: \"true\"\n"
	for _, push := range []struct {
		rev   string
		files map[string]string
	}{{"v1", map[string]string{"p.verdict.yaml": policy, "p_test.yaml": tests}}, {"v2", map[string]string{"p.verdict.yaml": everyone, "schemas/doc.json": docSchema}}} {
		push.files[".manifest"] = `{"revision":"` + push.rev + `"}`
		if code, out, errOut := cli(t, "", "bundle", "push", bundleDir(t, push.files), "--server", base, "--client-id", "ci"); code != 0 {
			t.Fatalf("push %s: %d %s %s", push.rev, code, out, errOut)
		}
	}
	return base, ops, gw
}

// TestConsoleSignInAndRollback drives the console of a real serve over
// HTTP as a browser's requests: only a client with verdict:admin signs in,
// every form needs its CSRF token, the overview and the revisions show
// what is stored and active, and a confirmed activation rolls back.
func TestConsoleSignInAndRollback(t *testing.T) {
	base, ops, gw := consoleServe(t)

	b := newConsoleBrowser(t, base)
	defer b.c.CloseIdleConnections()
	if resp, _ := b.do("GET", "/console", nil); resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("not signed in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	token := b.csrf("/console/login")
	login := func(id, secret, csrf string) (*http.Response, string) {
		return b.do("POST", "/console/login", url.Values{"csrf": {csrf}, "client_id": {id}, "client_secret": {secret}})
	}
	for _, tc := range []struct {
		name, id, secret, csrf string
		status                 int
		says                   string
	}{
		{"no CSRF token", "ops", ops, "", 403, "another site"},
		{"wrong secret", "ops", "nope", token, 401, "Wrong client id or secret"},
		{"unknown client", "who", ops, token, 401, "Wrong client id or secret"},
		{"no admin scope", "gw", gw, token, 403, "lacks the verdict:admin scope"},
		{"empty secret", "ops", "", token, 400, "Enter the client id"},
	} {
		resp, page := login(tc.id, tc.secret, tc.csrf)
		if resp.StatusCode != tc.status || !strings.Contains(page, tc.says) {
			t.Errorf("%s: %d, want %d saying %q: %.400s", tc.name, resp.StatusCode, tc.status, tc.says, page)
		}
	}
	if resp, _ := b.do("GET", "/console", nil); resp.StatusCode != 303 {
		t.Fatalf("a refused sign-in signed in: %d", resp.StatusCode)
	}
	resp, _ := login("ops", ops, token)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"verdict_console=", "httponly", "samesite=strict", "path=/console", "max-age="} {
		if !strings.Contains(strings.ToLower(cookie), strings.ToLower(attr)) {
			t.Errorf("console cookie %q lacks %s", cookie, attr)
		}
	}

	resp, page := b.do("GET", "/console", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `<code id="active-revision">v2</code>`) || !strings.Contains(page, "Signed in as <strong>ops</strong>") {
		t.Fatalf("overview: %d %.600s", resp.StatusCode, page)
	}
	if !strings.Contains(page, "One replica, this one: the embedded store is not shared") {
		t.Errorf("the replicas of the embedded store: %.3000s", page)
	}
	if !strings.Contains(page, "0 of 2 rules exercised by the tests; never: <code>owners</code>") {
		t.Errorf("v2's coverage (no tests): %.300s", page[strings.Index(page, "Rule coverage"):])
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	_, page = b.do("GET", "/console/revisions", nil)
	if !strings.Contains(page, `<a href="/console/revisions/v1/activate">Activate…</a>`) || strings.Contains(page, `/console/revisions/v2/activate`) {
		t.Fatalf("revisions: v1 should be activatable, v2 (active) not: %.1500s", page)
	}
	confirm := b.csrf("/console/revisions/v1/activate")
	if resp, page := b.do("POST", "/console/revisions/v1/activate", url.Values{"csrf": {"forged"}}); resp.StatusCode != 403 || !strings.Contains(page, "nothing was activated") {
		t.Fatalf("activate with a forged token: %d %.300s", resp.StatusCode, page)
	}
	if _, rev := decideRev(t, base, "read"); rev != "v2" {
		t.Fatalf("a refused activation changed the revision to %s", rev)
	}
	resp, _ = b.do("POST", "/console/revisions/v1/activate", url.Values{"csrf": {confirm}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/revisions?activated=v1" {
		t.Fatalf("activate: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, rev := decideRev(t, base, "read"); rev != "v1" {
		t.Fatalf("after the rollback: %s", rev)
	}
	if _, page := b.do("GET", "/console/revisions?activated=v1", nil); !strings.Contains(page, "Revision v1 is active") {
		t.Errorf("no notice after the rollback: %.400s", page)
	}
	if _, page := b.do("GET", "/console", nil); !strings.Contains(page, `<dd id="coverage">1 of 1 rules exercised by the tests</dd>`) {
		t.Errorf("v1's coverage: %.300s", page[strings.Index(page, "Rule coverage"):])
	}
	resp, archive := b.do("GET", "/console/revisions/v2/download", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(archive, "\x1f\x8b") {
		t.Fatalf("download: %d %q", resp.StatusCode, archive[:min(len(archive), 20)])
	}

	// The playground: the active revision (v1) with its trace, a stored
	// one (v2) by preview, bad input, the test case to download.
	pg := b.csrf("/console/playground")
	bob := `{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	resp, page = b.do("POST", "/console/playground", url.Values{"csrf": {pg}, "input": {bob}})
	if resp.StatusCode != 200 || !strings.Contains(page, `<span class="deny" id="decision">deny</span> by v1`) || !strings.Contains(page, `<table id="trace">`) ||
		!strings.Contains(page, "<code>owners</code>") {
		t.Fatalf("playground, active revision: %d %.2000s", resp.StatusCode, page)
	}
	resp, page = b.do("POST", "/console/playground", url.Values{"csrf": {pg}, "input": {bob}, "revision": {"v2"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `<span class="allow" id="decision">allow</span> by v2`) || !strings.Contains(page, "<code>everyone-reads</code>") ||
		!strings.Contains(page, `<table id="trace">`) {
		t.Fatalf("playground, stored revision v2: %d %.2000s", resp.StatusCode, page)
	}
	if _, rev := decideRev(t, base, "read"); rev != "v1" {
		t.Fatalf("the playground changed the active revision to %s", rev)
	}
	for input, says := range map[string]string{`{"subject":`: "not valid JSON", `{"subject":{"type":"user","id":"bob"},"action":{"name":"read"}}`: "resource"} {
		if resp, page := b.do("POST", "/console/playground", url.Values{"csrf": {pg}, "input": {input}}); resp.StatusCode != 400 || !strings.Contains(page, says) {
			t.Errorf("playground input %s: %d, want 400 saying %q: %.500s", input, resp.StatusCode, says, page)
		}
	}
	_, page = b.do("POST", "/console/playground", url.Values{"csrf": {pg}, "input": {bob}})
	tc := regexp.MustCompile(`(?s)<pre id="testcase">(.*?)</pre>`).FindStringSubmatch(page)
	if tc == nil || !strings.Contains(tc[1], "expect:") || !strings.Contains(tc[1], "decision: false") {
		t.Fatalf("test case: %v", tc)
	}
	resp, file := b.do("POST", "/console/playground/testcase", url.Values{"csrf": {pg}, "testcase": {html.UnescapeString(tc[1])}})
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "playground_test.yaml") || !strings.Contains(file, "id: bob") {
		t.Fatalf("test case download: %d %v %q", resp.StatusCode, resp.Header, file)
	}
	// The downloaded case is a test the bundle passes.
	withCase := bundleDir(t, map[string]string{"p.verdict.yaml": policy, "playground_test.yaml": file})
	if code, out, errOut := cli(t, "", "bundle", "test", withCase); code != 0 || !strings.Contains(out, "1 passed") {
		t.Fatalf("bundle test with the playground's case: %d %s %s\n%s", code, out, errOut, file)
	}

	// Impact preview: v2 (stored) would let bob read.
	pv := b.csrf("/console/preview")
	resp, page = b.do("POST", "/console/preview", url.Values{"csrf": {pv}, "candidate": {"v2"}, "inputs": {"[" + bob + "]"}})
	if resp.StatusCode != 200 || !strings.Contains(page, "<strong>1</strong> of 1 decisions change: 0 allow → deny, 1 deny → allow") ||
		!strings.Contains(page, "→ allow (everyone-reads): 1</h3>") || !strings.Contains(page, "user:bob read doc:1") {
		t.Fatalf("preview: %d %.3000s", resp.StatusCode, page[strings.Index(page, "<main"):])
	}
	// The same inputs as a file (the form is multipart then).
	resp, page = b.multipart("/console/preview", map[string]string{"csrf": pv, "candidate": "v2", "inputs": ""}, "inputs_file", map[string]string{"inputs.json": "[" + bob + "]"})
	if resp.StatusCode != 200 || !strings.Contains(page, "<strong>1</strong> of 1 decisions change") || !strings.Contains(page, "user:bob read doc:1") {
		t.Fatalf("preview of a file of inputs: %d %.3000s", resp.StatusCode, page)
	}
	if resp, page := b.multipart("/console/preview", map[string]string{"csrf": pv, "candidate": "v2", "inputs": "[" + bob + "]"}, "inputs_file", map[string]string{"inputs.json": "[" + bob + "]"}); resp.StatusCode != 400 || !strings.Contains(page, "not both") {
		t.Errorf("inputs in the box and as a file: %d", resp.StatusCode)
	}
	if resp, page := b.multipart("/console/preview", map[string]string{"csrf": pv, "candidate": "v2"}, "inputs_file", map[string]string{"inputs.json": "{"}); resp.StatusCode != 400 || !strings.Contains(page, "Inputs:") {
		t.Errorf("a file of inputs that is not JSON: %d", resp.StatusCode)
	}
	if resp, page := b.do("POST", "/console/preview", url.Values{"csrf": {pv}, "candidate": {"v2"}, "inputs": {"[1]"}}); resp.StatusCode != 400 || !strings.Contains(page, "inputs[0]") {
		t.Errorf("preview with a bad input: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/console/preview", url.Values{"csrf": {pv}, "candidate": {"nope"}}); resp.StatusCode != 404 {
		t.Errorf("preview of an unknown revision: %d", resp.StatusCode)
	}

	// The decision-log tail: decideRev's reads by alice (allowed by
	// owners) are there; filters keep only what matches.
	rowsOf := func(q string) string {
		_, page := b.do("GET", "/console/decisions"+q, nil)
		return page[strings.Index(page, `<table id="tail">`):]
	}
	within(t, 5*time.Second, "the tail shows alice's reads", func() bool { return strings.Contains(rowsOf(""), "user:alice") })
	if all := rowsOf(""); !strings.Contains(all, "user:alice") || !strings.Contains(all, "<code>owners</code>") {
		t.Fatalf("tail: %.1500s", all)
	}
	if denies := rowsOf("?decision=deny"); strings.Contains(denies, `class="allow"`) {
		t.Errorf("decision=deny shows allows: %.1500s", denies)
	}
	if byReason := rowsOf("?reason=owners&resource_type=doc"); !strings.Contains(byReason, "<code>owners</code>") || strings.Contains(byReason, `class="deny"`) {
		t.Errorf("reason=owners: %.1500s", byReason)
	}
	if none := rowsOf("?subject_type=robot"); strings.Contains(none, "<td>") {
		t.Errorf("subject_type=robot matched: %.800s", none)
	}

	// Push: a folder that does not compile (every problem listed with its
	// file and line), then an archive stored without activation.
	pushCSRF := b.csrf("/console/push")
	broken := strings.Replace(policy, "== subject.id", "== subject.nope(", 1)
	resp, page = b.upload("/console/push", pushCSRF, "files", map[string]string{
		"mybundle/.manifest": `{"revision":"v3"}`, "mybundle/rules/p.verdict.yaml": broken}, true)
	if resp.StatusCode != 422 || !strings.Contains(page, "bundle_invalid") || !regexp.MustCompile(`rules/p\.verdict\.yaml:\d+:\d+`).MatchString(page) {
		t.Fatalf("broken folder: %d %.2000s", resp.StatusCode, page[strings.Index(page, "<main"):])
	}
	v4, err := bundles.FromFiles(map[string][]byte{".manifest": []byte(`{"revision":"v4"}`), "p.verdict.yaml": []byte(policy), "p_test.yaml": []byte(tests)}, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	archiveV4, err := bundles.Pack(v4)
	if err != nil {
		t.Fatal(err)
	}
	resp, page = b.upload("/console/push", pushCSRF, "archive", map[string]string{"v4.tar.gz": string(archiveV4)}, false)
	if resp.StatusCode != 200 || !strings.Contains(page, "Revision <code>v4</code> stored, not activated") || !strings.Contains(page, "2 passed, 0 failed") {
		t.Fatalf("push v4: %d %.1500s", resp.StatusCode, page)
	}
	if _, rev := decideRev(t, base, "read"); rev != "v1" {
		t.Fatalf("a push without activation changed the revision to %s", rev)
	}
	// Without the console cookie the upload is refused before its body.
	anon := newConsoleBrowser(t, base)
	if resp, _ := anon.upload("/console/push", pushCSRF, "archive", map[string]string{"v5.tar.gz": string(archiveV4)}, false); resp.StatusCode != 401 {
		t.Errorf("an upload without the cookie: %d", resp.StatusCode)
	}

	consoleURL, _ := url.Parse(base + "/console")
	var kept string
	for _, c := range b.c.Jar.Cookies(consoleURL) {
		if c.Name == "verdict_console" {
			kept = c.Value
		}
	}
	if kept == "" {
		t.Fatal("no console cookie before signing out")
	}
	if resp, _ := b.do("POST", "/console/logout", url.Values{"csrf": {confirm}}); resp.StatusCode != 303 {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/console/revisions", nil); resp.StatusCode != 303 {
		t.Fatalf("after signing out: %d", resp.StatusCode)
	}
	// Signing out revoked the token: kept by someone else (a copied
	// cookie), it opens nothing, neither the console nor the API.
	thief := newConsoleBrowser(t, base)
	thief.c.Jar.SetCookies(consoleURL, []*http.Cookie{{Name: "verdict_console", Value: kept, Path: "/console"}})
	if resp, _ := thief.do("GET", "/console", nil); resp.StatusCode != 303 {
		t.Errorf("the signed-out token still opens the console: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/v1/bundles", nil)
	req.Header.Set("Authorization", "Bearer "+kept)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("the signed-out token on the API: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

// TestConsoleForPeople: a person with the verdict:admin role signs in and
// uses the console on the admin listener (server.admin_addr), where the
// sign-in pages are answered too; one without the role is sent to the
// console's sign-in page; signing out of the console ends the session.
func TestConsoleForPeople(t *testing.T) {
	dataDir := t.TempDir()
	for email, role := range map[string]string{"root@example.com": "verdict:admin", "ed@example.com": "editor"} {
		if code, _, errOut := cli(t, userPassword+"\n", "user", "add", "--email", email, "--role", role, "--password-stdin", "--data-dir", dataDir); code != 0 {
			t.Fatalf("user add %s: %s", email, errOut)
		}
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	stop, _ := serveSignIn(t, addr, dataDir, "server: {admin_addr: \""+adminAddr+"\"}\n")
	defer stop()
	base, ops := "http://"+addr, "http://"+adminAddr

	if p := newBrowser(t, base).get(base + "/console"); p.status != 404 {
		t.Errorf("the console on the public listener: %d", p.status)
	}
	admin := newBrowser(t, ops)
	if p := admin.get(ops + "/console"); p.url.Path != "/console/login" || !strings.Contains(p.body, "sign in as a person") {
		t.Fatalf("not signed in: %s %d", p.url, p.status)
	}
	p := admin.login(admin.get(ops+"/login?return=%2Fconsole"), "root@example.com", userPassword)
	if p.url.Host != adminAddr || p.url.Path != "/console" || !strings.Contains(p.body, "Signed in as <strong>root@example.com</strong>") || !strings.Contains(p.body, `id="active-revision"`) {
		t.Fatalf("the admin's console: %s %d %.500s", p.url, p.status, p.body)
	}
	// A return address the admin listener does not serve lands on the
	// console.
	if p := admin.get(ops + "/login?return=%2Faccount"); p.url.Path != "/console" {
		t.Errorf("/login?return=/account on the admin listener went to %s", p.url)
	}
	opsURL, _ := url.Parse(ops)
	session := func() *http.Cookie {
		for _, c := range admin.c.Jar.Cookies(opsURL) {
			if strings.Contains(c.Name, "session") && c.Value != "" {
				return c
			}
		}
		return nil
	}
	kept := session()
	if kept == nil {
		t.Fatal("no session cookie")
	}
	csrf := csrfField.FindStringSubmatch(admin.get(ops + "/console").body)
	if csrf == nil {
		t.Fatal("no sign-out form on the console")
	}
	req, _ := http.NewRequest("POST", ops+"/console/logout", strings.NewReader(url.Values{"csrf": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if out := admin.do(req); out.url.Path != "/console/login" || session() != nil {
		t.Fatalf("sign out: %s %d", out.url, out.status)
	}
	// The session ended on the server, not only in this browser.
	again := newBrowser(t, ops)
	again.c.Jar.SetCookies(opsURL, []*http.Cookie{kept})
	if p := again.get(ops + "/console"); p.url.Path != "/console/login" {
		t.Errorf("the ended session still opens the console: %s", p.url)
	}

	editor := newBrowser(t, ops)
	if p := editor.login(editor.get(ops+"/login?return=%2Fconsole"), "ed@example.com", userPassword); p.url.Path != "/console/login" {
		t.Fatalf("a person without the role reached %s (%d)", p.url, p.status)
	}
}
