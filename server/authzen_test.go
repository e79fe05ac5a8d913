package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

// recordsPolicy is the AuthZEN certification scenario's policy, plus a few
// users for paging and a rule that reads the context.
const recordsPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: records
variables:
  status: 'has(resource.properties.status) ? resource.properties.status : ""'
  admin: has(subject.properties.role) && subject.properties.role == "admin"
rules:
  - id: read
    effect: allow
    actions: [read]
    resources: [record]
    condition: subject.id != "carol"
  - id: write-live
    effect: allow
    actions: [write]
    resources: [record]
    condition: subject.id == "alice" && variables.status != "archived"
  - id: write-archived
    effect: allow
    actions: [write]
    resources: [record]
    condition: variables.status == "archived" && variables.admin
  - id: soft-delete
    effect: allow
    actions: [delete]
    condition: subject.id == "alice" && has(action.properties.soft) && action.properties.soft == true
  - id: peek
    effect: allow
    actions: [peek]
    condition: has(context.source) && context.source == "item" && !has(context.time)
`

const recordsData = `{"entities": {
  "user": [{"id": "frank"}, {"id": "alice"}, {"id": "bob", "properties": {"role": "admin"}}, {"id": "carol"}, {"id": "dave"}, {"id": "erin"}],
  "record": [{"id": "record-2", "properties": {"status": "archived"}}, {"id": "record-1", "properties": {"status": "active"}}],
  "actions": ["audit", {"name": "archive", "properties": {"bulk": true}}]
}}`

func recordsHarness(t *testing.T, cfg Config, opts ...Option) *harness {
	t.Helper()
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"records.verdict.yaml": recordsPolicy, "data.json": recordsData, ".manifest": `{"revision":"r1"}`})
	return start(t, cfg, mgr, opts...)
}

// raw posts b and returns the status, the headers and the body.
func (h *harness) raw(method, path, ctype, b string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(h.request(method, path, ctype, b, hdr...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func eval(subject, action, resource string) string {
	return fmt.Sprintf(`{"subject":%s,"action":%s,"resource":%s}`, subject, action, resource)
}

const (
	alice   = `{"type":"user","id":"alice"}`
	bob     = `{"type":"user","id":"bob"}`
	bobAdm  = `{"type":"user","id":"bob","properties":{"role":"admin"}}`
	read    = `{"name":"read"}`
	write   = `{"name":"write"}`
	rec1    = `{"type":"record","id":"record-1"}`
	rec2Arc = `{"type":"record","id":"record-2","properties":{"status":"archived"}}`
)

func TestAuthZENEvaluation(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	cases := []struct {
		name, body string
		want       bool
	}{
		{"rule 1", eval(alice, read, rec1), true},
		{"rule 2", eval(alice, write, rec1), true},
		{"rule 3", eval(bob, read, rec1), true},
		{"rule 4 (deny is 200)", eval(bob, write, rec1), false},
		{"rule 5", eval(alice, write, rec2Arc), false},
		{"rule 6", eval(bobAdm, write, rec2Arc), true},
		{"rule 7", eval(alice, `{"name":"delete","properties":{"soft":true}}`, rec1), true},
		{"rule 8", eval(alice, `{"name":"delete","properties":{"soft":false}}`, rec1), false},
		{"context", `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `,"context":{"time":"2025-06-27T18:03-07:00","ip":"192.168.1.1"}}`, true},
		{"unknown fields", `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `,"foo":"bar","futureField":{"nested":true}}`, true},
		{"unknown nested fields", eval(`{"type":"user","id":"alice","x":1}`, `{"name":"read","customAttr":"ignored"}`, `{"type":"record","id":"record-1","y":[]}`), true},
		{"evaluations is unknown here", `{"subject":` + bob + `,"action":` + write + `,"resource":` + rec1 + `,"evaluations":[{"action":{"name":"read"}}],"options":{"evaluations_semantic":"bogus"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
				resp, m := h.with(t).post(authzenEvaluation, ct, tc.body)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d: %v", ct, resp.StatusCode, m)
				}
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
				}
				d, _ := decision(t, m)
				if d != tc.want {
					t.Fatalf("%s: decision %v, want %v: %v", ct, d, tc.want, m)
				}
				// AuthZEN clients expect the decision alone; the id is in
				// the header.
				if len(m) != 1 || resp.Header.Get(decisionIDHeader) == "" {
					t.Fatalf("%s: answer %v (want {\"decision\": …} alone), decision id %q", ct, m, resp.Header.Get(decisionIDHeader))
				}
				if _, ok := m["evaluations"]; ok {
					t.Fatalf("a single evaluation has no evaluations: %v", m)
				}
			}
		})
	}
}

