package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/internal/testutil"
)

// scenarioFile holds the AuthZEN certification scenario as data; its header
// explains every field of a case.
const scenarioFile = "../../testdata/authzen-certification.yaml"

// scenarioCase is one request of the scenario and what its answer must be.
type scenarioCase struct {
	ID             string            `yaml:"id"`
	Name           string            `yaml:"name"`
	Path           string            `yaml:"path"`
	Paths          []string          `yaml:"paths"`
	Method         string            `yaml:"method"`
	ContentType    string            `yaml:"content_type"`
	RequestID      string            `yaml:"request_id"`
	Body           map[string]any    `yaml:"body"`
	Raw            *string           `yaml:"raw"`
	Status         int               `yaml:"status"`
	Decision       *bool             `yaml:"decision"`
	Evaluations    []*bool           `yaml:"evaluations"`
	StopAfter      *int              `yaml:"stop_after"`
	Includes       []map[string]any  `yaml:"includes"`
	Within         []map[string]any  `yaml:"within"`
	Empty          bool              `yaml:"empty"`
	Paginate       bool              `yaml:"paginate"`
	MinPages       int               `yaml:"min_pages"`
	MaxPerPage     int               `yaml:"max_per_page"`
	Repeat         int               `yaml:"repeat"`
	RepeatDecision bool              `yaml:"repeat_decision"`
	Metadata       map[string]string `yaml:"metadata"`
}

// loadScenario reads scenarioFile strictly: an unknown key is a typo that
// would silently check nothing.
func loadScenario(t *testing.T) []scenarioCase {
	t.Helper()
	raw, err := os.ReadFile(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []scenarioCase `yaml:"cases"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", scenarioFile, err)
	}
	if len(doc.Cases) < 60 {
		t.Fatalf("%s: %d cases, want the whole scenario", scenarioFile, len(doc.Cases))
	}
	seen := map[string]bool{}
	for _, c := range doc.Cases {
		if c.ID == "" || seen[c.ID] || (c.Path == "") == (len(c.Paths) == 0) || (c.Body != nil && c.Raw != nil) {
			t.Fatalf("%s: case %q: want a unique id, one of path and paths, at most one of body and raw", scenarioFile, c.ID)
		}
		seen[c.ID] = true
	}
	return doc.Cases
}

// TestAuthZENCertificationScenario runs the whole AuthZEN certification
// scenario (testdata/authzen-certification.yaml) against a real `verdict
// serve --dev`, once with the CEL and once with the Rego certification bundle.
func TestAuthZENCertificationScenario(t *testing.T) {
	cases := loadScenario(t)
	for _, b := range []struct{ engine, dir string }{
		{"cel", "../../policies/authzen-certification-cel"},
		{"rego", "../../policies/authzen-certification-rego"},
	} {
		t.Run(b.engine, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "verdict.yaml")
			// The scenario checks decisions, not deadlines: under go test
			// -race ./... on a busy 2-core machine a search's evaluation
			// could pass the 50 ms default and be denied (fail closed),
			// dropping a subject from the results (seen once in CI).
			writeFile(t, cfg, "server: {public_url: \"https://pdp.example.test\"}\nengine: {timeout: 2s}\n")
			base, client := serveReady(t, "--config", cfg, "--bundle", b.dir)
			for _, c := range cases {
				paths := c.Paths
				if c.Path != "" {
					paths = []string{c.Path}
				}
				for _, p := range paths {
					t.Run(c.ID+" "+p, func(t *testing.T) {
						r := scenarioRun{t: t, client: client, base: base, path: p, c: c, engine: b.engine}
						r.check()
					})
				}
			}
		})
	}
}

