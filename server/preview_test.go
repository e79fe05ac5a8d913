package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// previewPolicyV2 takes update away from owners and lets anyone read a public
// document.
var previewPolicyV2 = strings.Replace(policyV1, `actions: ["read", "update"]`, `actions: ["read"]`, 1) + `  - id: public-read
    effect: allow
    actions: ["read"]
    condition: has(resource.properties.public) && resource.properties.public == true
`

const v2Tests = `tests:
  - name: owner reads
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: true
  - name: public read
    input: {subject: {type: user, id: bob}, action: {name: read}, resource: {type: document, id: "2", properties: {public: true}}}
    expect: true
`

func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func candidateV2(t *testing.T) []byte {
	return tgz(t, map[string]string{"docs.verdict.yaml": previewPolicyV2, ".manifest": `{"revision":"v2"}`, "docs_test.yaml": v2Tests})
}

// multipartPreview builds a multipart body with the bundle part and, when
// inputs is not empty, an inputs file part.
func multipartPreview(t *testing.T, archive []byte, inputs string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("bundle", "bundle.tar.gz")
	w.Write(archive)
	if inputs != "" {
		w, _ = mw.CreateFormFile("inputs", "inputs.json")
		w.Write([]byte(inputs))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.String()
}

// decodeReport re-reads a response map as the report type.
func decodeReport(t *testing.T, m map[string]any) bundles.PreviewReport {
	t.Helper()
	raw, _ := json.Marshal(m)
	var r bundles.PreviewReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPreviewMultipart(t *testing.T) {
	h := newHarness(t)
	inputs := "[" + strings.Join([]string{
		body("bob", "read", "alice"),     // deny under both
		body("alice", "update", "alice"), // allow -> deny
		`{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"type":"document","id":"2","properties":{"public":true}}}`, // deny -> allow
		body("alice", "read", "alice"), // allow under both
	}, ",") + "]"
	ct, b := multipartPreview(t, candidateV2(t), inputs)
	resp, m := h.post("/v1/bundles/preview", ct, b)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	r := decodeReport(t, m)
	want := bundles.PreviewSummary{Total: 4, Changed: 2, AllowToDeny: 1, DenyToAllow: 1, Unchanged: 2}
	if r.Summary != want {
		t.Fatalf("summary %+v, want %+v", r.Summary, want)
	}
	if r.Active == nil || r.Active.Revision != "v1" || r.Candidate.Revision != "v2" || r.Tests.Passed != 2 {
		t.Fatalf("revisions/tests: %+v %+v %+v", r.Active, r.Candidate, r.Tests)
	}
	// Changed first, each group in input order; inputs echoed.
	names := []string{}
	for _, it := range r.Items {
		names = append(names, it.Name)
		if it.Source != bundles.SourceRequest {
			t.Fatalf("source %q", it.Source)
		}
	}
	if !slices.Equal(names, []string{"inputs[1]", "inputs[2]", "inputs[0]", "inputs[3]"}) {
		t.Fatalf("order %v", names)
	}
	first := r.Items[0]
	if !first.Changed || !first.Active.Decision || first.Candidate.Decision ||
		first.Input["action"].(map[string]any)["name"] != "update" || first.Input["subject"].(map[string]any)["id"] != "alice" {
		t.Fatalf("first item %+v", first)
	}
	if !slices.Equal(first.Active.Reasons, []string{"owners-edit"}) || !slices.Equal(first.Candidate.Reasons, []string{engine.ReasonNoMatch}) {
		t.Fatalf("reasons %+v", first)
	}
	// The same, as JSON with the bundle in base64.
	js, _ := json.Marshal(map[string]any{"bundle": base64.StdEncoding.EncodeToString(candidateV2(t)), "inputs": json.RawMessage(inputs)})
	resp, m = h.post("/v1/bundles/preview", "application/json", string(js))
	if resp.StatusCode != 200 || decodeReport(t, m).Summary != want {
		t.Fatalf("JSON body: %d %v", resp.StatusCode, m["summary"])
	}
}

func TestPreviewWithoutInputsUsesBothBundlesTests(t *testing.T) {
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	// The second case has the input of a candidate case: decided once.
	activeTests := `tests:
  - name: owner updates
    input: {subject: {type: user, id: alice}, action: {name: update}, resource: {type: document, id: "7", properties: {owner: alice}}}
    expect: true
  - name: same as the candidate's
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: true
`
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`, "a_test.yaml": activeTests})
	h := start(t, DefaultConfig(), mgr)
	// The candidate's own test "still updates" fails: reported, not a 422.
	failing := v2Tests + `  - name: still updates
    input: {subject: {type: user, id: alice}, action: {name: update}, resource: {type: document, id: "1", properties: {owner: alice}}}
    expect: true
`
	archive := tgz(t, map[string]string{"docs.verdict.yaml": previewPolicyV2, ".manifest": `{"revision":"v2"}`, "docs_test.yaml": failing})
	js, _ := json.Marshal(map[string]any{"bundle": base64.StdEncoding.EncodeToString(archive)})
	resp, m := h.post("/v1/bundles/preview", "application/json", string(js))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	r := decodeReport(t, m)
	if r.Tests.Passed != 2 || r.Tests.Failed != 1 || len(r.Tests.Failures) != 1 || !strings.Contains(r.Tests.Failures[0], "still updates") {
		t.Fatalf("candidate tests %+v", r.Tests)
	}
	sources := map[string]int{}
	for _, it := range r.Items {
		sources[it.Source]++
	}
	if sources[bundles.SourceCandidateTests] != 3 || sources[bundles.SourceActiveTests] != 1 || r.Summary.Total != 4 {
		t.Fatalf("sources %v, summary %+v", sources, r.Summary)
	}
	if r.Summary.AllowToDeny != 2 || !r.Items[0].Changed || !strings.Contains(r.Items[0].Name, "_test.yaml:") {
		t.Fatalf("summary %+v, first %+v", r.Summary, r.Items[0])
	}
}

func TestPreviewChangesNothing(t *testing.T) {
	rc := &recordingCache{}
	h := newHarness(t, WithCache(rc))
	before := h.mgr.Active()
	ct, b := multipartPreview(t, candidateV2(t), "["+body("alice", "update", "alice")+"]")
	for range 3 {
		if resp, m := h.post("/v1/bundles/preview", ct, b); resp.StatusCode != 200 {
			t.Fatalf("status %d: %v", resp.StatusCode, m)
		}
	}
	if rc.sets.Load() != 0 || len(rc.m) != 0 {
		t.Fatalf("the preview wrote %d cache entries", rc.sets.Load())
	}
	if after := h.mgr.Active(); after != before || after.Snapshot.Revision() != "v1" {
		t.Fatalf("the active bundle changed: %+v", after)
	}
	_, m := h.post("/v1/decide", "application/json", body("alice", "update", "alice"))
	if allow, _ := decision(t, m); !allow || m["context"].(map[string]any)["revision"] != "v1" {
		t.Fatalf("decide after preview: %v", m)
	}
	if rc.sets.Load() != 1 {
		t.Fatalf("decide should have written the cache once, got %d: the test does not see the cache", rc.sets.Load())
	}
}

func TestPreviewWithNoActiveBundle(t *testing.T) {
	h := start(t, DefaultConfig(), bundles.NewManager(bundles.DefaultConfig(), nil))
	ct, b := multipartPreview(t, candidateV2(t), "["+body("alice", "read", "alice")+"]")
	resp, m := h.post("/v1/bundles/preview", ct, b)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	r := decodeReport(t, m)
	if r.Active != nil || r.Summary.DenyToAllow != 1 || r.Summary.Errors != 0 {
		t.Fatalf("report %+v", r)
	}
	if it := r.Items[0]; it.Active.Decision || !slices.Equal(it.Active.Reasons, []string{engine.ReasonNoPolicy}) || !it.Candidate.Decision {
		t.Fatalf("item %+v", it)
	}
}

type sliceHistory []*engine.Input

func (h sliceHistory) RecentInputs(_ context.Context, n int) ([]*engine.Input, error) {
	return h[:min(n, len(h))], nil
}

func TestPreviewUsesDecisionHistory(t *testing.T) {
	logged := sliceHistory{{
		Subject: engine.Entity{Type: "user", ID: "alice"}, Action: engine.Action{Name: "update"},
		Resource: engine.Entity{Type: "document", ID: "9", Properties: map[string]any{"owner": "alice"}},
	}}
	h := newHarness(t, WithDecisionHistory(logged))
	archive := tgz(t, map[string]string{"docs.verdict.yaml": previewPolicyV2})
	ct, b := multipartPreview(t, archive, "")
	_, m := h.post("/v1/bundles/preview", ct, b)
	r := decodeReport(t, m)
	if r.Summary.Total != 1 || r.Items[0].Source != bundles.SourceLogged || !r.Items[0].Changed {
		t.Fatalf("report %+v", r)
	}
}

func TestPreviewBadRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBatch = 2
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1, ".manifest": `{"revision":"v1"}`})
	h := start(t, cfg, mgr)
	good := base64.StdEncoding.EncodeToString(candidateV2(t))
	jsonBody := func(v map[string]any) string { b, _ := json.Marshal(v); return string(b) }
	broken := tgz(t, map[string]string{"docs.verdict.yaml": strings.Replace(previewPolicyV2, "condition: variables.is_owner", "condition: variables.is_owner +", 1),
		"other.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: o\nrules:\n  - id: a\n    effect: allow\n    condition: nope(\n"})
	escape := tgz(t, map[string]string{"../evil.rego": "package x"})
	noBundleCT, noBundle := func() (string, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("inputs", "[]")
		mw.Close()
		return mw.FormDataContentType(), buf.String()
	}()
	badInputsCT, badInputs := multipartPreview(t, candidateV2(t), `{"not": "an array"}`)
	cases := []struct {
		name, ctype, body string
		status            int
		code, message     string
	}{
		{"text body", "text/plain", "hello", 415, CodeUnsupportedMedia, "multipart/form-data"},
		{"empty JSON", "application/json", "", 400, CodeInvalidJSON, "empty"},
		{"no bundle", "application/json", `{"inputs": []}`, 400, CodeInvalidInput, "bundle"},
		{"bad base64", "application/json", `{"bundle": "!!!"}`, 400, CodeInvalidInput, "base64"},
		{"unknown field", "application/json", jsonBody(map[string]any{"bundle": good, "input": []any{}}), 400, CodeInvalidInput, "input: unknown field"},
		{"inputs not array", "application/json", jsonBody(map[string]any{"bundle": good, "inputs": map[string]any{}}), 400, CodeInvalidInput, "inputs: must be an array"},
		{"too many inputs", "application/json", `{"bundle":"` + good + `","inputs":[` + strings.Repeat(body("a", "read", "a")+",", 2) + body("a", "read", "a") + `]}`, 400, CodeInvalidInput, "at most 2"},
		{"bad input", "application/json", jsonBody(map[string]any{"bundle": good, "inputs": []any{map[string]any{"subject": map[string]any{"type": "user", "id": "a"}}}}), 400, CodeInvalidInput, "inputs[0].resource: is required"},
		{"not gzip", "application/json", jsonBody(map[string]any{"bundle": base64.StdEncoding.EncodeToString([]byte("plain"))}), 400, CodeBundleUnreadable, "gzip"},
		{"escaping entry", "application/json", jsonBody(map[string]any{"bundle": base64.StdEncoding.EncodeToString(escape)}), 400, CodeBundleUnreadable, "../evil.rego"},
		{"does not compile", "application/json", jsonBody(map[string]any{"bundle": base64.StdEncoding.EncodeToString(broken)}), 422, CodeBundleInvalid, "2 problem"},
		{"multipart without bundle", noBundleCT, noBundle, 400, CodeInvalidInput, "bundle"},
		{"multipart inputs not array", badInputsCT, badInputs, 400, CodeInvalidInput, "inputs: must be an array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := h.with(t).post("/v1/bundles/preview", tc.ctype, tc.body)
			e, _ := m["error"].(map[string]any)
			if resp.StatusCode != tc.status || e == nil || e["code"] != tc.code || !strings.Contains(e["message"].(string), tc.message) {
				t.Fatalf("got %d %v, want %d %s ~%q", resp.StatusCode, m, tc.status, tc.code, tc.message)
			}
			if tc.code == CodeBundleInvalid {
				details, _ := e["details"].([]any)
				if len(details) != 2 || !strings.Contains(details[0].(string), "docs.verdict.yaml:") || !strings.Contains(details[1].(string), "other.verdict.yaml:") {
					t.Fatalf("details %v", e["details"])
				}
			}
		})
	}
	if a := mgr.Active(); a.Snapshot.Revision() != "v1" || a.Generation != 1 {
		t.Fatalf("a bad preview changed the active bundle: %+v", a)
	}
}

func TestPreviewNeedsBundlesWriteScope(t *testing.T) {
	kit := newAuthKit(t)
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	activate(t, mgr, map[string]string{"docs.verdict.yaml": policyV1})
	h := start(t, DefaultConfig(), mgr, WithAuth(kit.verifier, false))
	ct, b := multipartPreview(t, candidateV2(t), "")
	for _, tc := range []struct {
		auth   string
		status int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer " + kit.token(t, "ci", ScopeDecide), http.StatusForbidden},
		{"Bearer " + kit.token(t, "ci", ScopeBundlesWrite), http.StatusOK},
	} {
		hdr := []string{}
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		if resp, m := h.post("/v1/bundles/preview", ct, b, hdr...); resp.StatusCode != tc.status {
			t.Fatalf("auth %.20q: %d %v, want %d", tc.auth, resp.StatusCode, m, tc.status)
		}
	}
}