// authzenPOSTs are every AuthZEN route that takes a body, with a valid one.
var authzenPOSTs = map[string]string{
	authzenEvaluation:     eval(alice, read, rec1),
	authzenEvaluations:    eval(alice, read, rec1),
	authzenSearchSubject:  eval(`{"type":"user"}`, read, rec1),
	authzenSearchResource: eval(alice, read, `{"type":"record"}`),
	authzenSearchAction:   `{"subject":` + alice + `,"resource":` + rec1 + `}`,
}

func TestAuthZENBadRequests(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	single := map[string]string{
		"missing subject":        `{"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		"missing action":         `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"record-1"}}`,
		"missing resource":       `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"}}`,
		"subject without type":   `{"subject":{"id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		"subject without id":     `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		"action without name":    `{"subject":{"type":"user","id":"alice"},"action":{},"resource":{"type":"record","id":"record-1"}}`,
		"resource without type":  `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"id":"record-1"}}`,
		"resource without id":    `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"}}`,
		"subject is a string":    `{"subject":"alice","action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		"name is a number":       `{"subject":{"type":"user","id":"alice"},"action":{"name":123},"resource":{"type":"record","id":"record-1"}}`,
		"null subject":           `{"subject":null,"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		"context is a string":    `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":"x"}`,
		"properties is an array": `{"subject":{"type":"user","id":"alice","properties":[]},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
	}
	every := map[string]string{
		"empty body":      ``,
		"blank body":      "  \n",
		"malformed JSON":  `{"subject":`,
		"top-level array": `[` + eval(alice, read, rec1) + `]`,
		"top-level null":  `null`,
		"trailing data":   eval(alice, read, rec1) + `{}`,
	}
	batch := map[string]string{
		"unknown semantic":      `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + rec1 + `}],"options":{"evaluations_semantic":"bogus_value"}}`,
		"evaluations an object": `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `,"evaluations":{}}`,
		"options a string":      `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + rec1 + `}],"options":"x"}`,
	}
	search := map[string]map[string]string{
		authzenSearchSubject: {
			"missing action":          `{"subject":{"type":"user"},"resource":{"type":"record","id":"record-1"}}`,
			"resource without id":     `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record"}}`,
			"subject without type":    `{"subject":{},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
			"subject is a string":     `{"subject":"user","action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
			"action is a string":      `{"subject":{"type":"user"},"action":"read","resource":{"type":"record","id":"record-1"}}`,
			"missing subject":         `{"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
			"page is a string":        `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":"x"}`,
			"negative limit":          `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"limit":-1}}`,
			"fractional limit":        `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"limit":1.5}}`,
			"token is a number":       `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"token":7}}`,
			"token is not ours":       `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"token":"bm9wZQ"}}`,
			"action without name":     `{"subject":{"type":"user"},"action":{},"resource":{"type":"record","id":"record-1"}}`,
			"resource without type":   `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"id":"record-1"}}`,
			"missing resource":        `{"subject":{"type":"user"},"action":{"name":"read"}}`,
			"subject type is numeric": `{"subject":{"type":1},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		},
		authzenSearchResource: {
			"missing subject":    `{"action":{"name":"read"},"resource":{"type":"record"}}`,
			"subject without id": `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record"}}`,
			"missing action":     `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record"}}`,
		},
		authzenSearchAction: {
			"missing resource":      `{"subject":{"type":"user","id":"alice"}}`,
			"resource without id":   `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record"}}`,
			"subject without id":    `{"subject":{"type":"user"},"resource":{"type":"record","id":"record-1"}}`,
			"missing subject":       `{"resource":{"type":"record","id":"record-1"}}`,
			"subject without type":  `{"subject":{"id":"alice"},"resource":{"type":"record","id":"record-1"}}`,
			"resource is a string":  `{"subject":{"type":"user","id":"alice"},"resource":"record-1"}`,
			"subject is a string":   `{"subject":"alice","resource":{"type":"record","id":"record-1"}}`,
			"resource without type": `{"subject":{"type":"user","id":"alice"},"resource":{"id":"record-1"}}`,
		},
	}
	check := func(t *testing.T, path, b string) {
		t.Helper()
		resp, m := h.with(t).post(path, "application/json", b)
		if resp.StatusCode != 400 {
			t.Fatalf("%s: status %d, want 400: %v", path, resp.StatusCode, m)
		}
		if e, ok := m["error"].(map[string]any); !ok || e["code"] == "" || e["message"] == "" {
			t.Fatalf("%s: error body %v", path, m)
		}
	}
	for name, b := range single {
		t.Run(name, func(t *testing.T) {
			check(t, authzenEvaluation, b)
			// The same body is a whole-payload 400 for the batch route too
			// when it holds no evaluations.
			check(t, authzenEvaluations, b)
		})
	}
	for name, b := range batch {
		t.Run(name, func(t *testing.T) { check(t, authzenEvaluations, b) })
	}
	for path, cases := range search {
		for name, b := range cases {
			t.Run(path+" "+name, func(t *testing.T) { check(t, path, b) })
		}
	}
	for path := range authzenPOSTs {
		for name, b := range every {
			t.Run(path+" "+name, func(t *testing.T) { check(t, path, b) })
		}
	}
	for path, good := range authzenPOSTs {
		t.Run(path+" content types and methods", func(t *testing.T) {
			hh := h.with(t)
			for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded"} {
				resp, m := hh.post(path, ct, good)
				if resp.StatusCode != 415 || m["error"].(map[string]any)["code"] != CodeUnsupportedMedia {
					t.Fatalf("Content-Type %q: %d %v", ct, resp.StatusCode, m)
				}
			}
			for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
				resp, body := hh.raw(method, path, "application/json", good)
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
					t.Fatalf("%s: %d Allow=%q %s", method, resp.StatusCode, resp.Header.Get("Allow"), body)
				}
			}
			if resp, m := hh.post(path, "application/json; charset=utf-8", good); resp.StatusCode != 200 {
				t.Fatalf("charset parameter: %d %v", resp.StatusCode, m)
			}
		})
	}
}

