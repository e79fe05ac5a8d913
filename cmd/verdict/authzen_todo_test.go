package main

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// todoDecisionFile is the official decision file of the OpenID AuthZEN Todo
// interop, byte for byte: openid/authzen
// interop/authzen-todo-backend/test/decisions-authorization-api-1_0-02.json at
// commit e287920eed842b227e38531c1735b712337ca44d (MIT, Copyright (c) 2024
// Aserto; testdata/authzen-todo/README.md). It holds 40 single evaluations and
// 3 batches, each with the answer the runner (test/runner.ts there) expects.
const todoDecisionFile = "../../testdata/authzen-todo/decisions.json"

// todoCase is one request of the decision file: the body the runner posts
// and what it expects, a boolean for /access/v1/evaluation and the whole
// "evaluations" array for /access/v1/evaluations.
type todoCase struct {
	Request  json.RawMessage `json:"request"`
	Expected json.RawMessage `json:"expected"`
}

// loadTodoDecisions reads todoDecisionFile and checks it is the whole file.
func loadTodoDecisions(t *testing.T) (single, batch []todoCase) {
	t.Helper()
	raw, err := os.ReadFile(todoDecisionFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Evaluation  []todoCase `json:"evaluation"`
		Evaluations []todoCase `json:"evaluations"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", todoDecisionFile, err)
	}
	if len(doc.Evaluation) != 40 || len(doc.Evaluations) != 3 {
		t.Fatalf("%s: %d evaluations and %d batches, want 40 and 3", todoDecisionFile, len(doc.Evaluation), len(doc.Evaluations))
	}
	return doc.Evaluation, doc.Evaluations
}

// TestAuthZENTodoInterop plays the official AuthZEN Todo interop runner
// (openid/authzen interop/authzen-todo-backend/test/runner.ts, run as `yarn
// test <url> authorization-api-1_0-02`) against a real `verdict serve --dev`,
// once with the CEL and once with the Rego Todo bundle: every case of its
// decision file goes to the same path with the same body and headers, and the
// answer is judged as the runner judges it. All 43 must pass.
func TestAuthZENTodoInterop(t *testing.T) {
	single, batch := loadTodoDecisions(t)
	for _, b := range []struct{ engine, dir string }{
		{"cel", "../../policies/authzen-todo-cel"},
		{"rego", "../../policies/authzen-todo-rego"},
	} {
		t.Run(b.engine, func(t *testing.T) {
			// Decisions, not deadlines: a loaded machine under -race can pass
			// the 50 ms default engine timeout (denied, fail closed).
			cfg := filepath.Join(t.TempDir(), "verdict.yaml")
			writeFile(t, cfg, "engine: {timeout: 2s}\n")
			base, client := serveReady(t, "--config", cfg, "--bundle", b.dir)
			passed := 0
			for _, run := range []struct {
				endpoint string
				cases    []todoCase
			}{{"evaluation", single}, {"evaluations", batch}} {
				for i, c := range run.cases {
					if problem := runTodoCase(client, base, run.endpoint, c); problem != "" {
						var req bytes.Buffer
						_ = json.Compact(&req, c.Request)
						t.Errorf("%s %d: %s\nrequest %s", run.endpoint, i+1, problem, req.String())
						continue
					}
					passed++
				}
			}
			t.Logf("%s: %d/%d passed", b.dir, passed, len(single)+len(batch))
		})
	}
}

// runTodoCase posts c to base/access/v1/<endpoint> as runner.ts does and
// returns why the runner would not count it a PASS ("" when it would). The
// runner sends `Authorization: ${AUTHZEN_PDP_API_KEY}`, which without a key
// is the literal "undefined", and Node's fetch adds the other headers below;
// the body is JSON.stringify of the request, that is the file's text
// compacted. The answer must be a 200 (the runner does not look: a stricter
// check of ours).
func runTodoCase(client *http.Client, base, endpoint string, c todoCase) string {
	var body bytes.Buffer
	if err := json.Compact(&body, c.Request); err != nil {
		return err.Error()
	}
	req, err := http.NewRequest(http.MethodPost, base+"/access/v1/"+endpoint, &body)
	if err != nil {
		return err.Error()
	}
	for k, v := range map[string]string{
		"Authorization":   "undefined",
		"Content-Type":    "application/json",
		"Accept":          "*/*",
		"Accept-Language": "*",
		"Accept-Encoding": "gzip, deflate",
		"Sec-Fetch-Mode":  "cors",
		"User-Agent":      "node",
	} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	// Setting Accept-Encoding ourselves turns off the client's own gzip
	// handling; fetch decodes both encodings it asks for.
	var r io.Reader = resp.Body
	switch resp.Header.Get("Content-Encoding") {
	case "gzip":
		if r, err = gzip.NewReader(resp.Body); err != nil {
			return err.Error()
		}
	case "deflate":
		r = flate.NewReader(resp.Body)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, raw)
	}
	return judgeTodoAnswer(endpoint, raw, c.Expected)
}

// judgeTodoAnswer is runner.ts's verdict on one answer: for evaluation it
// takes `data.decision || false`, for evaluations `data.evaluations || []`, and
// a case passes when JSON.stringify of that equals JSON.stringify of the
// expected value, byte for byte. Member order and extra members count: a batch
// item must be exactly {"decision": x}. Compacting the answer's bytes stands
// for JS's parse and stringify (the answers hold no strings it would
// re-escape); an answer that is not JSON is the runner's ERROR.
func judgeTodoAnswer(endpoint string, raw, expected json.RawMessage) string {
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Sprintf("ERROR: answer is not a JSON object: %v: %s", err, raw)
	}
	got, fallback := data["decision"], "false"
	if endpoint == "evaluations" {
		got, fallback = data["evaluations"], "[]"
	}
	if falsy(got) {
		got = json.RawMessage(fallback)
	}
	var g, w bytes.Buffer
	if err := json.Compact(&g, got); err != nil {
		return err.Error()
	}
	if err := json.Compact(&w, expected); err != nil {
		return err.Error()
	}
	if g.String() != w.String() {
		return fmt.Sprintf("FAIL: got %s, want %s (answer %s)", g.String(), w.String(), raw)
	}
	return ""
}

