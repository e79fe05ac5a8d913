package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// auditLine returns the one line of stderr that is the audit event msg, as
// its JSON attributes.
func auditLine(t *testing.T, stderr, msg string) map[string]any {
	t.Helper()
	var found map[string]any
	for line := range strings.Lines(stderr) {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["msg"] != msg {
			continue
		}
		if found != nil {
			t.Fatalf("two %q lines:\n%s", msg, stderr)
		}
		found = ev
	}
	if found == nil || found["audit"] != true || found["by"] != "cli" {
		t.Fatalf("no %q audit event (audit=true, by=cli) in:\n%s", msg, stderr)
	}
	return found
}

// TestCLIAuditEvents: the keys and client commands log each state change
// as an audit event on stderr, success and failure, never the secret.
func TestCLIAuditEvents(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "verdict.yaml")
	writeFile(t, cfg, "log: {format: json}\n")
	// args are a command, its subcommand and the rest; the common flags go
	// right after the subcommand, so that a kid (which may start with "-")
	// can follow a "--" at the end.
	verdict := func(args ...string) (int, string, string) {
		t.Helper()
		all := append([]string{args[0], args[1], "--config", cfg, "--data-dir", dir}, args[2:]...)
		return cli(t, "", all...)
	}
	want := func(ev map[string]any, kv map[string]any) {
		t.Helper()
		for k, v := range kv {
			if ev[k] != v {
				t.Errorf("event %v: %s = %v, want %v", ev["msg"], k, ev[k], v)
			}
		}
	}
	secretOf := regexp.MustCompile(`client_secret: (\S+)`)

	code, out, errOut := verdict("client", "add", "--id", "gw", "--scope", "verdict:decide")
	m := secretOf.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("client add: %d %s %s", code, out, errOut)
	}
	if strings.Contains(errOut, m[1]) {
		t.Fatal("client add logged the secret")
	}
	want(auditLine(t, errOut, "client added"), map[string]any{"action": "client.add", "client_id": "gw", "outcome": "success", "level": "INFO"})

	code, out, errOut = verdict("client", "rotate-secret", "gw")
	m = secretOf.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("rotate-secret: %d %s %s", code, out, errOut)
	}
	if strings.Contains(errOut, m[1]) {
		t.Fatal("rotate-secret logged the secret")
	}
	want(auditLine(t, errOut, "client secret rotated"), map[string]any{"action": "client.rotate-secret", "client_id": "gw", "outcome": "success"})

	_, _, errOut = verdict("client", "remove", "gw")
	want(auditLine(t, errOut, "client removed"), map[string]any{"action": "client.remove", "client_id": "gw", "outcome": "success"})
	if code, _, errOut = verdict("client", "remove", "gw"); code == 0 {
		t.Fatal("removing a removed client succeeded")
	}
	want(auditLine(t, errOut, "client.remove failed"), map[string]any{"action": "client.remove", "client_id": "gw", "outcome": "failure", "level": "WARN"})
	if _, _, errOut = verdict("client", "add", "--id", "bad id", "--scope", "x"); !strings.Contains(errOut, `"outcome":"failure"`) {
		t.Fatalf("a refused client add is not audited: %s", errOut)
	}

	code, out, errOut = verdict("keys", "rotate")
	kid := regexp.MustCompile(`new key (\S+)`).FindStringSubmatch(out)
	if code != 0 || kid == nil {
		t.Fatalf("keys rotate: %d %s %s", code, out, errOut)
	}
	want(auditLine(t, errOut, "signing key rotated"), map[string]any{"action": "keys.rotate", "kid": kid[1], "alg": "ES256", "outcome": "success"})
	_, _, errOut = verdict("keys", "revoke", "--", kid[1])
	want(auditLine(t, errOut, "signing key revoked"), map[string]any{"action": "keys.revoke", "kid": kid[1], "outcome": "success", "level": "WARN"})
	if strings.Contains(errOut, "private") || strings.Contains(errOut, `"d":`) {
		t.Fatalf("keys revoke logged key material: %s", errOut)
	}
	_, _, errOut = verdict("keys", "revoke", "nosuchkid")
	want(auditLine(t, errOut, "keys.revoke failed"), map[string]any{"kid": "nosuchkid", "outcome": "failure"})

	// Reading commands change nothing and log no audit event.
	for _, args := range [][]string{{"client", "list"}, {"keys", "list"}} {
		if _, _, errOut := verdict(args...); strings.Contains(errOut, `"audit":true`) {
			t.Errorf("%v logged an audit event: %s", args, errOut)
		}
	}
}