func TestAuthZENRequestIDIsEchoed(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	for path, good := range authzenPOSTs {
		for _, b := range []string{good, `{}`, ``} {
			id := "authzen-" + path + "-" + fmt.Sprint(len(b))
			resp, _ := h.raw(http.MethodPost, path, "application/json", b, "X-Request-ID", id)
			if got := resp.Header.Get("X-Request-ID"); got != id {
				t.Errorf("%s (status %d): X-Request-ID %q, want %q", path, resp.StatusCode, got, id)
			}
		}
		if resp, _ := h.raw(http.MethodPost, path, "application/json", good); resp.StatusCode != 200 || resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("%s without an id: %d, id %q", path, resp.StatusCode, resp.Header.Get("X-Request-ID"))
		}
	}
	resp, _ := h.raw(http.MethodGet, authzenEvaluation, "", "", "X-Request-ID", "on-405")
	if resp.Header.Get("X-Request-ID") != "on-405" {
		t.Errorf("405 lost the request id")
	}
}

// decisions are the decisions of an evaluations response, which must have
// no top-level decision.
func decisions(t *testing.T, m map[string]any) ([]bool, []map[string]any) {
	t.Helper()
	if _, ok := m["decision"]; ok {
		t.Fatalf("a batch response has a top-level decision: %v", m)
	}
	items, ok := m["evaluations"].([]any)
	if !ok {
		t.Fatalf("no evaluations in %v", m)
	}
	var ds []bool
	var ctxs []map[string]any
	for _, it := range items {
		d, _ := decision(t, it.(map[string]any))
		ds = append(ds, d)
		ctx, _ := it.(map[string]any)["context"].(map[string]any) // nil: no context sent
		ctxs = append(ctxs, ctx)
	}
	return ds, ctxs
}