// falsy reports whether JS's `v || fallback` would take the fallback: v
// missing, null, false, 0 or "".
func falsy(v json.RawMessage) bool {
	var x any
	if len(v) == 0 || json.Unmarshal(v, &x) != nil {
		return true
	}
	switch x := x.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	}
	return false
}

// TestAuthZENTodoJudge: the judge above fails what the runner fails, notably
// the batch items with a context that made Verdict fail the 3 batches before
// the AuthZEN routes answered bare decisions.
func TestAuthZENTodoJudge(t *testing.T) {
	for _, tc := range []struct {
		endpoint, answer, expected string
		pass                       bool
	}{
		{"evaluation", `{"decision":true}`, `true`, true},
		{"evaluation", `{"decision":false}`, `false`, true},
		{"evaluation", `{}`, `false`, true},
		{"evaluation", `{"decision":true,"context":{"reasons":["r"]}}`, `true`, true},
		{"evaluation", `{"decision":false}`, `true`, false},
		{"evaluation", `{"decision":"true"}`, `true`, false},
		{"evaluation", `not json`, `false`, false},
		{"evaluations", `{"evaluations":[{"decision":false},{"decision":true}]}`, `[{"decision": false}, {"decision": true}]`, true},
		{"evaluations", `{"evaluations":[{"decision":true},{"decision":true}]}`, `[{"decision": false}, {"decision": true}]`, false},
		{"evaluations", `{"evaluations":[{"decision":false,"context":{}},{"decision":true}]}`, `[{"decision": false}, {"decision": true}]`, false},
		{"evaluations", `{"evaluations":[{"decision":false}]}`, `[{"decision": false}, {"decision": true}]`, false},
		{"evaluations", `{"decision":true}`, `[{"decision": true}]`, false},
	} {
		problem := judgeTodoAnswer(tc.endpoint, json.RawMessage(tc.answer), json.RawMessage(tc.expected))
		if (problem == "") != tc.pass {
			t.Errorf("%s %s against %s: pass = %v (%s), want %v", tc.endpoint, tc.answer, tc.expected, problem == "", problem, tc.pass)
		}
	}
}