// serveReady runs `verdict serve --dev` with args on a free loopback port
// until t ends, and waits until /readyz answers 200 (a bundle is active). It
// returns the server's base URL and a client for it.
func serveReady(t *testing.T, args ...string) (base string, client *http.Client) {
	t.Helper()
	addr := freeAddr(t)
	stop := serveDev(t, addr, t.TempDir(), args...)
	t.Cleanup(func() { stop() })
	base, client = "http://"+addr, &http.Client{}
	t.Cleanup(client.CloseIdleConnections)
	testutil.WaitFor(t, "the bundle to be active", 20*time.Millisecond, func() bool {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base, client
}

// scenarioRun sends one case to one route and checks the answer.
type scenarioRun struct {
	t      *testing.T
	client *http.Client
	base   string
	path   string
	engine string
	c      scenarioCase
}

// answer is a response as the checks need it.
type answer struct {
	status   int
	header   http.Header
	raw      []byte
	doc      map[string]any
	firstKey string
}

func (r scenarioRun) check() {
	t, c := r.t, r.c
	want := c.Status
	if want == 0 {
		want = http.StatusOK
	}
	a := r.send(c.Body)
	if a.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", c.Name, a.status, want, a.raw)
	}
	if want != http.StatusOK {
		return
	}
	r.shape(a)
	switch {
	case c.Metadata != nil:
		r.metadata(a)
	case c.Decision != nil:
		if _, ok := a.doc["evaluations"]; ok {
			t.Errorf("%s: a single decision must not come with evaluations: %s", c.Name, a.raw)
		}
		if a.doc["decision"] != *c.Decision {
			t.Errorf("%s: decision %v, want %v: %s", c.Name, a.doc["decision"], *c.Decision, a.raw)
		}
	case c.Evaluations != nil:
		r.evaluations(a)
	case strings.Contains(r.path, "/search/"):
		r.search(a)
	default:
		t.Fatalf("%s: a 200 case must say what to expect", c.Name)
	}
	for i := 1; i < c.Repeat; i++ {
		again := r.send(c.Body)
		if c.RepeatDecision {
			if again.doc["decision"] != a.doc["decision"] {
				t.Errorf("%s: repeat %d decided %v, the first %v", c.Name, i, again.doc["decision"], a.doc["decision"])
			}
		} else if !bytes.Equal(again.raw, a.raw) {
			t.Errorf("%s: repeat %d answered\n%s\nthe first\n%s", c.Name, i, again.raw, a.raw)
		}
	}
}

// send posts body (or the case's raw text) with the case's method, content
// type and request id, and checks that the id comes back.
func (r scenarioRun) send(body map[string]any) answer {
	t, c := r.t, r.c
	t.Helper()
	var payload []byte
	switch {
	case c.Raw != nil:
		payload = []byte(*c.Raw)
	case body != nil:
		var err error
		if payload, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, r.base+r.path, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	switch c.ContentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "none":
	default:
		req.Header.Set("Content-Type", c.ContentType)
	}
	reqID := c.RequestID
	switch reqID {
	case "":
		reqID = "cert-" + r.engine + "-" + strings.ReplaceAll(c.ID, " ", "-")
		fallthrough
	default:
		req.Header.Set("X-Request-ID", reqID)
	case "none":
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.raw, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if reqID != "none" {
		if got := resp.Header.Get("X-Request-ID"); got != reqID {
			t.Errorf("%s: X-Request-ID %q, want %q echoed", c.Name, got, reqID)
		}
	}
	if a.status == http.StatusOK {
		if err := json.Unmarshal(a.raw, &a.doc); err != nil {
			t.Fatalf("%s: the body is not a JSON object: %v: %s", c.Name, err, a.raw)
		}
		dec := json.NewDecoder(bytes.NewReader(a.raw))
		dec.Token() // {
		if k, err := dec.Token(); err == nil {
			a.firstKey, _ = k.(string)
		}
	}
	return a
}

// shape checks what every 200 answer of the route must look like.
func (r scenarioRun) shape(a answer) {
	t, name := r.t, r.c.Name
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", name, ct)
	}
	decisionShape := func(where string, d any) {
		m, ok := d.(map[string]any)
		if !ok {
			t.Errorf("%s: %s is not an object: %v", name, where, d)
			return
		}
		if _, ok := m["decision"].(bool); !ok {
			t.Errorf("%s: %s has no boolean decision: %v", name, where, m)
		}
		if ctx, ok := m["context"]; ok {
			if _, ok := ctx.(map[string]any); !ok {
				t.Errorf("%s: %s context is not an object: %v", name, where, ctx)
			}
		}
	}
	switch {
	case strings.HasSuffix(r.path, "/evaluation"), r.c.Decision != nil:
		decisionShape("the answer", a.doc)
	case strings.HasSuffix(r.path, "/evaluations"):
		if _, ok := a.doc["decision"]; ok {
			t.Errorf("%s: no top-level decision next to evaluations: %s", name, a.raw)
		}
		evs, ok := a.doc["evaluations"].([]any)
		if !ok {
			t.Fatalf("%s: evaluations is not an array: %s", name, a.raw)
		}
		for i, e := range evs {
			decisionShape(fmt.Sprintf("evaluations[%d]", i), e)
		}
	case strings.Contains(r.path, "/search/"):
		r.searchShape(a)
	}
}

// searchShape checks one search answer: results of the searched type with
// nothing but type and id (or name), and a valid page, first when present.
func (r scenarioRun) searchShape(a answer) {
	t, name := r.t, r.c.Name
	t.Helper()
	results, ok := a.doc["results"].([]any)
	if !ok {
		t.Fatalf("%s: results is not an array: %s", name, a.raw)
	}
	kind := strings.TrimPrefix(r.path[strings.LastIndex(r.path, "/"):], "/")
	for i, res := range results {
		m, _ := res.(map[string]any)
		if kind == "action" {
			if n, ok := m["name"].(string); !ok || n == "" || len(m) != 1 {
				t.Errorf("%s: results[%d] = %v, want exactly {name}", name, i, res)
			}
			continue
		}
		searched, _ := r.c.Body[kind].(map[string]any)
		if id, ok := m["id"].(string); !ok || id == "" || m["type"] != searched["type"] || len(m) != 2 {
			t.Errorf("%s: results[%d] = %v, want exactly {type: %v, id}", name, i, res, searched["type"])
		}
	}
	p, ok := a.doc["page"]
	if !ok {
		return
	}
	if a.firstKey != "page" {
		t.Errorf("%s: page should be the first key of the answer: %s", name, a.raw)
	}
	page, ok := p.(map[string]any)
	if !ok {
		t.Fatalf("%s: page is not an object: %s", name, a.raw)
	}
	if _, ok := page["next_token"].(string); !ok {
		t.Errorf("%s: page.next_token is not a string: %s", name, a.raw)
	}
	for _, k := range []string{"count", "total"} {
		if v, ok := page[k]; ok {
			if f, ok := v.(float64); !ok || f < 0 || f != float64(int64(f)) {
				t.Errorf("%s: page.%s = %v, want a non-negative integer", name, k, v)
			}
		}
	}
	if v, ok := page["count"]; ok && v != float64(len(results)) {
		t.Errorf("%s: page.count = %v, but %d results", name, v, len(results))
	}
	if v, ok := page["properties"]; ok {
		if _, ok := v.(map[string]any); !ok {
			t.Errorf("%s: page.properties is not an object: %v", name, v)
		}
	}
}

// evaluations checks the decisions of a batch, with the short-circuit rule
// of stop_after.
func (r scenarioRun) evaluations(a answer) {
	t, c := r.t, r.c
	evs := a.doc["evaluations"].([]any)
	n := len(c.Evaluations)
	if c.StopAfter != nil {
		if len(evs) < *c.StopAfter+1 || len(evs) > n {
			t.Fatalf("%s: %d evaluations, want %d to %d: %s", c.Name, len(evs), *c.StopAfter+1, n, a.raw)
		}
	} else if len(evs) != n {
		t.Fatalf("%s: %d evaluations, want %d: %s", c.Name, len(evs), n, a.raw)
	}
	for i, e := range evs {
		if w := c.Evaluations[i]; w != nil && e.(map[string]any)["decision"] != *w {
			t.Errorf("%s: evaluations[%d] decided %v, want %v: %s", c.Name, i, e.(map[string]any)["decision"], *w, a.raw)
		}
	}
}

// search checks the results of a search, following the pages when asked.
func (r scenarioRun) search(a answer) {
	t, c := r.t, r.c
	var all []any
	pages := 0
	for {
		pages++
		results := a.doc["results"].([]any)
		if c.MaxPerPage > 0 && len(results) > c.MaxPerPage {
			t.Errorf("%s: page %d has %d results, want at most %d: %s", c.Name, pages, len(results), c.MaxPerPage, a.raw)
		}
		all = append(all, results...)
		page, _ := a.doc["page"].(map[string]any)
		next, _ := page["next_token"].(string)
		if !c.Paginate || next == "" {
			break
		}
		if pages == 10 {
			t.Fatalf("%s: still a next_token after %d pages: %s", c.Name, pages, a.raw)
		}
		body := maps.Clone(c.Body)
		body["page"] = map[string]any{"token": next}
		if a = r.send(body); a.status != http.StatusOK {
			t.Fatalf("%s: page %d: status %d: %s", c.Name, pages+1, a.status, a.raw)
		}
		r.searchShape(a)
		if _, ok := a.doc["page"]; !ok {
			t.Errorf("%s: page %d, asked for by token, has no page object: %s", c.Name, pages+1, a.raw)
		}
	}
	if pages < c.MinPages {
		t.Errorf("%s: %d page(s), want at least %d (a limit that is not applied?)", c.Name, pages, c.MinPages)
	}
	if c.Empty && len(all) != 0 {
		t.Errorf("%s: results %v, want []", c.Name, all)
	}
	has := func(set []map[string]any, x any) bool {
		return slices.ContainsFunc(set, func(m map[string]any) bool { return reflect.DeepEqual(map[string]any(m), x) })
	}
	for _, w := range c.Includes {
		if !slices.ContainsFunc(all, func(x any) bool { return reflect.DeepEqual(x, map[string]any(w)) }) {
			t.Errorf("%s: results %v lack %v", c.Name, all, w)
		}
	}
	if c.Within != nil {
		for _, x := range all {
			if !has(c.Within, x) {
				t.Errorf("%s: result %v is not one of %v", c.Name, x, c.Within)
			}
		}
	}
}

// metadata checks the discovery document: policy_decision_point is a URL
// without query or fragment, every value is set, and each endpoint is its
// default path after policy_decision_point.
func (r scenarioRun) metadata(a answer) {
	t, c := r.t, r.c
	pdp, _ := a.doc["policy_decision_point"].(string)
	u, err := url.Parse(pdp)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(pdp, "/") {
		t.Errorf("%s: policy_decision_point %q is not a URL without query, fragment or trailing /", c.Name, pdp)
	}
	for k, v := range a.doc {
		if v == nil || v == "" {
			t.Errorf("%s: %s is empty; parameters without a value must be left out", c.Name, k)
		}
	}
	for k, want := range c.Metadata {
		if strings.HasPrefix(want, "/") {
			want = pdp + want
		}
		if got := a.doc[k]; got != want {
			t.Errorf("%s: %s = %v, want %q", c.Name, k, got, want)
		}
	}
}