// batch posts an evaluations body, which must be answered 200 with the
// decisions want, and returns the items' contexts.
func (h *harness) batch(b string, want []bool) []map[string]any {
	h.t.Helper()
	resp, m := h.post(authzenEvaluations, "application/json", b)
	if resp.StatusCode != 200 {
		h.t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	got, ctxs := decisions(h.t, m)
	if !slices.Equal(got, want) {
		h.t.Fatalf("decisions %v, want %v: %v", got, want, m)
	}
	return ctxs
}

func TestAuthZENEvaluations(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	cases := []struct {
		name, body string
		want       []bool
	}{
		{"3.2.1 resources", `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + rec1 + `},{"resource":{"type":"record","id":"record-2"}}]}`, []bool{true, true}},
		{"3.2.2 actions, in order", `{"subject":` + bob + `,"resource":` + rec1 + `,"evaluations":[{"action":` + read + `},{"action":` + write + `}]}`, []bool{true, false}},
		{"3.2.3 resource properties", `{"subject":` + alice + `,"action":` + write + `,"evaluations":[{"resource":{"type":"record","id":"record-1","properties":{"status":"active"}}},{"resource":` + rec2Arc + `}]}`, []bool{true, false}},
		{"3.2.4 subject properties", `{"action":` + write + `,"resource":` + rec2Arc + `,"evaluations":[{"subject":` + alice + `},{"subject":` + bobAdm + `}]}`, []bool{false, true}},
		{"3.2.5 no defaults", `{"evaluations":[{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `},{"subject":` + bob + `,"action":` + write + `,"resource":` + rec1 + `}]}`, []bool{true, false}},
		// An item's entity replaces the default whole: the default's
		// properties (archived) do not leak into item 1, whose type comes
		// from the default.
		{"3.2.7 identity fields inherited, properties not", `{"subject":` + alice + `,"action":` + write + `,"resource":{"type":"record","properties":{"status":"archived"}},"evaluations":[{"resource":{"id":"record-1","properties":{"status":"active"}}},{"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}]}`, []bool{true, false}},
		{"whole override drops default properties", `{"subject":` + bobAdm + `,"action":` + write + `,"resource":` + rec2Arc + `,"evaluations":[{},{"subject":{"type":"user","id":"bob"}}]}`, []bool{true, false}},
		{"item context replaces the default whole", `{"subject":` + alice + `,"action":{"name":"peek"},"resource":` + rec1 + `,"context":{"time":"2025-06-27T18:03-07:00","source":"top"},"evaluations":[{},{"context":{"source":"item"}}]}`, []bool{false, true}},
		{"per-item overrides default", `{"subject":` + bob + `,"action":` + write + `,"resource":` + rec1 + `,"evaluations":[{"action":` + read + `},{}]}`, []bool{true, false}},
		{"default semantic is execute_all", `{"subject":` + bob + `,"resource":` + rec1 + `,"evaluations":[{"action":` + read + `},{"action":` + write + `},{"action":` + read + `}]}`, []bool{true, false, true}},
		{"explicit execute_all", `{"subject":` + bob + `,"resource":` + rec1 + `,"evaluations":[{"action":` + read + `},{"action":` + write + `},{"action":` + read + `}],"options":{"evaluations_semantic":"execute_all"}}`, []bool{true, false, true}},
		{"unknown options are ignored", `{"subject":` + bob + `,"resource":` + rec1 + `,"evaluations":[{"action":` + read + `}],"options":{"another_option":"value"},"foo":1}`, []bool{true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range h.with(t).batch(tc.body, tc.want) {
				if c["code"] != nil || c["reason"] != nil {
					t.Fatalf("execute_all marks no item: %v", c)
				}
			}
		})
	}
}

func TestAuthZENShortCircuit(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	cases := []struct {
		semantic string
		actions  []string
		want     []bool
	}{
		{pdp.DenyOnFirstDeny, []string{"read", "write", "read"}, []bool{true, false}},
		{pdp.PermitOnFirstPermit, []string{"write", "read", "write"}, []bool{false, true}},
		{pdp.DenyOnFirstDeny, []string{"read", "read"}, []bool{true, true}},
		{pdp.PermitOnFirstPermit, []string{"write", "write"}, []bool{false, false}},
		{pdp.DenyOnFirstDeny, []string{"write"}, []bool{false}},
	}
	for _, tc := range cases {
		t.Run(tc.semantic+" "+strings.Join(tc.actions, ","), func(t *testing.T) {
			var items []string
			for _, a := range tc.actions {
				items = append(items, `{"action":{"name":"`+a+`"}}`)
			}
			b := `{"subject":` + bob + `,"resource":` + rec1 + `,"evaluations":[` + strings.Join(items, ",") + `],"options":{"evaluations_semantic":"` + tc.semantic + `"}}`
			ctxs := h.with(t).batch(b, tc.want)
			got := tc.want
			triggered := len(got) < len(tc.actions) || (tc.semantic == pdp.DenyOnFirstDeny) != got[len(got)-1]
			for i, c := range ctxs {
				marked := c["code"] == pdp.ShortCircuitCode && c["reason"] == tc.semantic
				if want := triggered && i == len(ctxs)-1; marked != want {
					t.Fatalf("item %d: marked %v, want %v: %v", i, marked, want, c)
				}
			}
		})
	}
}

func TestAuthZENItemErrors(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	cases := []struct {
		name, body string
		want       []bool
		errAt      int
		field      string
	}{
		{"3.4.1 empty item without resource", `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + rec1 + `},{}]}`, []bool{true, false}, 1, "evaluations[1].resource"},
		{"missing subject everywhere", `{"action":` + read + `,"evaluations":[{"resource":` + rec1 + `}]}`, []bool{false}, 0, "evaluations[0].subject"},
		{"item not an object", `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `,"evaluations":[7,{}]}`, []bool{false, true}, 0, "evaluations[0]"},
		{"wrongly typed item entity", `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":"record-1"},{"resource":` + rec1 + `}]}`, []bool{false, true}, 0, "evaluations[0].resource"},
		{"item error stops deny_on_first_deny", `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{},{"resource":` + rec1 + `}],"options":{"evaluations_semantic":"deny_on_first_deny"}}`, []bool{false}, 0, "evaluations[0].resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.with(t).batch(tc.body, tc.want)[tc.errAt]
			if e, _ := c["error"].(string); !strings.HasPrefix(e, tc.field+":") || c["revision"] != "r1" || c["decision_id"] == "" ||
				!reflect.DeepEqual(c["reasons"], []any{pdp.ReasonInvalidInput}) {
				t.Fatalf("item %d context %v, want an error on %s", tc.errAt, c, tc.field)
			}
		})
	}
	// /v1/decide keeps refusing such a batch as a whole.
	if resp, m := h.post("/v1/decide", "application/json", cases[0].body); resp.StatusCode != 400 {
		t.Fatalf("/v1/decide: %d %v", resp.StatusCode, m)
	}
}

