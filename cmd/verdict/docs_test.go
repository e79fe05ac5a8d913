package main

// Runnable documentation: TestDocsRunAsWritten runs the shell blocks of
// README.md and docs/{tokens,policies,users,apikeys,scim,plans}.md that are marked runnable,
// so that a step that does not run as written fails the build.
//
// The marker is an HTML comment (invisible when the Markdown is rendered)
// on the line right before a block's opening fence:
//
//	<!-- runnable -->                  run the block; it must exit 0
//	<!-- runnable exit=N -->           it must exit N (a step showing a refusal)
//	<!-- runnable background URL -->   a server that keeps running: start it
//	                                   in the background and wait until URL
//	                                   answers 2xx (or the server exits: fail)
//
// The blocks of one document run in order in one bash, as a reader pastes
// them into one terminal (variables and background jobs carry over), with
// set -euo pipefail, and with curl failing on an HTTP error status
// (--fail-with-body), so that a refused token fails the step. Its
// background servers are stopped when the document ends. The documents run
// one after the other in one temporary copy of the repository, whose state
// (verdict-data, files a step wrote) the next document finds as a reader
// would.
//
// What differs from a reader's run: the verdict on the PATH is this test
// binary acting as the command (see TestMain), not `make install`'s;
// `make run` becomes the command the Makefile's run target runs after
// building; and the ports 8700 and 8701 become free ones, so that the test
// never meets a server that runs on this machine.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliEnv makes the test binary the verdict command (TestMain).
const cliEnv = "VERDICT_TEST_BINARY_IS_CLI"

// runnableDocs are the documents whose runnable blocks run, in this order.
var runnableDocs = []string{"README.md", "docs/tokens.md", "docs/policies.md", "docs/users.md", "docs/apikeys.md", "docs/scim.md", "docs/plans.md"}

// makeRun is what `make run` runs after building bin/verdict, with the
// Makefile's defaults (checked against the Makefile by the test).
const makeRun = "verdict serve --dev --addr 127.0.0.1:8700 --bundle policies/quickstart"

type docBlock struct {
	file       string
	line       int    // of the opening fence
	text       string // the commands, without the fence's indentation
	exit       int    // the exit status the block must have
	background string // the URL that answers once the server is up; "" for a plain block
}

var (
	markerRE = regexp.MustCompile(`^<!--\s*runnable(\s.*)?-->$`)
	// trailingComment is a comment after a command (no quote in it).
	trailingComment = regexp.MustCompile(`(?m)\s+#[^'"\n]*$`)
)

// runnableBlocks returns the runnable blocks of the Markdown in src.
func runnableBlocks(file, src string) ([]docBlock, error) {
	lines := strings.Split(src, "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		m := markerRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		b := docBlock{file: file, line: i + 2}
		args := strings.Fields(m[1])
		for j := 0; j < len(args); j++ {
			switch {
			case args[j] == "background" && j+1 < len(args):
				b.background = args[j+1]
				j++
			case strings.HasPrefix(args[j], "exit="):
				n, err := strconv.Atoi(strings.TrimPrefix(args[j], "exit="))
				if err != nil {
					return nil, fmt.Errorf("%s:%d: bad marker %q", file, i+1, lines[i])
				}
				b.exit = n
			default:
				return nil, fmt.Errorf("%s:%d: bad marker %q (runnable [exit=N] [background URL])", file, i+1, lines[i])
			}
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```sh" {
			return nil, fmt.Errorf("%s:%d: a runnable marker must be right before a ```sh fence", file, i+1)
		}
		indent := lines[i+1][:strings.Index(lines[i+1], "```")]
		var body []string
		for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s:%d: unclosed block", file, b.line)
		}
		b.text = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out, nil
}

