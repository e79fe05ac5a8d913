package server

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
)

// playgroundOwnedSchema is a $ref target only: it binds no resource type.
const playgroundOwnedSchema = `{"type": "object", "required": ["owner"], "properties": {"owner": {"type": "string"}}}`

// documentSchema is a schema for resource type document titled title (with
// characters the page must escape).
func documentSchema(title string) string {
	return `{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"` + title + `","type":"object",` +
		`"properties":{"resource":{"properties":{"properties":{"$ref":"common/owned.json"}}}}}`
}

// signedInConsole signs requests in to the console the way the sign-in
// leaves a browser: the console cookie holding a verdict:admin token, and
// a CSRF cookie that the forms repeat.
type signedInConsole struct {
	t           *testing.T
	url, cookie string
	csrf        string
}

func (s signedInConsole) do(method, path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", s.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Cookie", s.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, string(raw)
}

var (
	schemaPre     = regexp.MustCompile(`(?s)<pre id="schema">(.*?)</pre>`)
	schemaSection = regexp.MustCompile(`(?s)<section aria-labelledby="schema-heading" class="schema">\s*<h2 id="schema-heading">(.*?)</h2>(.*?)</section>`)
	inlineStyle   = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// TestConsolePlaygroundShowsTheSchema: beside the editor, the playground
// shows the JSON Schema of the input's resource type in the revision it
// decides with (the active one, or a stored one read from its archive),
// the types that have one when this type has none, a sentence when the
// revision has no schemas, a note when the revision cannot be read, and
// nothing for an input without a resource type.
func TestConsolePlaygroundShowsTheSchema(t *testing.T) {
	k := startBundles(t, t.TempDir(), bundles.DefaultLimits())
	oldTitle, newTitle := `Documents of v1 & <their> owners`, `Documents of v3 & 'their' owners`
	withSchemas := func(title string) map[string]string {
		files := goodFiles(policyV1)
		files["schemas/document.json"] = documentSchema(title)
		files["schemas/order.json"] = `{"type":"object"}`
		files["schemas/common/owned.json"] = playgroundOwnedSchema
		return files
	}
	for rev, files := range map[string]map[string]string{"v1": withSchemas(oldTitle), "v2": goodFiles(policyV1), "v3": withSchemas(newTitle)} {
		if code, m := k.push(t, bundleArchive(t, rev, files), "?activate=false"); code != 201 {
			t.Fatalf("push %s: %d %v", rev, code, m)
		}
	}
	if code, m, _, _ := k.call(t, http.MethodPost, "/v1/bundles/v3/activate", k.write, nil); code != 200 {
		t.Fatalf("activate v3: %d %v", code, m)
	}

	csrf := strings.Repeat("c", 43)
	s := signedInConsole{t: t, url: k.url, csrf: csrf,
		cookie: cookieConsole + "=" + k.kit.token(t, "ops", ScopeAdmin) + "; " + cookieCSRF + "=" + csrf}
	indented := func(title string) string {
		return "{\n  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n  \"title\": \"" + title + "\",\n  \"type\": \"object\",\n" +
			"  \"properties\": {\n    \"resource\": {\n      \"properties\": {\n        \"properties\": {\n          \"$ref\": \"common/owned.json\"\n        }\n      }\n    }\n  }\n}"
	}
	input := func(typ string) string {
		return `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"` + typ + `","id":"1","properties":{"owner":"alice"}}}`
	}

	type want struct {
		status   int
		decision string // "by <revision>" of the result, "" when none
		schema   string // the text of <pre id="schema">, unescaped
		revision string // the revision the schema file is named of
		says     string // a sentence of the schema section
		section  bool   // whether the section is there at all
	}
	for _, tc := range []struct {
		name string
		get  bool
		form url.Values
		want want
	}{
		{"the sample input (document) on the GET page", true, nil,
			want{status: 200, schema: indented(newTitle), revision: "v3", section: true}},
		{"the active revision", false, url.Values{"input": {input("document")}},
			want{status: 200, decision: "by v3", schema: indented(newTitle), revision: "v3", section: true}},
		{"the active revision by name", false, url.Values{"input": {input("document")}, "revision": {"v3"}},
			want{status: 200, decision: "by v3", schema: indented(newTitle), revision: "v3", section: true}},
		{"a stored revision, not active", false, url.Values{"input": {input("document")}, "revision": {"v1"}},
			want{status: 200, decision: "by v1", schema: indented(oldTitle), revision: "v1", section: true}},
		{"a type without a schema", false, url.Values{"input": {input("folder")}},
			want{status: 200, decision: "by v3", says: "This revision has no schema for <code>folder</code>. Schemas in this revision: document, order.", section: true}},
		{"a stored revision without schemas", false, url.Values{"input": {input("document")}, "revision": {"v2"}},
			want{status: 200, decision: "by v2", says: "This revision has no schemas: its inputs are not validated.", section: true}},
		{"an unknown revision", false, url.Values{"input": {input("document")}, "revision": {"v9"}},
			want{status: 404, says: "The schemas of revision v9 could not be read (not_found)", section: true}},
		{"invalid JSON", false, url.Values{"input": {`{"resource":{"type":"document"`}},
			want{status: 400}},
		{"no resource type", false, url.Values{"input": {`{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"id":"1"}}`}},
			want{status: 400}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			var resp *http.Response
			var page string
			if tc.get {
				resp, page = s.do(http.MethodGet, "/console/playground", nil)
			} else {
				resp, page = s.do(http.MethodPost, "/console/playground", tc.form)
			}
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d: %.1500s", resp.StatusCode, tc.want.status, page)
			}
			// The page's style sheet is still the one its CSP allows.
			if st := inlineStyle.FindStringSubmatch(page); st == nil || !strings.Contains(resp.Header.Get("Content-Security-Policy"), hashOf(st[1])) {
				t.Errorf("the inline style sheet is not the one the CSP allows: %q", resp.Header.Get("Content-Security-Policy"))
			}
			if tc.want.decision != "" && !strings.Contains(page, "</span> "+tc.want.decision+"</h2>") {
				t.Errorf("no decision %s: %.2000s", tc.want.decision, page)
			}
			sec := schemaSection.FindStringSubmatch(page)
			if !tc.want.section {
				if sec != nil || strings.Contains(page, `id="schema`) || !strings.Contains(page, `<div class="playground">`) {
					t.Fatalf("a schema section for an input without a resource type: %.3000s", page)
				}
				return
			}
			if sec == nil {
				t.Fatalf("no schema section: %.3000s", page)
			}
			typ := "document"
			if strings.Contains(tc.form.Get("input"), `"folder"`) {
				typ = "folder"
			}
			if want := "Schema of <code>" + typ + "</code>"; sec[1] != want {
				t.Errorf("heading %q, want %q", sec[1], want)
			}
			if !strings.Contains(page, `<div class="playground with-schema">`) {
				t.Error("the editor and the schema are not laid out side by side")
			}
			pre := schemaPre.FindStringSubmatch(sec[2])
			if tc.want.schema == "" {
				if pre != nil {
					t.Errorf("a schema shown: %s", pre[1])
				}
				if !strings.Contains(sec[2], tc.want.says) {
					t.Errorf("the section does not say %q: %s", tc.want.says, sec[2])
				}
				return
			}
			if pre == nil {
				t.Fatalf("no <pre id=\"schema\">: %s", sec[2])
			}
			if got := html.UnescapeString(pre[1]); got != tc.want.schema {
				t.Errorf("schema\n%s\nwant\n%s", got, tc.want.schema)
			}
			if strings.Contains(pre[1], "<their>") || strings.Contains(pre[1], "'their'") || strings.Contains(pre[1], " & ") {
				t.Errorf("the schema is not escaped: %s", pre[1])
			}
			if named := "<p><code>schemas/document.json</code> of revision <code>" + tc.want.revision + "</code></p>"; !strings.Contains(sec[2], named) {
				t.Errorf("the file is not named %q: %s", named, sec[2])
			}
		})
	}
}

// hashOf is the CSP source of an inline style sheet.
func hashOf(css string) string {
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}