func TestAuthZENEvaluationsWithoutItemsIsASingleDecision(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	for _, tail := range []string{``, `,"evaluations":[]`, `,"evaluations":null`} {
		b := `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + tail + `}`
		resp, m := h.post(authzenEvaluations, "application/json", b)
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d %v", tail, resp.StatusCode, m)
		}
		if _, ok := m["evaluations"]; ok {
			t.Fatalf("%q: a single evaluation answered with evaluations: %v", tail, m)
		}
		if d, _ := decision(t, m); !d {
			t.Fatalf("%q: %v", tail, m)
		}
	}
}

// search posts a search body and returns the results and the page.
func (h *harness) search(path, b string) ([]any, map[string]any) {
	h.t.Helper()
	resp, raw := h.raw(http.MethodPost, path, "application/json", b)
	if resp.StatusCode != 200 {
		h.t.Fatalf("%s %s: status %d: %s", path, b, resp.StatusCode, raw)
	}
	if !strings.HasPrefix(raw, `{"page":`) {
		h.t.Fatalf("page is not the first key: %s", raw)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		h.t.Fatal(err)
	}
	results, ok := m["results"].([]any)
	if !ok {
		h.t.Fatalf("no results array: %s", raw)
	}
	return results, m["page"].(map[string]any)
}

func refs(kind string, ids ...string) []any {
	out := []any{}
	for _, id := range ids {
		if kind == "action" {
			out = append(out, map[string]any{"name": id})
		} else {
			out = append(out, map[string]any{"type": kind, "id": id})
		}
	}
	return out
}

func TestAuthZENSearch(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	cases := []struct {
		name, path, body string
		want             []any
	}{
		{"4.2.1 subjects", authzenSearchSubject, eval(`{"type":"user"}`, read, rec1), refs("user", "alice", "bob", "dave", "erin", "frank")},
		{"4.2.2 with context", authzenSearchSubject, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":{"ip":"1.2.3.4"}}`, refs("user", "alice", "bob", "dave", "erin", "frank")},
		{"stray subject id ignored", authzenSearchSubject, eval(`{"type":"user","id":"ignored-stray-id"}`, read, rec1), refs("user", "alice", "bob", "dave", "erin", "frank")},
		{"unknown page field", authzenSearchSubject, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"limit":10,"customAttr":"ignored"}}`, refs("user", "alice", "bob", "dave", "erin", "frank")},
		// The stored role of bob (admin) makes the policy allow him.
		{"4.2.4 stored subject properties", authzenSearchSubject, eval(`{"type":"user"}`, write, rec2Arc), refs("user", "bob")},
		{"request properties win over stored", authzenSearchSubject, eval(`{"type":"user","properties":{"role":"guest"}}`, write, rec2Arc), refs("user")},
		{"4.3.1 resources", authzenSearchResource, eval(alice, read, `{"type":"record"}`), refs("record", "record-1", "record-2")},
		{"stored resource properties", authzenSearchResource, eval(alice, write, `{"type":"record"}`), refs("record", "record-1")},
		{"stray resource id ignored", authzenSearchResource, eval(alice, write, `{"type":"record","id":"ignored-stray-id"}`), refs("record", "record-1")},
		{"4.3.3 resources for an admin", authzenSearchResource, eval(bobAdm, write, `{"type":"record"}`), refs("record", "record-2")},
		{"4.4.1 actions", authzenSearchAction, `{"subject":` + alice + `,"resource":` + rec1 + `}`, refs("action", "read", "write")},
		{"extra action ignored", authzenSearchAction, `{"subject":` + alice + `,"resource":` + rec1 + `,"action":{"name":"write"}}`, refs("action", "read", "write")},
		{"4.4.3 actions for an admin", authzenSearchAction, `{"subject":` + bobAdm + `,"resource":` + rec2Arc + `}`, refs("action", "read", "write")},
		{"4.6 unknown subject id", authzenSearchAction, `{"subject":{"type":"user","id":"carol"},"resource":` + rec1 + `}`, refs("action")},
		{"4.6 unknown subject type", authzenSearchSubject, eval(`{"type":"spaceship"}`, read, rec1), refs("spaceship")},
		{"unknown resource type", authzenSearchResource, eval(alice, read, `{"type":"planet"}`), refs("planet")},
		{"actions is no entity type", authzenSearchSubject, eval(`{"type":"actions"}`, read, rec1), refs("actions")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hh := h.with(t)
			got, page := hh.search(tc.path, tc.body)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("results %v, want %v", got, tc.want)
			}
			if page["next_token"] != "" || page["count"] != float64(len(tc.want)) || page["total"] != float64(len(tc.want)) {
				t.Fatalf("page %v", page)
			}
			// Idempotent: the same body again is the same response.
			again, _ := hh.search(tc.path, tc.body)
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("second answer %v", again)
			}
		})
	}
}

// A policy that reads data.entities itself sees the same properties as
// search, and data actions are candidates as well as CEL rule actions.
func TestAuthZENActionSearchOffersDataActions(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"a.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: a
rules:
  - id: bulk
    effect: allow
    condition: has(action.properties.bulk) && action.properties.bulk == true
  - id: audit
    effect: allow
    actions: [audit, read]
    condition: subject.id == "alice"
`, "data.json": recordsData})
	h := start(t, DefaultConfig(), mgr)
	got, _ := h.search(authzenSearchAction, `{"subject":`+alice+`,"resource":`+rec1+`}`)
	if want := refs("action", "archive", "audit", "read"); !reflect.DeepEqual(got, want) {
		t.Fatalf("alice: %v, want %v", got, want)
	}
	got, _ = h.search(authzenSearchAction, `{"subject":`+bob+`,"resource":`+rec1+`}`)
	if want := refs("action", "archive"); !reflect.DeepEqual(got, want) {
		t.Fatalf("bob: %v, want %v", got, want)
	}
}

