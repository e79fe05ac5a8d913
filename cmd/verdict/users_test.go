package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestUserCLI: verdict user add, list, disable, enable, reset-password,
// unlock, export and erase on a data dir, with their refusals.
func TestUserCLI(t *testing.T) {
	dataDir := t.TempDir()
	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return cli(t, stdin, append(append([]string{"user"}, args...), "--data-dir", dataDir)...)
	}
	if code, _, errOut := run("short\n", "add", "--email", "ada@example.com", "--password-stdin"); code == 0 || !strings.Contains(errOut, "at least 12") {
		t.Fatalf("weak password: %d %s", code, errOut)
	}
	if code, _, errOut := run(userPassword+"\n", "add", "--email", "not an email", "--password-stdin"); code == 0 || !strings.Contains(errOut, "not a valid address") {
		t.Fatalf("bad email: %d %s", code, errOut)
	}
	code, out, errOut := run(userPassword+"\n", "add", "--email", "Ada@Example.com", "--name", "Ada", "--role", "editor", "--group", "staff", "--password-stdin")
	if code != 0 {
		t.Fatalf("add: %s", errOut)
	}
	id := regexp.MustCompile(`user (u_\S+) added`).FindStringSubmatch(out)[1]
	if strings.Contains(errOut, userPassword) {
		t.Fatal("the password was logged")
	}
	if code, _, errOut := run(userPassword+"\n", "add", "--email", "ada@example.com", "--password-stdin"); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("taken email: %d %s", code, errOut)
	}
	_, out, _ = run("", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0]["email"] != "ada@example.com" || list[0]["status"] != "active" {
		t.Fatalf("list: %v %s", err, out)
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, "password_hash") {
		t.Fatal("list shows the password hash")
	}
	if code, out, _ := run("", "disable", "ada@example.com"); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %s", out)
	}
	if _, out, _ := run("", "list"); !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable: %s", out)
	}
	if code, out, _ := run("", "enable", id); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("enable: %s", out)
	}
	if code, _, errOut := run("weak\n", "reset-password", id, "--password-stdin"); code == 0 || !strings.Contains(errOut, "at least 12") {
		t.Fatalf("weak reset: %d %s", code, errOut)
	}
	if code, out, errOut := run(userPassword+" two\n", "reset-password", id, "--password-stdin"); code != 0 || !strings.Contains(out, "changed") {
		t.Fatalf("reset: %s %s", out, errOut)
	}
	if code, _, errOut := run("", "unlock", id); code != 0 {
		t.Fatalf("unlock: %s", errOut)
	}
	if code, _, errOut := run("", "disable", "nobody@example.com"); code == 0 || !strings.Contains(errOut, "no user") {
		t.Fatalf("unknown user: %d %s", code, errOut)
	}
	code, out, errOut = run("", "export", "ada@example.com")
	var ex map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ex) != nil || ex["user"].(map[string]any)["email"] != "ada@example.com" || len(ex["audit_events"].([]any)) < 4 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	if strings.Contains(out, "argon2") {
		t.Fatal("the export holds the password hash")
	}
	if code, _, errOut := run("", "erase", id); code == 0 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("erase without --yes: %d %s", code, errOut)
	}
	if code, out, errOut := run("", "erase", id, "--yes"); code != 0 || !strings.Contains(out, "erased:") {
		t.Fatalf("erase: %s %s", out, errOut)
	}
	if _, out, _ := run("", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after erase: %s", out)
	}
}
