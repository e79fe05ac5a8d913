package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/internal/tcpproxy"
)

// replicaList is GET /v1/admin/replicas as a test reads it.
type replicaList struct {
	Shared     bool   `json:"shared"`
	Generation uint64 `json:"generation"`
	Problem    string `json:"problem"`
	Replicas   []struct {
		ID       string `json:"id"`
		Revision string `json:"revision"`
		Self     bool   `json:"self"`
		InStep   bool   `json:"in_step"`
		Behind   uint64 `json:"behind"`
	} `json:"replicas"`
}

func listReplicas(t testing.TB, base, tok string) replicaList {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/admin/replicas", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l replicaList
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&l) != nil {
		t.Fatalf("GET /v1/admin/replicas on %s: %d", base, resp.StatusCode)
	}
	return l
}

// self is the id of the replica that answered l.
func (l replicaList) self() string {
	for _, r := range l.Replicas {
		if r.Self {
			return r.ID
		}
	}
	return ""
}

// allInStep reports whether l lists exactly ids, each in step serving rev.
func (l replicaList) allInStep(ids []string, rev string) bool {
	if len(l.Replicas) != len(ids) {
		return false
	}
	for _, r := range l.Replicas {
		if !slices.Contains(ids, r.ID) || !r.InStep || r.Revision != rev {
			return false
		}
	}
	return true
}

// TestReplicasListEachOther: three replicas on one Redis each list all
// three, in step and serving the pushed revision; one that stops leaves
// the list at once; one cut off from Redis drops out of the others' lists
// within three polls and lists only itself, saying why.
func TestReplicasListEachOther(t *testing.T) {
	var px *tcpproxy.Proxy
	c := startCluster(t, 3, throughProxy(t, 2, &px))
	c.pushAll(c.token(), "v1")
	code, out, errOut := cli(t, "", "client", "add", "--id", "root", "--scope", "verdict:admin", "--store", c.redis.URL(), "--data-dir", c.dataDir)
	if code != 0 {
		t.Fatalf("client add root: %s", errOut)
	}
	admin := &clientcredentials.Config{ClientID: "root", ClientSecret: regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1],
		TokenURL: c.replicas[0].base + "/oauth2/token", Scopes: []string{"verdict:admin"}}
	tk, err := admin.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok := tk.AccessToken

	ids := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		ids[i] = listReplicas(t, r.base, tok).self()
		if ids[i] == "" || slices.Contains(ids[:i], ids[i]) {
			t.Fatalf("replica %d's id %q (others %v)", i, ids[i], ids[:i])
		}
	}
	for i, r := range c.replicas {
		within(t, 8*testPoll, fmt.Sprintf("replica %d lists all three in step", i), func() bool {
			l := listReplicas(t, r.base, tok)
			return l.Shared && l.Problem == "" && l.allInStep(ids, "v1")
		})
	}

	// The console's overview shows the same.
	b := newConsoleBrowser(t, c.replicas[0].base)
	if resp, _ := b.do("POST", "/console/login", url.Values{"csrf": {b.csrf("/console/login")}, "client_id": {"root"}, "client_secret": {admin.ClientSecret}}); resp.StatusCode != 303 {
		t.Fatalf("console sign-in: %d", resp.StatusCode)
	}
	resp, page := b.do("GET", "/console", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "3 replicas share the store") || !strings.Contains(page, "all in step") {
		t.Fatalf("console overview: %d %.3000s", resp.StatusCode, page)
	}
	for i, id := range ids {
		if !strings.Contains(page, "<code>"+id+"</code>"+map[bool]string{true: " (this one)", false: "</td>"}[i == 0]) {
			t.Errorf("the overview does not list replica %d (%s) as expected", i, id)
		}
	}

	c.replicas[1].stop()
	within(t, 2*testPoll, "replica 0 stops listing the stopped replica", func() bool {
		return listReplicas(t, c.replicas[0].base, tok).allInStep([]string{ids[0], ids[2]}, "v1")
	})

	px.Close() // replica 2 loses Redis without leaving
	took := within(t, 8*testPoll, "replica 0 stops listing the replica cut off from Redis", func() bool {
		return listReplicas(t, c.replicas[0].base, tok).allInStep(ids[:1], "v1")
	})
	t.Logf("the cut-off replica dropped out after %s (its reports are kept %s)", took, 3*testPoll)
	within(t, 8*testPoll, "the cut-off replica lists itself and the problem", func() bool {
		l := listReplicas(t, c.replicas[2].base, tok)
		return l.Problem != "" && len(l.Replicas) == 1 && l.Replicas[0].ID == ids[2]
	})
}
