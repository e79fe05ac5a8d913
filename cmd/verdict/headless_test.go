package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// headless is a real headless Chromium (Debian's chromium) driven with
// chromedp for the tests of Verdict's pages. It records every Content
// Security Policy violation the pages report.
type headless struct {
	t   *testing.T
	ctx context.Context
	// logs, when set, are added to a failure's report (the server's).
	logs func() string

	mu         sync.Mutex
	violations []string
}

// startBrowser starts Chromium (skipped without it unless
// VERDICT_REQUIRE_INTEGRATION=1) with a time limit for the whole test.
func startBrowser(t *testing.T, limit time.Duration) *headless {
	t.Helper()
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := execLookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The browser starts with the first call; the time limit comes after it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium does not start: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, limit)
	t.Cleanup(cancelT)
	b := &headless{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		msg := ""
		switch e := ev.(type) {
		case *log.EventEntryAdded:
			msg = e.Entry.Text
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				msg += a.Description + string(a.Value)
			}
		}
		if strings.Contains(msg, "Content Security Policy") || strings.Contains(msg, "Content-Security-Policy") {
			b.mu.Lock()
			b.violations = append(b.violations, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dump is the current page's HTML (and the server's logs), for failures.
func (b *headless) dump() string {
	html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if b.logs != nil {
		html += "\n" + b.logs()
	}
	return html
}

// text waits for sel and returns its text.
func (b *headless) text(sel string) string {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("%s: %v\n%s", sel, err, b.dump())
	}
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return s
}

// run runs actions, failing the test with the page on an error.
func (b *headless) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.dump())
	}
}

// submit runs actions that end in a form submission and waits until the
// next document has loaded (a new time origin, readyState complete), so
// that the next step never acts on the old page.
func (b *headless) submit(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	before, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64]("performance.timeOrigin"))
	if err != nil {
		b.t.Fatal(err)
	}
	b.run(what, actions...)
	for i := 0; ; i++ {
		now, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64]("document.readyState == 'complete' ? performance.timeOrigin : 0"))
		if err == nil && now != 0 && now != before {
			return
		}
		if i > 200 {
			b.t.Fatalf("%s: no new page: %v\n%s", what, err, b.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the whole page as name.png in dir.
func (b *headless) screenshot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG (below: JPEG)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// noViolations fails the test if a page tripped its own CSP.
func (b *headless) noViolations() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.violations) > 0 {
		b.t.Fatalf("pages tripped their own CSP: %v", b.violations)
	}
}
