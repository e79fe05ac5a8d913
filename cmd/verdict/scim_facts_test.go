package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
)

// directoryCEL and directoryRego let a provisioned user deploy while a
// member of the Engineering group and active.
const (
	directoryCEL = `apiVersion: verdict.dev/v1
kind: Policy
name: directory
rules:
  - id: engineers-deploy
    effect: allow
    actions: ["deploy"]
    condition: >
      has(data.directory) && subject.id in data.directory.users &&
      data.directory.users[subject.id].active &&
      "Engineering" in data.directory.users[subject.id].groups
`
	directoryRego = `package verdict

import rego.v1

default decision := false

decision if {
	u := data.directory.users[input.subject.id]
	u.active
	"Engineering" in u.groups
}
`
)

func deployDecision(t testing.TB, base, key, who string) bool {
	t.Helper()
	body := fmt.Sprintf(`{"subject":{"type":"user","id":%q},"action":{"name":"deploy"},"resource":{"type":"app","id":"shop"}}`, who)
	req, _ := http.NewRequest("POST", base+"/v1/decide", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Decision bool `json:"decision"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	if resp.StatusCode != 200 {
		t.Fatalf("decide: %d", resp.StatusCode)
	}
	return d.Decision
}

// provision runs the IdP's part: a user, a group, the user added to it;
// it returns the user's and the group's ids.
func provision(t *testing.T, c scimClient) (uid, gid string) {
	t.Helper()
	st, u, _ := c.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true}`)
	if st != 201 {
		t.Fatalf("user: %d %v", st, u)
	}
	st, g, _ := c.do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering"}`)
	if st != 201 {
		t.Fatalf("group: %d %v", st, g)
	}
	uid, gid = u["id"].(string), g["id"].(string)
	if st, m, _ := c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]}`); st != 200 {
		t.Fatalf("member: %d %v", st, m)
	}
	return uid, gid
}

// TestProvisionedFactsDecide: users and groups provisioned over SCIM are
// data.directory for CEL and Rego policies alike, without a bundle push:
// adding a member allows, deactivating or removing denies; the AuthZEN
// subject search finds the provisioned user.
func TestProvisionedFactsDecide(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"cel":  {"d.verdict.yaml": directoryCEL},
		"rego": {"d.rego": directoryRego, ".manifest": `{"revision":"dir-rego","metadata":{"verdict":{"entrypoint":"verdict/decision"}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			code, out, errOut := cli(t, "", "apikey", "create", "--name", "idp", "--scope", "verdict:scim", "--scope", "verdict:decide", "--data-dir", dataDir)
			if code != 0 {
				t.Fatal(errOut)
			}
			key := regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
			addr := freeAddr(t)
			cfg := filepath.Join(t.TempDir(), "verdict.yaml")
			writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\n")
			stop, _ := serveArgs(t, addr, []string{"serve", "--config", cfg, "--addr", addr, "--bundle", bundleDir(t, files), "--data-dir", dataDir})
			defer stop()
			base := "http://" + addr
			c := scimClient{t: t, base: base, key: key}
			if deployDecision(t, base, key, "alice@example.com") {
				t.Fatal("allowed before provisioning")
			}
			uid, gid := provision(t, c)
			if !deployDecision(t, base, key, "alice@example.com") {
				t.Fatal("the provisioned member may not deploy")
			}
			if deployDecision(t, base, key, "bob@example.com") {
				t.Fatal("an unknown user may deploy")
			}
			// The subject search lists the provisioned user.
			req, _ := http.NewRequest("POST", base+"/access/v1/search/subject", strings.NewReader(
				`{"subject":{"type":"user"},"action":{"name":"deploy"},"resource":{"type":"app","id":"shop"}}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var sr map[string]any
			json.NewDecoder(resp.Body).Decode(&sr)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(jsonOf(sr), "alice@example.com") {
				t.Fatalf("subject search: %d %v", resp.StatusCode, sr)
			}
			// Okta deactivates: denied.
			c.do("PATCH", "/Users/"+uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`)
			if deployDecision(t, base, key, "alice@example.com") {
				t.Fatal("a deactivated user may deploy")
			}
			c.do("PATCH", "/Users/"+uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":true}]}`)
			if !deployDecision(t, base, key, "alice@example.com") {
				t.Fatal("reactivated, still denied")
			}
			c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+uid+`\"]"}]}`)
			if deployDecision(t, base, key, "alice@example.com") {
				t.Fatal("removed from the group, still allowed (a stale cache?)")
			}
		})
	}
}

// directoryArchive is a pushed revision of the CEL directory policy.
func directoryArchive(t testing.TB, rev string) []byte {
	t.Helper()
	b, err := bundles.FromFiles(map[string][]byte{".manifest": []byte(fmt.Sprintf(`{"revision":%q}`, rev)), "d.verdict.yaml": []byte(directoryCEL)}, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundles.Pack(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestReplicasFollowAGroupChange: three replicas on one Redis; a group
// change sent over SCIM to one flips the decision on all three within the
// poll interval, although each had cached the earlier answer.
func TestReplicasFollowAGroupChange(t *testing.T) {
	c := startCluster(t, 3, nil)
	tok := c.token()
	if code, _ := push(t, c.replicas[0].base, tok, directoryArchive(t, "dir-1")); code != 200 && code != 201 {
		t.Fatalf("push: %d", code)
	}
	c.allServe("dir-1", 5*time.Second)
	code, out, errOut := cli(t, "", "apikey", "create", "--name", "idp", "--scope", "verdict:scim", "--scope", "verdict:decide", "--store", c.redis.URL())
	if code != 0 {
		t.Fatal(errOut)
	}
	key := regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
	for _, r := range c.replicas {
		if deployDecision(t, r.base, key, "alice@example.com") {
			t.Fatal("allowed before provisioning")
		}
	}
	sc := scimClient{t: t, base: c.replicas[1].base, key: key}
	uid, gid := provision(t, sc)
	for _, r := range c.replicas {
		within(t, testPoll+2*time.Second, "the member allowed on "+r.base, func() bool { return deployDecision(t, r.base, key, "alice@example.com") })
	}
	sc.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+uid+`\"]"}]}`)
	for _, r := range c.replicas {
		within(t, testPoll+2*time.Second, "the removed member denied on "+r.base, func() bool { return !deployDecision(t, r.base, key, "alice@example.com") })
	}
}