func TestAuthZENSearchPaging(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	query := `"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}`
	all := refs("user", "alice", "bob", "dave", "erin", "frank")
	var got []any
	var tokens []string
	b := `{` + query + `,"page":{"limit":2}}`
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		results, page := h.search(authzenSearchSubject, b)
		got = append(got, results...)
		if page["total"] != float64(5) || page["count"] != float64(len(results)) {
			t.Fatalf("page %d: %v", pages, page)
		}
		next, _ := page["next_token"].(string)
		if next == "" {
			if pages != 2 || len(results) != 1 {
				t.Fatalf("last page is page %d with %d results", pages, len(results))
			}
			break
		}
		if len(results) != 2 {
			t.Fatalf("page %d has %d results, want the limit 2", pages, len(results))
		}
		tokens = append(tokens, next)
		// The follow-up carries only the token: the limit stays 2.
		b = `{` + query + `,"page":{"token":"` + next + `"}}`
	}
	if !reflect.DeepEqual(got, all) {
		t.Fatalf("pages together %v, want %v", got, all)
	}
	// A limit given with a token wins.
	results, page := h.search(authzenSearchSubject, `{`+query+`,"page":{"token":"`+tokens[0]+`","limit":10}}`)
	if !reflect.DeepEqual(results, all[2:]) || page["next_token"] != "" {
		t.Fatalf("token with limit 10: %v %v", results, page)
	}
	// limit 0 is no limit; a limit over the total is one page.
	for _, lim := range []string{"0", "5", "100"} {
		if results, page := h.search(authzenSearchSubject, `{`+query+`,"page":{"limit":`+lim+`}}`); !reflect.DeepEqual(results, all) || page["next_token"] != "" {
			t.Fatalf("limit %s: %v %v", lim, results, page)
		}
	}
	bad := map[string]string{
		"another action":   `{"subject":{"type":"user"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"},"page":{"token":"` + tokens[0] + `"}}`,
		"another resource": `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-2"},"page":{"token":"` + tokens[0] + `"}}`,
		"another endpoint": `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"},"page":{"token":"` + tokens[0] + `"}}`,
		"another context":  `{` + query + `,"context":{"a":1},"page":{"token":"` + tokens[0] + `"}}`,
		"truncated":        `{` + query + `,"page":{"token":"` + tokens[0][:len(tokens[0])-2] + `"}}`,
		"not base64":       `{` + query + `,"page":{"token":"%%%"}}`,
	}
	for name, b := range bad {
		path := authzenSearchSubject
		if name == "another endpoint" {
			path = authzenSearchResource
		}
		resp, m := h.post(path, "application/json", b)
		if resp.StatusCode != 400 || m["error"].(map[string]any)["code"] != CodeInvalidPageToken {
			t.Errorf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
	// A token from before a bundle change is refused, even when the new
	// bundle is the same.
	activate(t, h.mgr, map[string]string{"records.verdict.yaml": recordsPolicy, "data.json": recordsData})
	resp, m := h.post(authzenSearchSubject, "application/json", `{`+query+`,"page":{"token":"`+tokens[0]+`"}}`)
	if resp.StatusCode != 400 || m["error"].(map[string]any)["code"] != CodeInvalidPageToken {
		t.Fatalf("old bundle's token: %d %v", resp.StatusCode, m)
	}
}

func TestAuthZENSearchIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSearchCandidates = 5
	h := recordsHarness(t, cfg)
	resp, m := h.post(authzenSearchSubject, "application/json", eval(`{"type":"user"}`, read, rec1))
	if resp.StatusCode != 400 || m["error"].(map[string]any)["code"] != CodeSearchTooBroad {
		t.Fatalf("6 users over a bound of 5: %d %v", resp.StatusCode, m)
	}
	if got, _ := h.search(authzenSearchResource, eval(alice, read, `{"type":"record"}`)); len(got) != 2 {
		t.Fatalf("2 records under the bound: %v", got)
	}
	cfg.MaxSearchCandidates = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_search_candidates") {
		t.Fatalf("validate: %v", err)
	}
}

