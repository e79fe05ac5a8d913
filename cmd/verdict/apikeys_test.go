package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

func decideWithKey(t testing.TB, base, header, value string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/decide", strings.NewReader(
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestAPIKeysEndToEnd: a key made by the CLI decides through /v1/decide
// (Authorization: ApiKey and X-API-Key), is refused on a route its scope
// does not allow, and stops working at once after a revoke through the
// admin API; a typo, a missing key and two credentials at once are 401 or
// 400; the key never reaches a log.
func TestAPIKeysEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	code, out, errOut := cli(t, "", "apikey", "create", "--name", "billing", "--scope", "verdict:decide", "--expires", "90d", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	key := regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
	id := regexp.MustCompile(`API key (\S+) created`).FindStringSubmatch(out)[1]
	code, out, _ = cli(t, "", "client", "add", "--id", "ops", "--scope", "verdict:admin", "--data-dir", dataDir)
	if code != 0 {
		t.Fatal(out)
	}
	opsSecret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	addr := freeAddr(t)
	stop, logs := serveWith(t, addr, dataDir)
	defer stop()
	base := "http://" + addr
	for _, h := range [][2]string{{"Authorization", "ApiKey " + key}, {"X-API-Key", key}} {
		if st, d := decideWithKey(t, base, h[0], h[1]); st != 200 || d["decision"] != true {
			t.Fatalf("%s: %d %v", h[0], st, d)
		}
	}
	typo := key[:30] + map[bool]string{true: "b", false: "a"}[key[30] == 'a'] + key[31:]
	if st, _ := decideWithKey(t, base, "X-API-Key", typo); st != 401 {
		t.Fatalf("typo: %d", st)
	}
	req, _ := http.NewRequest("GET", base+"/v1/bundles", nil)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a decide key listed bundles: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", base+"/v1/decide", strings.NewReader("{}"))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Authorization", "Bearer x")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("two credentials: %d", resp.StatusCode)
	}
	admin := (&clientcredentials.Config{ClientID: "ops", ClientSecret: opsSecret, TokenURL: base + "/oauth2/token", Scopes: []string{"verdict:admin"}}).Client(context.Background())
	resp, err = admin.Get(base + "/v1/admin/apikeys/" + id)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info["state"] != "active" || info["use_count"].(float64) < 2 || info["secret_hmac"] != nil {
		t.Fatalf("info: %v\n%s", info, logs.String())
	}
	// The admin API makes, rotates and revokes keys too.
	resp, err = admin.Post(base+"/v1/admin/apikeys", "application/json", strings.NewReader(`{"name":"ci","scopes":["verdict:bundles:read"],"expires_in":"30d"}`))
	if err != nil {
		t.Fatal(err)
	}
	var made map[string]any
	json.NewDecoder(resp.Body).Decode(&made)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(made["key"].(string), "vk_") {
		t.Fatalf("admin create: %d %v", resp.StatusCode, made)
	}
	resp, err = admin.Post(base+"/v1/admin/apikeys", "application/json", strings.NewReader(`{"name":"bad","scopes":["verdict:nope"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unknown scope: %d", resp.StatusCode)
	}
	resp, err = admin.Post(base+"/v1/admin/apikeys/"+id+"/rotate?overlap=0s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rotated map[string]any
	json.NewDecoder(resp.Body).Decode(&rotated)
	resp.Body.Close()
	newKey, _ := rotated["key"].(string)
	if st, _ := decideWithKey(t, base, "X-API-Key", key); st != 401 {
		t.Fatalf("the old secret after a rotation without overlap: %d", st)
	}
	if st, _ := decideWithKey(t, base, "X-API-Key", newKey); st != 200 {
		t.Fatalf("the rotated key: %d", st)
	}
	req, _ = http.NewRequest("DELETE", base+"/v1/admin/apikeys/"+id, nil)
	if resp, err = admin.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"state":"revoked"`) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if st, _ := decideWithKey(t, base, "X-API-Key", newKey); st != 401 {
		t.Fatalf("a revoked key decided: %d", st)
	}
	if strings.Contains(logs.String(), key[20:]) || strings.Contains(logs.String(), newKey[20:]) {
		t.Fatal("a key's secret was logged")
	}
}

// TestReplicasRefuseARevokedAPIKey: a key revoked on one replica stops
// working on the others within the poll interval, although they cached it.
func TestReplicasRefuseARevokedAPIKey(t *testing.T) {
	c := startCluster(t, 3, nil)
	code, out, errOut := cli(t, "", "apikey", "create", "--name", "svc", "--scope", "verdict:decide", "--store", c.redis.URL())
	if code != 0 {
		t.Fatal(errOut)
	}
	key := regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
	id := regexp.MustCompile(`API key (\S+) created`).FindStringSubmatch(out)[1]
	for _, r := range c.replicas {
		if st, d := decideWithKey(t, r.base, "X-API-Key", key); st != 200 {
			t.Fatalf("%s: %d %v", r.base, st, d)
		}
	}
	if code, _, errOut := cli(t, "", "apikey", "revoke", id, "--store", c.redis.URL()); code != 0 {
		t.Fatal(errOut)
	}
	for _, r := range c.replicas {
		within(t, testPoll+2*time.Second, "the revoked key refused on "+r.base, func() bool {
			st, _ := decideWithKey(t, r.base, "X-API-Key", key)
			return st == 401
		})
	}
}

// TestAPIKeyRateLimitsAndCLI: each key is its own client for the route
// limits (one key over its limit does not slow another), and verdict
// apikey list and rotate work as documented.
func TestAPIKeyRateLimitsAndCLI(t *testing.T) {
	dataDir := t.TempDir()
	keys := make([]string, 2)
	for i := range keys {
		code, out, errOut := cli(t, "", "apikey", "create", "--name", fmt.Sprintf("svc%d", i), "--scope", "verdict:decide", "--data-dir", dataDir)
		if code != 0 {
			t.Fatal(errOut)
		}
		keys[i] = regexp.MustCompile(`key: (vk_\S+)`).FindStringSubmatch(out)[1]
	}
	code, out, _ := cli(t, "", "apikey", "list", "--json", "--data-dir", dataDir)
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0]["state"] != "active" || strings.Contains(out, "vk_") {
		t.Fatalf("list: %d %s", code, out)
	}
	id := list[0]["id"].(string)
	code, out, _ = cli(t, "", "apikey", "rotate", id, "--overlap", "1h", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "old secret works until") {
		t.Fatalf("rotate: %s", out)
	}
	if code, _, errOut := cli(t, "", "apikey", "create", "--name", "x", "--scope", "verdict:nope", "--data-dir", dataDir); code == 0 || !strings.Contains(errOut, "verdict:nope") {
		t.Fatalf("unknown scope: %d %s", code, errOut)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "verdict.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\nserver: {rate_limits: {decide: {per_client: 3, window: 1m}}}\n")
	stop, _ := serveArgs(t, addr, []string{"serve", "--config", cfg, "--addr", addr, "--bundle", bundleDir(t, map[string]string{"p.verdict.yaml": policy}), "--data-dir", dataDir})
	defer stop()
	base := "http://" + addr
	limited := false
	for range 6 {
		if st, _ := decideWithKey(t, base, "X-API-Key", keys[1]); st == 429 {
			limited = true
		}
	}
	if !limited {
		t.Fatal("a key over its limit was not limited")
	}
	if st, _ := decideWithKey(t, base, "X-API-Key", keys[0]); st != 200 {
		t.Fatalf("another key was slowed by the first's flood: %d", st)
	}
}
