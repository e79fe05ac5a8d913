package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// decisionIDs matches the one part of an answer that differs every time.
var decisionIDs = regexp.MustCompile(`"decision_id":"[^"]*"`)

// normalise compacts a JSON answer and blanks its decision ids, so that two
// answers compare byte for byte.
func normalise(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	return decisionIDs.ReplaceAllString(buf.String(), `"decision_id":""`)
}

// TestCLIAndServerAnswerAlike (issue 11): `verdict decide` and POST
// /v1/decide go through the same decision service, so they answer every
// shared decision case of testdata/decisions.yaml byte for byte alike
// (decision ids aside), with the CEL and the Rego bundle, one request at a
// time and as one batch.
func TestCLIAndServerAnswerAlike(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/decisions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			Name  string         `yaml:"name"`
			Input map[string]any `yaml:"input"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tests) < 40 {
		t.Fatalf("only %d shared cases", len(doc.Tests))
	}
	var items []string
	for _, c := range doc.Tests {
		b, err := json.Marshal(c.Input)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		items = append(items, string(b))
	}
	batch := `{"evaluations":[` + strings.Join(items, ",") + `]}`
	for _, bundle := range []string{"../../policies/rbac-cel", "../../policies/rbac-rego"} {
		t.Run(bundle, func(t *testing.T) {
			addr := freeAddr(t)
			stop := serveDev(t, addr, t.TempDir(), "--bundle", bundle)
			defer stop()
			ask := func(body string) string {
				t.Helper()
				resp, err := http.Post("http://"+addr+"/v1/decide", "application/json", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("server: %d %s", resp.StatusCode, b)
				}
				return normalise(t, b)
			}
			local := func(body string) string {
				t.Helper()
				code, out, errOut := cli(t, body, "decide", "--bundle", bundle)
				if code != 0 {
					t.Fatalf("verdict decide: exit %d: %s", code, errOut)
				}
				return normalise(t, []byte(out))
			}
			if s, c := ask(batch), local(batch); s != c {
				t.Fatalf("the batch of %d cases differs:\nserver %s\ncli    %s", len(items), s, c)
			}
			for i := 0; i < len(items); i += 10 {
				if s, c := ask(items[i]), local(items[i]); s != c {
					t.Errorf("%s:\nserver %s\ncli    %s", doc.Tests[i].Name, s, c)
				}
			}
		})
	}
}
