package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/redistest"
)

// needTool returns the path of an external program a test needs, skipping
// the test when it is missing, or failing it under
// VERDICT_REQUIRE_INTEGRATION=1.
func needTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv(redistest.RequireEnv) == "1" {
		t.Fatalf("%s is not installed and %s=1 requires this test", name, redistest.RequireEnv)
	}
	t.Skipf("%s is not installed: skipping (%s=1 makes this a failure)", name, redistest.RequireEnv)
	return ""
}

// repoRoot is the directory of go.mod, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// TestMakeStampsEveryBuild: every target that writes the verdict binary
// (build, install, and test, which rebuilds bin/verdict to test the example
// bundles) stamps it with the version, so that `verdict version` and
// /v1/status never fall back to "dev" after `make test`. make -n only prints
// the commands.
func TestMakeStampsEveryBuild(t *testing.T) {
	mk := needTool(t, "make")
	for _, target := range []string{"build", "install", "test"} {
		cmd := exec.Command(mk, "-n", target, "VERSION=v9.9.9-stamp", "GO=go")
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		builds := 0
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "./cmd/verdict") || !(strings.Contains(line, "go build") || strings.Contains(line, "go install")) {
				continue
			}
			builds++
			if !strings.Contains(line, "-X main.version=v9.9.9-stamp") {
				t.Errorf("make %s builds verdict without the version stamp: %s", target, line)
			}
		}
		if builds == 0 {
			t.Errorf("make -n %s builds no verdict binary:\n%s", target, out)
		}
	}
}
