package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
)

// shadowCall sends method path with the bearer token and decodes the JSON
// answer.
func shadowCall(t *testing.T, method, url, tok, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// TestShadowAcrossReplicas: a revision shadowed through one replica is
// shadowed by every replica (store state, announced like an activation);
// live decisions keep the active revision's answers; each replica's
// disagreement count is what an impact preview predicts on the same
// inputs; promote activates the candidate everywhere and ends shadowing.
func TestShadowAcrossReplicas(t *testing.T) {
	c := startCluster(t, 2, nil)
	tok := c.token()
	c.pushAll(tok, "v1")
	everyone := policy + "  - id: everyone-reads\n    effect: allow\n    condition: \"true\"\n"
	b, err := bundles.FromFiles(map[string][]byte{".manifest": []byte(`{"revision":"v2"}`), "p.verdict.yaml": []byte(everyone)}, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	v2, err := bundles.Pack(b)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := postAs(t, c.replicas[0].base+"/v1/bundles?activate=false", "application/gzip", tok, bytes.NewReader(v2)); code != 201 {
		t.Fatalf("push v2: %d", code)
	}
	a, bb := c.replicas[0].base, c.replicas[1].base
	if code, m := shadowCall(t, "POST", a+"/v1/bundles/v1/shadow", tok, `{"ratio":0}`); code != 400 {
		t.Errorf("ratio 0: %d %v", code, m)
	}
	if code, m := shadowCall(t, "POST", a+"/v1/bundles/nope/shadow", tok, `{"ratio":1}`); code != 404 {
		t.Errorf("an unknown revision: %d %v", code, m)
	}
	if code, m := shadowCall(t, "POST", a+"/v1/bundles/v2/shadow", tok, `{"ratio":1,"examples":2}`); code != 201 || m["revision"] != "v2" {
		t.Fatalf("shadow v2: %d %v", code, m)
	}
	within(t, 8*testPoll, "replica B shadows v2 too", func() bool {
		code, m := shadowCall(t, "GET", bb+"/v1/bundles/v2/shadow", tok, "")
		return code == 200 && m["report"].(map[string]any)["revision"] == "v2"
	})

	// Six inputs, decided on both replicas: four would flip (a stranger
	// reads under everyone-reads), two only change reasons.
	var inputs []string
	for _, user := range []string{"alice", "bob", "carol"} {
		for _, owner := range []string{"alice", "bob"} {
			inputs = append(inputs, fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":%q}}}`, user, owner))
		}
	}
	for _, base := range []string{a, bb} {
		for _, in := range inputs {
			user := strings.Split(strings.Split(in, `"id":"`)[1], `"`)[0]
			owner := strings.Split(strings.Split(in, `"owner":"`)[1], `"`)[0]
			d, err := decideAs(http.DefaultClient, base, tok, user, owner)
			if err != nil || d.revision != "v1" || d.allow != (user == owner) {
				t.Fatalf("a live decision while shadowing: %+v %v", d, err)
			}
		}
	}
	// What the preview predicts on the same inputs.
	code, pv := shadowCall(t, "POST", a+"/v1/bundles/preview", tok,
		`{"bundle":"`+base64.StdEncoding.EncodeToString(v2)+`","inputs":[`+strings.Join(inputs, ",")+`]}`)
	if code != 200 {
		t.Fatalf("preview: %d %v", code, pv)
	}
	predicted := pv["summary"].(map[string]any)["changed"].(float64)
	for _, base := range []string{a, bb} {
		var rep map[string]any
		within(t, 5*time.Second, "the shadow compared the six decisions on "+base, func() bool {
			_, m := shadowCall(t, "GET", base+"/v1/bundles/v2/shadow", tok, "")
			rep = m["report"].(map[string]any)
			return rep["sampled"] == float64(len(inputs))
		})
		if rep["disagreed"] != predicted || rep["agreed"] != float64(len(inputs))-predicted {
			t.Errorf("%s: disagreed %v, agreed %v; the preview predicted %v changes", base, rep["disagreed"], rep["agreed"], predicted)
		}
		// The metrics say the same, by the outcome on each side.
		flips, all := shadowOutcomeSeries(t, base)
		if flips != predicted || all != float64(len(inputs)) {
			t.Errorf("%s: verdict_shadow_outcomes: %v with the other decision of %v, want %v of %d", base, flips, all, predicted, len(inputs))
		}
		dis := rep["disagreements"].([]any)
		if rep["reasons_changed"] != 2.0 || len(dis) != 2 || dis[0].(map[string]any)["count"] != 4.0 || len(dis[0].(map[string]any)["examples"].([]any)) != 2 {
			t.Errorf("%s: disagreements %v", base, dis)
		}
	}
	if predicted != 4 {
		t.Errorf("the preview predicted %v changes, want 4", predicted)
	}
	// Each replica reports its counts to the store every poll: either one
	// sums both.
	var total map[string]any
	within(t, 8*testPoll, "the totals of both replicas on B", func() bool {
		_, m := shadowCall(t, "GET", bb+"/v1/bundles/v2/shadow", tok, "")
		total, _ = m["total"].(map[string]any)
		return total["replicas"] == 2.0 && total["sampled"] == float64(2*len(inputs))
	})
	if total["disagreed"] != 2*predicted || total["reasons_changed"] != 4.0 || total["agreed"] != float64(2*len(inputs))-2*predicted {
		t.Errorf("totals %v", total)
	}

	// The same through the CLI.
	t.Setenv("VERDICT_CLIENT_SECRET", c.secret)
	remote := []string{"--server", a, "--client-id", "ops"}
	if code, out, errOut := cli(t, "", append([]string{"bundle", "shadow", "v2", "--report"}, remote...)...); code != 0 || !strings.Contains(out, `"sampled": 6`) || !strings.Contains(out, `"disagreed": 4`) {
		t.Errorf("bundle shadow --report: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", append([]string{"bundle", "shadow", "v2", "--report", "--stop"}, remote...)...); code != 2 || !strings.Contains(errOut, "one of") {
		t.Errorf("two actions: %d %s", code, errOut)
	}
	if code, out, errOut := cli(t, "", append([]string{"bundle", "shadow", "v1", "--report"}, remote...)...); code != 1 || !strings.Contains(out+errOut, "not shadowed") {
		t.Errorf("the report of a revision not shadowed: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "", append([]string{"bundle", "shadow", "v2", "--promote"}, remote...)...); code != 0 || !strings.Contains(out, "shadowing ended") {
		t.Fatalf("promote: %d %s %s", code, out, errOut)
	}
	c.allServe("v2", 5*time.Second)
	within(t, 8*testPoll, "shadowing ended on B", func() bool {
		code, _ := shadowCall(t, "GET", bb+"/v1/bundles/v2/shadow", tok, "")
		return code == 404
	})
}

// shadowOutcomeSeries sums base's verdict_shadow_outcomes series: those
// whose two sides differ in decision, and all of them.
func shadowOutcomeSeries(t *testing.T, base string) (flips, all float64) {
	t.Helper()
	raw := metricsText(t, base)
	re := regexp.MustCompile(`(?m)^verdict_shadow_outcomes\{active_decision="(\w+)",active_reasons="[^"]*",candidate_decision="(\w+)",candidate_reasons="[^"]*"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(raw, -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		all += v
		if m[1] != m[2] {
			flips += v
		}
	}
	return flips, all
}
