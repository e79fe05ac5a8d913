package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/verdictpdp/verdict/bundles"
)

// TestConsoleInChromium walks the console in a real headless Chromium
// against a real serve, as a policy author would: sign in with an admin
// client, see what is active, push a bundle that does not compile and
// read its errors, try an input in the playground and read its trace,
// preview a stored revision, roll back to it. It saves a screenshot of
// each page in a temporary directory, or in VERDICT_SCREENSHOTS when set
// (`make screenshots` writes docs/console/, shown in docs/console.md).
// No page may trip its own Content-Security-Policy.
func TestConsoleInChromium(t *testing.T) {
	b := startBrowser(t, 2*time.Minute)
	shots := os.Getenv("VERDICT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	base, ops, _ := consoleServe(t)
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	// Sign in: the console sends the browser to its sign-in page.
	b.run("console", chromedp.Navigate(base+"/console"))
	if h := b.text("h1"); h != "Sign in to the console" {
		t.Fatalf("not signed in, the console shows %q", h)
	}
	b.screenshot(shots, "sign-in")
	b.submit("sign in", chromedp.SendKeys(id("client_id"), "ops"), chromedp.SendKeys(id("client_secret"), ops), chromedp.Click(id("console-sign-in")))
	if rev := b.text("#active-revision"); rev != "v2" {
		t.Fatalf("overview: active %q", rev)
	}
	b.screenshot(shots, "overview")

	// Push a bundle that does not compile: its error, with file:line:col.
	broken, err := bundles.FromFiles(map[string][]byte{".manifest": []byte(`{"revision":"v3"}`),
		"p.verdict.yaml": []byte(strings.Replace(policy, "== subject.id", "== subject.nope(", 1))}, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	archive, err := bundles.Pack(broken)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "v3.tar.gz")
	if err := os.WriteFile(file, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("push page", chromedp.Navigate(base+"/console/push"))
	b.submit("push", chromedp.SetUploadFiles(id("archive"), []string{file}), chromedp.Click(id("push")))
	if problems := b.text("#problem-list"); !regexp.MustCompile(`p\.verdict\.yaml:\d+:\d+`).MatchString(problems) {
		t.Fatalf("push problems: %q", problems)
	}
	b.screenshot(shots, "push-error")

	// The playground: bob may read under v2 (everyone-reads), with the trace.
	b.run("playground", chromedp.Navigate(base+"/console/playground"))
	bob := `{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"alice"}}}`
	b.submit("decide", chromedp.SetValue(id("input"), bob), chromedp.Click(id("decide")))
	if d := b.text("#decision"); d != "allow" {
		t.Fatalf("playground decision %q", d)
	}
	if trace := b.text("#trace"); !strings.Contains(trace, "everyone-reads") || !strings.Contains(trace, "owners") {
		t.Fatalf("trace %q", trace)
	}
	if schema := b.text("#schema"); !strings.Contains(schema, `"owner": {`) {
		t.Fatalf("the schema beside the input: %q", schema)
	}
	b.screenshot(shots, "playground")

	// Preview v1 (stored): bob's read would flip to a deny.
	b.run("preview", chromedp.Navigate(base+"/console/preview"))
	b.submit("run preview", chromedp.SetValue(id("candidate"), "v1"), chromedp.SetValue(id("inputs"), "["+bob+"]"), chromedp.Click(id("run-preview")))
	if sum := b.text("#preview-summary"); !strings.Contains(sum, "1 of 1 decisions change: 1 allow → deny") {
		t.Fatalf("preview summary %q", sum)
	}
	b.screenshot(shots, "preview")

	// Roll back to v1, with the confirmation, using the keyboard only
	// (Enter on the focused button).
	b.run("revisions", chromedp.Navigate(base+"/console/revisions"))
	b.screenshot(shots, "revisions")
	b.submit("to the confirmation", chromedp.Click(chromedp.CSS(`a[href="/console/revisions/v1/activate"]`)))
	b.screenshot(shots, "activate")
	b.submit("confirm", chromedp.Focus(id("confirm-activate")), chromedp.KeyEvent("\r"))
	if n := b.text(".notice"); !strings.Contains(n, "Revision v1 is active") {
		t.Fatalf("after the rollback: %q", n)
	}
	if _, rev := decideRev(t, base, "read"); rev != "v1" {
		t.Fatalf("decisions after the rollback come from %s", rev)
	}
	// The decision-log tail, filtered to v1's decisions.
	within(t, 5*time.Second, "the tail shows the decision made after the rollback", func() bool {
		b.run("decisions", chromedp.Navigate(base+"/console/decisions?revision=v1"))
		return strings.Contains(b.text("#tail"), "user:alice")
	})
	b.screenshot(shots, "decisions")
	b.noViolations()
}
