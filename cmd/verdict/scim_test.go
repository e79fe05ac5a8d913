package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// scimClient calls /scim/v2 with an API key that has verdict:scim.
type scimClient struct {
	t    *testing.T
	base string
	key  string
}

func (c scimClient) do(method, path, body string, hdr ...string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+"/scim/v2"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	req.Header.Set("Authorization", "ApiKey "+c.key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	if m == nil {
		m = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, m, resp.Header
}

func scimSetup(t *testing.T) (scimClient, func()) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "apikey", "create", "--name", "okta", "--scope", "verdict:scim", "--data-dir", dataDir)
	if code != 0 {
		t.Fatal(errOut)
	}
	key := regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	stop, _ := serveWith(t, addr, dataDir)
	return scimClient{t: t, base: "http://" + addr, key: key}, stop
}

// TestSCIMAsOkta: the requests Okta documents for SCIM 2.0 provisioning,
// in Okta's order: user exists?, create, read, deactivate with a
// path-less replace, push a group, add and remove a member, rename the
// group; plus uniqueness, ETags with If-Match, paging and attributes.
func TestSCIMAsOkta(t *testing.T) {
	c, stop := scimSetup(t)
	defer stop()
	filter := url.QueryEscape(`userName eq "alice@example.com"`)
	if st, m, _ := c.do("GET", "/Users?filter="+filter+"&startIndex=1&count=100", ""); st != 200 || m["totalResults"] != float64(0) {
		t.Fatalf("user exists?: %d %v", st, m)
	}
	st, u, h := c.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com",
		"name":{"givenName":"Alice","familyName":"Liddell"},"emails":[{"primary":true,"value":"alice@example.com","type":"work"}],
		"displayName":"Alice Liddell","locale":"en-US","externalId":"00u1","groups":[],"active":true}`)
	if st != 201 || u["id"] == nil || h.Get("ETag") == "" || u["externalId"] != "00u1" {
		t.Fatalf("create: %d %v %v", st, u, h)
	}
	id := u["id"].(string)
	if st, m, _ := c.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ALICE@example.com"}`); st != 409 || m["scimType"] != "uniqueness" {
		t.Fatalf("duplicate userName: %d %v", st, m)
	}
	if st, m, _ := c.do("GET", "/Users?filter="+filter, ""); st != 200 || m["totalResults"] != float64(1) {
		t.Fatalf("filter: %d %v", st, m)
	}
	st, got, h := c.do("GET", "/Users/"+id, "")
	if st != 200 || got["userName"] != "alice@example.com" {
		t.Fatalf("read: %d %v", st, got)
	}
	etag := h.Get("ETag")
	st, got, _ = c.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`)
	if st != 200 || got["active"] != false {
		t.Fatalf("deactivate: %d %v", st, got)
	}
	// The old ETag no longer matches.
	if st, _, _ := c.do("PUT", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true}`, "If-Match", etag); st != 412 {
		t.Fatalf("stale If-Match: %d", st)
	}
	st, g, _ := c.do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[]}`)
	if st != 201 {
		t.Fatalf("group: %d %v", st, g)
	}
	gid := g["id"].(string)
	st, g, _ = c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+id+`","display":"alice@example.com"}]}]}`)
	if st != 200 || len(g["members"].([]any)) != 1 {
		t.Fatalf("add member: %d %v", st, g)
	}
	if _, u, _ := c.do("GET", "/Users/"+id, ""); !strings.Contains(jsonOf(u["groups"]), "Engineering") {
		t.Fatalf("the user's groups: %v", u["groups"])
	}
	if st, m, _ := c.do("GET", "/Users?attributes=userName", ""); st != 200 || strings.Contains(jsonOf(m), "Liddell") || !strings.Contains(jsonOf(m), "alice@example.com") {
		t.Fatalf("attributes: %d %v", st, m)
	}
	st, g, _ = c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+id+`\"]"}]}`)
	if st != 200 || len(anyList(g["members"])) != 0 {
		t.Fatalf("remove member: %d %v", st, g)
	}
	st, g, _ = c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"`+gid+`","displayName":"Platform"}}]}`)
	if st != 200 || g["displayName"] != "Platform" {
		t.Fatalf("rename: %d %v", st, g)
	}
	for name, q := range map[string]string{
		"long":   strings.Repeat("a", 2000),
		"syntax": `userName eq`,
		"deep":   strings.Repeat("(", 300) + `userName eq "x"` + strings.Repeat(")", 300),
	} {
		if st, _, _ := c.do("GET", "/Users?filter="+url.QueryEscape(q), ""); st != 400 {
			t.Errorf("hostile filter %s: %d", name, st)
		}
	}
	for _, p := range []string{"/ServiceProviderConfig", "/Schemas", "/ResourceTypes"} {
		if st, _, _ := c.do("GET", p, ""); st != 200 {
			t.Errorf("%s: %d", p, st)
		}
	}
	if _, spc, _ := c.do("GET", "/ServiceProviderConfig", ""); !strings.Contains(jsonOf(spc["etag"]), "true") || !strings.Contains(jsonOf(spc["patch"]), "true") {
		t.Errorf("service provider config: %v", spc)
	}
	if st, _, _ := c.do("DELETE", "/Users/"+id, ""); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, _ := c.do("GET", "/Users/"+id, ""); st != 404 {
		t.Fatalf("deleted user: %d", st)
	}
}

// TestSCIMAsEntraID: Entra ID's shapes: the enterprise extension, a
// PATCH with capitalised ops, a filtered sub-attribute path
// (emails[type eq "work"].value), name.familyName, and members added and
// removed by listing them in the value.
func TestSCIMAsEntraID(t *testing.T) {
	c, stop := scimSetup(t)
	defer stop()
	st, u, _ := c.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId":"0a21f0f2","userName":"Test_User@testuser.com","active":true,
		"emails":[{"primary":true,"type":"work","value":"old@testuser.com"}],"meta":{"resourceType":"User"},
		"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Sales"}}`)
	if st != 201 {
		t.Fatalf("create: %d %v", st, u)
	}
	id := u["id"].(string)
	st, u, _ = c.do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
		{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
		{"op":"Replace","path":"userName","value":"renamed@testuser.com"},
		{"op":"Replace","path":"active","value":false}]}`)
	if st != 200 || u["userName"] != "renamed@testuser.com" || u["active"] != false || !strings.Contains(jsonOf(u), "updatedEmail@microsoft.com") ||
		!strings.Contains(jsonOf(u), "updatedFamilyName") || strings.Contains(jsonOf(u), "old@testuser.com") || !strings.Contains(jsonOf(u), "701984") {
		t.Fatalf("patch: %d %s", st, jsonOf(u))
	}
	st, g, _ := c.do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"8aa1","displayName":"Group1DisplayName","meta":{"resourceType":"Group"}}`)
	if st != 201 {
		t.Fatalf("group: %d %v", st, g)
	}
	gid := g["id"].(string)
	st, g, _ = c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","path":"displayName","value":"Renamed"},{"op":"Add","path":"members","value":[{"$ref":null,"value":"`+id+`"}]}]}`)
	if st != 200 || g["displayName"] != "Renamed" || len(anyList(g["members"])) != 1 {
		t.Fatalf("add: %d %v", st, g)
	}
	st, g, _ = c.do("PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Remove","path":"members","value":[{"$ref":null,"value":"`+id+`"}]}]}`)
	if st != 200 || len(anyList(g["members"])) != 0 {
		t.Fatalf("remove: %d %v", st, g)
	}
	filter := url.QueryEscape(`displayName eq "Renamed"`)
	if st, m, _ := c.do("GET", "/Groups?excludedAttributes=members&filter="+filter, ""); st != 200 || m["totalResults"] != float64(1) {
		t.Fatalf("group by name: %d %v", st, m)
	}
	// Entra ID sends its secret token as a Bearer: a key works that way.
	req0, _ := http.NewRequest("GET", c.base+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "renamed@testuser.com"`), nil)
	req0.Header.Set("Authorization", "Bearer "+c.key)
	resp0, err := http.DefaultClient.Do(req0)
	if err != nil {
		t.Fatal(err)
	}
	resp0.Body.Close()
	if resp0.StatusCode != 200 {
		t.Fatalf("the key as a Bearer: %d", resp0.StatusCode)
	}
	// Without verdict:scim: refused.
	req, _ := http.NewRequest("GET", c.base+"/scim/v2/Users", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no credential: %d", resp.StatusCode)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func anyList(v any) []any {
	l, _ := v.([]any)
	return l
}