// A search that cannot decide every candidate within server.request_timeout
// is a 503, not a partial answer that looks complete.
func TestAuthZENSearchDeadline(t *testing.T) {
	mgr := slowBundle(t, 1000)
	activate(t, mgr, map[string]string{"s.verdict.yaml": `apiVersion: verdict.dev/v1
kind: Policy
name: s
rules:
  - id: slow
    effect: allow
    condition: lists.range(1000).all(i, lists.range(1000).all(j, i + j >= 0))
`, "data.json": `{"entities":{"user":[{"id":"u"},{"id":"v"},{"id":"w"}]}}`})
	cfg := DefaultConfig()
	cfg.RequestTimeout = time.Millisecond
	h := start(t, cfg, mgr)
	resp, m := h.post(authzenSearchSubject, "application/json", eval(`{"type":"user"}`, read, rec1))
	if resp.StatusCode != 503 || m["error"].(map[string]any)["code"] != CodeSearchTimeout {
		t.Fatalf("a search past the deadline: %d %v", resp.StatusCode, m)
	}
}

func TestAuthZENMetadata(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PublicURL = "https://pdp.example.com/tenant"
	h := recordsHarness(t, cfg, WithTokens(&fakeTokens{}, "https://issuer.example.com/"))
	resp, m := h.get("/.well-known/authzen-configuration")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := map[string]any{
		"policy_decision_point":       "https://pdp.example.com/tenant",
		"access_evaluation_endpoint":  "https://pdp.example.com/tenant/access/v1/evaluation",
		"access_evaluations_endpoint": "https://pdp.example.com/tenant/access/v1/evaluations",
		"search_subject_endpoint":     "https://pdp.example.com/tenant/access/v1/search/subject",
		"search_resource_endpoint":    "https://pdp.example.com/tenant/access/v1/search/resource",
		"search_action_endpoint":      "https://pdp.example.com/tenant/access/v1/search/action",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("metadata %v, want %v", m, want)
	}
	// Without public_url the token issuer is the base, without its slash;
	// without either, the URL the request came to.
	h2 := recordsHarness(t, DefaultConfig(), WithTokens(&fakeTokens{}, "https://issuer.example.com/"))
	if _, m := h2.get("/.well-known/authzen-configuration"); m["policy_decision_point"] != "https://issuer.example.com" ||
		m["search_action_endpoint"] != "https://issuer.example.com/access/v1/search/action" {
		t.Fatalf("issuer fallback: %v", m)
	}
	h3 := recordsHarness(t, DefaultConfig())
	_, m = h3.get("/.well-known/authzen-configuration")
	if m["policy_decision_point"] != h3.url || m["access_evaluation_endpoint"] != h3.url+authzenEvaluation {
		t.Fatalf("request fallback: %v (url %s)", m, h3.url)
	}
	// Every endpoint it names answers.
	for k, v := range m {
		if v == "" || v == nil {
			t.Fatalf("%s is empty", k)
		}
		if k == "policy_decision_point" {
			continue
		}
		u := v.(string)
		path := strings.TrimPrefix(u, h3.url)
		if resp, _ := h3.post(path, "application/json", authzenPOSTs[path]); resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", k, u, resp.StatusCode)
		}
	}
}