// script is the bash program that runs the blocks of one document.
func script(blocks []docBlock, ports *strings.Replacer) string {
	var s strings.Builder
	s.WriteString(`set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
curl() { command curl --fail-with-body --show-error --max-time 30 "$@"; }
__up() { # wait until $2 answers while the server with pid $1 runs
  for _ in $(seq 200); do
    if command curl -fs -o /dev/null --max-time 2 "$2"; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then echo "the server of this step exited" >&2; return 1; fi
    sleep 0.1
  done
  echo "no answer from $2" >&2; return 1
}
`)
	for _, b := range blocks {
		text := ports.Replace(b.text)
		fmt.Fprintf(&s, "\nprintf '\\n>>> %s:%d\\n'\n", b.file, b.line)
		switch {
		case b.background != "":
			// A reader keeps it in the foreground of its own terminal.
			text = strings.TrimSpace(trailingComment.ReplaceAllString(text, ""))
			if !strings.HasSuffix(text, "&") {
				text += " &"
			}
			fmt.Fprintf(&s, "%s\n__up $! %s\n", text, ports.Replace(b.background))
		case b.exit != 0:
			fmt.Fprintf(&s, "set +e\n(\n%s\n)\n__rc=$?\nset -e\n", text)
			fmt.Fprintf(&s, "if [ $__rc -ne %d ]; then echo \"exit status $__rc, the document says %d\" >&2; exit 1; fi\n", b.exit, b.exit)
		default:
			s.WriteString(text + "\n")
		}
	}
	return s.String()
}

// copyRepo copies the repository at root into dst, without .git, built
// binaries and state.
func copyRepo(t *testing.T, root, dst string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (name == ".git" || name == "bin" || strings.HasPrefix(name, "verdict-data") || name == "fuzz-cache") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

// TestDocsRunAsWritten runs the runnable blocks of the documents (see the
// top of this file) against real verdict serve processes.
func TestDocsRunAsWritten(t *testing.T) {
	bash := needTool(t, "bash")
	needTool(t, "curl")
	root := repoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ADDR      ?= 127.0.0.1:8700", "BUNDLE    ?= policies/quickstart", "./$(BIN) serve --dev --addr $(ADDR) --bundle $(BUNDLE)"} {
		if !bytes.Contains(mk, []byte(want)) {
			t.Fatalf("the Makefile's run target changed (no %q): update makeRun", want)
		}
	}

	work := t.TempDir()
	repo, bin, home := filepath.Join(work, "repo"), filepath.Join(work, "bin"), filepath.Join(work, "home")
	copyRepo(t, root, repo)
	for _, d := range []string{bin, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "verdict")); err != nil {
		t.Fatal(err)
	}
	env := []string{cliEnv + "=1", "HOME=" + home, "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"LANG=C.UTF-8", "TMPDIR=" + work}
	ports := strings.NewReplacer(":8700", ":"+freePort(t), ":8701", ":"+freePort(t))

	for _, doc := range runnableDocs {
		src, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := runnableBlocks(doc, string(src))
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			t.Fatalf("%s has no runnable block", doc)
		}
		for i := range blocks {
			blocks[i].text = regexp.MustCompile(`(?m)^make run\b`).ReplaceAllString(blocks[i].text, makeRun)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		cmd := exec.CommandContext(ctx, bash, "-c", script(blocks, ports))
		cmd.Dir, cmd.Env = repo, env
		// Its own process group, killed whole when the document ends, so
		// that no server outlives the test.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		cancel()
		if err != nil {
			t.Fatalf("%s does not run as written (%v); the output from its last step:\n%s", doc, err, lastStep(out.String()))
		}
		t.Logf("%s: %d runnable blocks ran", doc, len(blocks))
		if os.Getenv("VERDICT_DOCS_OUTPUT") == "1" {
			t.Logf("%s output:\n%s", doc, out.String())
		}
	}
}

// lastStep is out from the last step's >>> marker on.
func lastStep(out string) string {
	if i := strings.LastIndex(out, "\n>>> "); i >= 0 {
		out = out[i+1:]
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for n := 0; sc.Scan() && n < 80; n++ {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}