func TestPublicURLValidation(t *testing.T) {
	for _, bad := range []string{"pdp.example.com", "ftp://pdp.example.com", "https://", "https://pdp.example.com/", "https://pdp.example.com?x=1", "https://pdp.example.com#f", "https://u:p@pdp.example.com"} {
		cfg := DefaultConfig()
		cfg.PublicURL = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "public_url") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, good := range []string{"https://pdp.example.com", "http://127.0.0.1:8700", "https://pdp.example.com/tenant1"} {
		cfg := DefaultConfig()
		cfg.PublicURL = good
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// The AuthZEN routes take /v1/decide's authentication: 401 with
// WWW-Authenticate without a token, 403 without verdict:decide.
func TestAuthZENRequiresAToken(t *testing.T) {
	kit := newAuthKit(t)
	h := recordsHarness(t, DefaultConfig(), WithAuth(kit.verifier, false))
	good := "Bearer " + kit.token(t, "gw", ScopeDecide)
	for path, b := range authzenPOSTs {
		for _, tc := range []struct {
			auth   string
			status int
		}{{"", 401}, {"Bearer corrupted", 401}, {"Bearer " + kit.token(t, "gw", ScopeBundlesRead), 403}, {good, 200}} {
			hdr := []string{}
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			resp, m := h.post(path, "application/json", b, hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s with %q: %d %v", path, tc.auth, resp.StatusCode, m)
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s: no WWW-Authenticate", path)
			}
		}
	}
	if resp, _ := h.get("/.well-known/authzen-configuration"); resp.StatusCode != 200 {
		t.Fatalf("metadata is public: %d", resp.StatusCode)
	}
}

// TestAuthZENBodiesAreStable: the same AuthZEN request gets the same body
// every time (the certification suite compares them); the decision ids,
// fresh for every decision, come in the X-Verdict-Decision-Id header, one
// per item in order. /v1/decide keeps them in the body.
func TestAuthZENBodiesAreStable(t *testing.T) {
	h := recordsHarness(t, DefaultConfig())
	for _, tc := range []struct {
		path, body string
		ids        int
	}{
		{"/access/v1/evaluation", `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `}`, 1},
		{"/access/v1/evaluations", `{"subject":` + alice + `,"action":` + read + `,"evaluations":[{"resource":` + rec1 + `},{"resource":{"type":"record","id":"record-2"}}]}`, 2},
	} {
		r1, b1 := h.raw(http.MethodPost, tc.path, "application/json", tc.body)
		r2, b2 := h.raw(http.MethodPost, tc.path, "application/json", tc.body)
		if r1.StatusCode != 200 || b1 != b2 || strings.Contains(b1, "decision_id") {
			t.Fatalf("%s: bodies differ or carry decision ids:\n%s\n%s", tc.path, b1, b2)
		}
		ids1, ids2 := strings.Split(r1.Header.Get("X-Verdict-Decision-Id"), ","), strings.Split(r2.Header.Get("X-Verdict-Decision-Id"), ",")
		if len(ids1) != tc.ids || len(ids2) != tc.ids || ids1[0] == "" || ids1[0] == ids2[0] {
			t.Fatalf("%s: decision id headers %v and %v", tc.path, ids1, ids2)
		}
	}
	_, b := h.raw(http.MethodPost, "/v1/decide", "application/json", `{"subject":`+alice+`,"action":`+read+`,"resource":`+rec1+`}`)
	if !strings.Contains(b, `"decision_id":"`) {
		t.Fatalf("/v1/decide must keep decision_id in the body: %s", b)
	}
}

// TestAuthZENContextOnRequest: reasons and revision come back when the
// request asks (X-Verdict-Reasons: true) or the server always sends them
// (server.authzen_reasons); a batch item's context is sent only when it
// carries something.
func TestAuthZENContextOnRequest(t *testing.T) {
	one := `{"subject":` + alice + `,"action":` + read + `,"resource":` + rec1 + `}`
	h := recordsHarness(t, DefaultConfig())
	resp, m := h.post(authzenEvaluation, "application/json", one, reasonsHeader, "true")
	if ctx, _ := m["context"].(map[string]any); resp.StatusCode != 200 || ctx["revision"] != "r1" || len(ctx["reasons"].([]any)) == 0 {
		t.Fatalf("with %s: %d %v", reasonsHeader, resp.StatusCode, m)
	}
	cfg := DefaultConfig()
	cfg.AuthZENReasons = true
	h2 := recordsHarness(t, cfg)
	if _, m := h2.post(authzenEvaluation, "application/json", one); m["context"] == nil {
		t.Fatalf("with server.authzen_reasons: %v", m)
	}
	// /v1/decide is not AuthZEN: its context is always there.
	if _, m := h.post("/v1/decide", "application/json", one); m["context"] == nil {
		t.Fatalf("/v1/decide without context: %v", m)
	}
	_, raw := h.post(authzenEvaluations, "application/json", `{"subject":`+alice+`,"action":`+read+`,"evaluations":[{"resource":`+rec1+`},{}]}`)
	items := raw["evaluations"].([]any)
	if first := items[0].(map[string]any); len(first) != 1 {
		t.Errorf("a plain batch item: %v, want the decision alone", first)
	}
	if second := items[1].(map[string]any); second["context"] == nil {
		t.Errorf("an item with an error lost its context: %v", second)
	}
}
