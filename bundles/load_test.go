package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/engine"
)

const okPolicy = `apiVersion: verdict.dev/v1
kind: Policy
name: docs
rules:
  - id: owners
    effect: allow
    condition: has(resource.properties.owner) && resource.properties.owner == subject.id
  - id: admins
    effect: allow
    condition: subject.id in data.admins
`

const okTests = `tests:
  - name: owner
    input: {subject: {type: user, id: alice}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: alice}}}
    expect: {decision: true, reasons: [owners]}
  - name: admin
    input: {subject: {type: user, id: root}, action: {name: read}, resource: {type: doc, id: "1"}}
    expect: true
  - name: stranger
    input: {subject: {type: user, id: bob}, action: {name: read}, resource: {type: doc, id: "1", properties: {owner: alice}}}
    expect: false
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type entry struct {
	name, body string
	typ        byte
	link       string
	size       int64 // header size override when > 0
}

func tarGz(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

var goodFiles = map[string]string{
	"docs.verdict.yaml": okPolicy,
	"docs_test.yaml":    okTests,
	"data.json":         `{"admins": ["root"]}`,
	".manifest":         `{"revision": "r7"}`,
}

func TestLoadDirAndArchiveAgree(t *testing.T) {
	dir := writeDir(t, goodFiles)
	fromDir, err := Load(dir, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	var es []entry
	for n, b := range goodFiles {
		es = append(es, entry{name: "/" + n, body: b}) // opa build writes a leading slash
	}
	arch := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(arch, tarGz(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	fromTar, err := Load(arch, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if fromDir.Digest != fromTar.Digest || fromDir.Revision() != "r7" || fromTar.Revision() != "r7" {
		t.Fatalf("dir %s / tar %s, revisions %s %s", fromDir.Digest, fromTar.Digest, fromDir.Revision(), fromTar.Revision())
	}
	snap, err := Compile(context.Background(), []*Bundle{fromTar}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	cases, err := fromTar.Tests()
	if err != nil || len(cases) != 3 {
		t.Fatalf("tests: %d, %v", len(cases), err)
	}
	for _, r := range RunTests(context.Background(), snap, cases) {
		if !r.Passed() {
			t.Errorf("%s: %s", r.Case.Name, r.Failure)
		}
	}
}

func TestRevisionDefaultsToDigest(t *testing.T) {
	files := map[string][]byte{"a.verdict.yaml": []byte(okPolicy)}
	b1, _ := FromFiles(files, DefaultLimits())
	files["a.verdict.yaml"] = []byte(okPolicy + "\n")
	b2, _ := FromFiles(files, DefaultLimits())
	if !strings.HasPrefix(b1.Revision(), "sha256:") || b1.Revision() == b2.Revision() {
		t.Fatalf("revisions %s %s", b1.Revision(), b2.Revision())
	}
}

// rawTarGz writes one USTAR header with name as raw bytes (which
// archive/tar's writer refuses for invalid UTF-8), then body, gzipped.
func rawTarGz(name []byte, body string) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", len(body)))
	copy(h[136:148], "00000000000\x00")
	h[156] = tar.TypeReg
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	data := append([]byte(nil), h...)
	data = append(data, body...)
	data = append(data, make([]byte, (512-len(body)%512)%512+1024)...)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestUnsafeArchivesAreRejected has one case per attack of issue #4 §1; each
// fails if its check is removed from load.go. Every error is a *ReadError that
// names the offending entry.
func TestUnsafeArchivesAreRejected(t *testing.T) {
	small := DefaultLimits()
	small.MaxFileBytes = 100
	small.MaxBytes = 150
	small.MaxFiles = 3
	short := DefaultLimits()
	short.MaxPathLength = 64
	long := strings.Repeat("d/", 40) + "x.rego" // 86 bytes, over 64
	cases := []struct {
		name    string
		archive []byte
		lim     Limits
		entry   string // the entry the error must name ("" for none)
		want    string
	}{
		{"dot-dot", tarGz(t, []entry{{name: "../evil.rego", body: "x"}}), DefaultLimits(), "../evil.rego", "escapes"},
		{"dot-dot after cleaning", tarGz(t, []entry{{name: "a/b/../../../evil", body: "x"}}), DefaultLimits(), "a/b/../../../evil", "escapes"},
		{"dot-dot behind a leading slash", tarGz(t, []entry{{name: "/../etc/passwd", body: "x"}}), DefaultLimits(), "/../etc/passwd", "escapes"},
		{"double leading slash", tarGz(t, []entry{{name: "//etc/passwd", body: "x"}}), DefaultLimits(), "//etc/passwd", "escapes"},
		{"dot-dot directory", tarGz(t, []entry{{name: "../d/", typ: tar.TypeDir}}), DefaultLimits(), "../d/", "escapes"},
		{"empty name", rawTarGz([]byte("/"), "x"), DefaultLimits(), "/", "empty name"},
		{"symlink", tarGz(t, []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc/passwd"}}), DefaultLimits(), "l", "links"},
		{"hard link", tarGz(t, []entry{{name: "a.rego", body: "x"}, {name: "l", typ: tar.TypeLink, link: "a.rego"}}), DefaultLimits(), "l", "links"},
		{"char device", tarGz(t, []entry{{name: "c", typ: tar.TypeChar}}), DefaultLimits(), "c", "not a regular file"},
		{"block device", tarGz(t, []entry{{name: "b", typ: tar.TypeBlock}}), DefaultLimits(), "b", "not a regular file"},
		{"fifo", tarGz(t, []entry{{name: "f", typ: tar.TypeFifo}}), DefaultLimits(), "f", "not a regular file"},
		{"duplicate", tarGz(t, []entry{{name: "a.rego", body: "x"}, {name: "/a.rego", body: "y"}}), DefaultLimits(), "/a.rego", "duplicate"},
		{"duplicate after cleaning", tarGz(t, []entry{{name: "p/a.rego", body: "x"}, {name: "p//./a.rego", body: "y"}}), DefaultLimits(), "p//./a.rego", "duplicate"},
		{"case collision", tarGz(t, []entry{{name: "A.rego", body: "x"}, {name: "a.rego", body: "y"}}), DefaultLimits(), "a.rego", "case"},
		{"invalid UTF-8", rawTarGz([]byte("bad\xff.rego"), "x"), DefaultLimits(), "bad\xff.rego", "UTF-8"},
		{"over-long path", tarGz(t, []entry{{name: long, body: "x"}}), short, long, "longer than 64"},
		{"file too big", tarGz(t, []entry{{name: "a", body: strings.Repeat("x", 101)}}), small, "a", "101 bytes, over the 100-byte limit"},
		{"total too big", tarGz(t, []entry{{name: "a", body: strings.Repeat("x", 90)}, {name: "b", body: strings.Repeat("x", 90)}}), small, "b", "150-byte limit when decompressed"},
		{"too many files", tarGz(t, []entry{{name: "a"}, {name: "b"}, {name: "c"}, {name: "d"}}), small, "d", "more than 3"},
		{"too many directories", tarGz(t, []entry{{name: "a/", typ: tar.TypeDir}, {name: "b/", typ: tar.TypeDir}, {name: "c/", typ: tar.TypeDir}, {name: "d/", typ: tar.TypeDir}}), small, "d/", "more than 3"},
		{"bad manifest", tarGz(t, []entry{{name: ".manifest", body: "{"}}), DefaultLimits(), ".manifest", "invalid JSON"},
		{"not gzip", []byte("plain text, not an archive"), DefaultLimits(), "", "not a gzip archive"},
	}
	whole := tarGz(t, []entry{{name: "a.verdict.yaml", body: okPolicy + strings.Repeat("# padding\n", 200)}})
	cases = append(cases, struct {
		name    string
		archive []byte
		lim     Limits
		entry   string
		want    string
	}{"truncated", whole[:len(whole)/2], DefaultLimits(), "a.verdict.yaml", "unexpected EOF"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadArchive(bytes.NewReader(tc.archive), tc.lim)
			var re *ReadError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a ReadError containing %q, got %v", tc.want, err)
			}
			if re.Entry != tc.entry {
				t.Fatalf("the error names entry %q, want %q: %v", re.Entry, tc.entry, err)
			}
		})
	}
	for _, name := range []string{"a\x00b", "bad\xff.rego"} {
		if _, err := FromFiles(map[string][]byte{name: []byte("x")}, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("name %q: want a UTF-8/NUL error, got %v", name, err)
		}
	}
}

// TestLeadingSlashIsTheRoot: entry names are read as OPA reads them.
func TestLeadingSlashIsTheRoot(t *testing.T) {
	b, err := ReadArchive(bytes.NewReader(tarGz(t, []entry{
		{name: "/x/", typ: tar.TypeDir},
		{name: "/x/y.rego", body: "package x\n"},
		{name: "/data.json", body: "{}"},
		{name: "/.manifest", body: `{"revision":"r1"}`},
		{name: "./z/w.json", body: "{}"},
	})), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"x/y.rego", "data.json", ".manifest", "z/w.json"} {
		if _, ok := b.Files[want]; !ok {
			t.Errorf("%s missing from %v", want, keys(b.Files))
		}
	}
	if len(b.Files) != 4 || b.Revision() != "r1" {
		t.Fatalf("files %v, revision %q", keys(b.Files), b.Revision())
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestHugeHeaderIsRejectedBeforeReading: a header that claims 10 GiB is
// refused from the header alone; the archive holds none of those bytes, so a
// reader that tried would fail with "unexpected EOF" instead.
func TestHugeHeaderIsRejectedBeforeReading(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "huge.rego", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10 << 30}); err != nil {
		t.Fatal(err)
	}
	zw.Close() // no body, no trailer
	_, err := ReadArchive(bytes.NewReader(buf.Bytes()), DefaultLimits())
	var re *ReadError
	if !errors.As(err, &re) || re.Entry != "huge.rego" || !strings.Contains(err.Error(), "10737418240 bytes, over the") {
		t.Fatalf("want the header's size refused, got %v", err)
	}
	// Within the per-file limit but past the total: refused from the header too.
	l := DefaultLimits()
	l.MaxFileBytes = 10 << 30
	_, err = ReadArchive(bytes.NewReader(buf.Bytes()), l)
	if !errors.As(err, &re) || re.Entry != "huge.rego" || !strings.Contains(err.Error(), "limit when decompressed") {
		t.Fatalf("want the total refused from the header, got %v", err)
	}
}

// TestGzipBombStopsEarly: 64 MiB of zeros in a few dozen KiB; reading stops
// at the decompressed limit, long before the end of the compressed stream.
func TestGzipBombStopsEarly(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	zeros := make([]byte, 512<<10)
	for i := range 128 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("z%03d.json", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(zeros))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(zeros)
	}
	tw.Close()
	zw.Close()
	if buf.Len() > 256<<10 {
		t.Fatalf("the bomb is %d bytes compressed; expected a few KiB", buf.Len())
	}
	l := DefaultLimits()
	l.MaxBytes = 2 << 20
	cr := &countingReader{r: bytes.NewReader(buf.Bytes())}
	_, err := ReadArchive(cr, l)
	var re *ReadError
	if !errors.As(err, &re) || re.Entry != "z004.json" || !strings.Contains(err.Error(), "limit when decompressed") {
		t.Fatalf("want the fifth file refused at the 2 MiB total, got %v", err)
	}
	if cr.n > int64(buf.Len())/4 {
		t.Fatalf("read %d of %d compressed bytes: did not stop early", cr.n, buf.Len())
	}
}

// TestCompressedLimit: an archive over the compressed limit is refused as
// too large (not mistaken for a truncated one), as a stream and as a file.
func TestCompressedLimit(t *testing.T) {
	body := make([]byte, 8<<10)
	for i := range body {
		body[i] = byte(i*7919 + i/3) // poorly compressible
	}
	arch := tarGz(t, []entry{{name: "a.json", body: string(body)}})
	l := DefaultLimits()
	l.MaxCompressedBytes = int64(len(arch)) / 2
	_, err := ReadArchive(bytes.NewReader(arch), l)
	var re *ReadError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "compressed limit") {
		t.Fatalf("stream: want the compressed limit, got %v", err)
	}
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(p, arch, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, l); !errors.As(err, &re) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("file: want the compressed limit, got %v", err)
	}
	l.MaxCompressedBytes = 1 << 20
	if _, err := ReadArchive(bytes.NewReader(arch), l); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
}

// TestReadingWritesNothing: loading an archive creates no file, in the
// temporary directory or next to the archive.
func TestReadingWritesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	p := filepath.Join(dir, "b.tar.gz")
	var es []entry
	for n, b := range goodFiles {
		es = append(es, entry{name: "/" + n, body: b})
	}
	if err := os.WriteFile(p, tarGz(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{tmp, dir} {
		ents, _ := os.ReadDir(d)
		if d == dir && len(ents) == 1 || d == tmp && len(ents) == 0 {
			continue
		}
		t.Fatalf("%s holds %d entries after reading", d, len(ents))
	}
}

func TestSymlinkInDirIsRejected(t *testing.T) {
	dir := writeDir(t, goodFiles)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "x.rego")); err != nil {
		t.Skip("cannot make symlinks here:", err)
	}
	if _, err := Load(dir, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("want a symlink error, got %v", err)
	}
}

func TestCompileErrorsNameFileAndLine(t *testing.T) {
	files := map[string][]byte{
		"a.verdict.yaml": []byte(strings.Replace(okPolicy, "subject.id in data.admins", "subject.id in data.admins &&", 1)),
		"p/b.rego":       []byte("package verdict\n\ndecision := true if {\n  input.x ==\n}\n"),
	}
	b, _ := FromFiles(files, DefaultLimits())
	_, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	var ce engine.CompileErrors
	if !errors.As(err, &ce) {
		t.Fatalf("want CompileErrors, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "a.verdict.yaml:10:") || !strings.Contains(msg, "p/b.rego:") {
		t.Fatalf("errors do not locate both files:\n%s", msg)
	}
}

func TestDataMerge(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{
		"data.json":          []byte(`{"a": {"x": 1}}`),
		"a/data.yaml":        []byte("y: 2\n"),
		"teams/eng/data.yml": []byte("members: [alice]\n"),
	}, DefaultLimits())
	d, err := b.Data()
	if err != nil {
		t.Fatal(err)
	}
	a := d["a"].(map[string]any)
	if a["x"] != int64(1) || a["y"] != int64(2) {
		t.Fatalf("merged data: %#v", d)
	}
	if d["teams"].(map[string]any)["eng"].(map[string]any)["members"].([]any)[0] != "alice" {
		t.Fatalf("nested dir: %#v", d)
	}
	conflict, _ := FromFiles(map[string][]byte{
		"data.json":   []byte(`{"a": {"y": 1}}`),
		"a/data.json": []byte(`{"y": 2}`),
	}, DefaultLimits())
	if _, err := conflict.Data(); err == nil {
		t.Fatal("two data files setting a.y must conflict")
	}
}

func TestManagerKeepsActiveOnFailure(t *testing.T) {
	m := NewManager(DefaultConfig(), nil)
	good := writeDir(t, goodFiles)
	a, err := m.LoadPaths(context.Background(), []string{good})
	if err != nil {
		t.Fatal(err)
	}
	if a.Generation != 1 || a.Tests.Passed != 3 || m.Active().Snapshot.Revision() != "r7" {
		t.Fatalf("active: %+v", a)
	}
	broken := []map[string]string{
		{"docs.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: x\nrules:\n  - id: a\n    effect: allow\n    condition: 1 +\n"},
		{"docs.verdict.yaml": okPolicy, "data.json": `{"admins": ["root"]}`, "bad_test.yaml": "tests:\n  - name: wrong\n    input: {subject: {type: u, id: bob}, action: {name: r}, resource: {type: d, id: '1'}}\n    expect: true\n"},
		{"x.rego": "package verdict\nimport rego.v1\ndecision := http.send({\"method\": \"get\", \"url\": \"http://x\"}).body if true\n"},
		{"README.md": "no policy here"},
		{"data.json": "{not json", "docs.verdict.yaml": okPolicy},
	}
	for i, files := range broken {
		if _, err := m.LoadPaths(context.Background(), []string{writeDir(t, files)}); err == nil {
			t.Fatalf("broken bundle %d was accepted", i)
		}
		if got := m.Active(); got.Generation != 1 || got.Snapshot.Revision() != "r7" {
			t.Fatalf("broken bundle %d replaced the active one: %+v", i, got)
		}
	}
	if _, err := m.LoadPaths(context.Background(), []string{filepath.Join(good, "missing")}); err == nil {
		t.Fatal("a missing path was accepted")
	}
	var tf TestFailures
	_, err = m.LoadPaths(context.Background(), []string{writeDir(t, broken[1])})
	if !errors.As(err, &tf) || !strings.Contains(err.Error(), "bad_test.yaml:2") {
		t.Fatalf("want located test failures, got %v", err)
	}
}

func TestSeveralBundlesCombine(t *testing.T) {
	m := NewManager(DefaultConfig(), nil)
	deny := writeDir(t, map[string]string{"deny.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: guard\nrules:\n  - id: no-bob\n    effect: deny\n    condition: subject.id == 'bob'\n"})
	a, err := m.LoadPaths(context.Background(), []string{writeDir(t, goodFiles), deny})
	if err != nil {
		t.Fatal(err)
	}
	in := func(id string) *engine.Input {
		return &engine.Input{Subject: engine.Entity{Type: "user", ID: id}, Action: engine.Action{Name: "read"},
			Resource: engine.Entity{Type: "doc", ID: "1", Properties: map[string]any{"owner": "bob"}}}
	}
	if d := a.Snapshot.Decide(context.Background(), in("bob"), false); d.Allow || d.Reasons[0] != "no-bob" {
		t.Fatalf("the second bundle's deny must win: %+v", d)
	}
	if d := a.Snapshot.Decide(context.Background(), in("root"), false); !d.Allow {
		t.Fatalf("the first bundle's data must still apply: %+v", d)
	}
	if !strings.Contains(a.Snapshot.Revision(), "r7,sha256:") {
		t.Fatalf("revision %s", a.Snapshot.Revision())
	}
	dup := writeDir(t, map[string]string{"d.verdict.yaml": okPolicy})
	if _, err := m.LoadPaths(context.Background(), []string{writeDir(t, goodFiles), dup}); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("two policies named docs: %v", err)
	}
}

func TestRegoEntrypointFromManifest(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{
		".manifest": []byte(`{"revision":"x","metadata":{"verdict":{"entrypoint":"authz/allow"}}}`),
		"a.rego":    []byte("package authz\n\nallow if input.subject.id == \"alice\"\n"),
	}, DefaultLimits())
	snap, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	d := snap.Decide(context.Background(), &engine.Input{Subject: engine.Entity{Type: "u", ID: "alice"}}, false)
	if !d.Allow {
		t.Fatalf("%+v", d)
	}
	d = snap.Decide(context.Background(), &engine.Input{Subject: engine.Entity{Type: "u", ID: "bob"}}, false)
	if d.Allow || !errors.Is(d.Err, engine.ErrUndefined) {
		t.Fatalf("an undefined rule must deny with ErrUndefined: %+v", d)
	}
}

func TestErrorDenyIsNotAPassingTest(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{
		"e.verdict.yaml": []byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: e\nrules:\n  - id: r\n    effect: allow\n    condition: subject.id + 1 == 2\n"),
		"e_test.yaml": []byte(`tests:
  - name: plain false
    input: {subject: {type: u, id: a}, action: {name: r}, resource: {type: d, id: "1"}}
    expect: false
  - name: error expected
    input: {subject: {type: u, id: a}, action: {name: r}, resource: {type: d, id: "1"}}
    expect: {decision: false, reasons: ["verdict:error"]}
`),
	}, DefaultLimits())
	snap, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	cases, err := b.Tests()
	if err != nil {
		t.Fatal(err)
	}
	rs := RunTests(context.Background(), snap, cases)
	if rs[0].Passed() || !strings.Contains(rs[0].Failure, "evaluation failed") {
		t.Fatalf("a deny caused by an error passed: %+v", rs[0])
	}
	if !rs[1].Passed() {
		t.Fatalf("an expected error failed: %s", rs[1].Failure)
	}
}

func TestRegoV0Bundles(t *testing.T) {
	v0 := "package verdict\n\ndefault decision = false\n\ndecision { input.subject.id == \"alice\" }\n"
	b, _ := FromFiles(map[string][]byte{".manifest": []byte(`{"rego_version": 0}`), "p.rego": []byte(v0)}, DefaultLimits())
	snap, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	if err != nil {
		t.Fatalf("a v0 bundle with rego_version 0 must compile: %v", err)
	}
	if d := snap.Decide(context.Background(), &engine.Input{Subject: engine.Entity{Type: "u", ID: "alice"}}, false); !d.Allow {
		t.Fatalf("v0 decision: %+v", d)
	}
	b, _ = FromFiles(map[string][]byte{"p.rego": []byte(v0)}, DefaultLimits())
	if _, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits()); err == nil {
		t.Fatal("without rego_version 0, v0 syntax must be rejected")
	}
	if _, err := FromFiles(map[string][]byte{".manifest": []byte(`{"rego_version": 3}`)}, DefaultLimits()); err == nil {
		t.Fatal("rego_version 3 accepted")
	}
}

func TestMisspeltTestKeysAreRejected(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"case key": {"tests:\n  - name: x\n    input: {subject: {type: u, id: a}, action: {name: r}, resource: {type: d, id: '1'}}\n    expect: true\n    nwo: '2026-01-01T00:00:00Z'\n",
			`a_test.yaml:5:5: test 1: unknown key "nwo" in test case (did you mean "now"?)`},
		"expect key": {"tests:\n  - name: x\n    input: {subject: {type: u, id: a}, action: {name: r}, resource: {type: d, id: '1'}}\n    expect: {decision: true, reason: [x]}\n",
			`a_test.yaml:4:30: test "x": unknown key "reason" in expect (did you mean "reasons"?)`},
		"top-level key": {"test:\n  - name: x\n",
			`a_test.yaml:1:1: unknown key "test" in the test file (did you mean "tests"?)`},
	} {
		b, _ := FromFiles(map[string][]byte{"a_test.yaml": []byte(tc.body)}, DefaultLimits())
		if _, err := b.Tests(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v\nwant %s", name, err, tc.want)
		}
	}
}

func TestYAMLNumbersKeepTheirKind(t *testing.T) {
	v, err := jsonShape("x", map[string]any{"f": 3.0, "i": 3, "l": []any{1.5, 2}, "n": nil})
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["f"] != 3.0 || m["i"] != int64(3) || m["l"].([]any)[0] != 1.5 || m["l"].([]any)[1] != int64(2) {
		t.Fatalf("%#v", m)
	}
	if _, err := jsonShape("x", map[string]any{"m": map[any]any{1: "a"}}); err == nil {
		t.Fatal("a non-string key was accepted")
	}
	// In a test file, 3.0 reaches the policy as a double, as from JSON.
	b, _ := FromFiles(map[string][]byte{
		"d.verdict.yaml": []byte("apiVersion: verdict.dev/v1\nkind: Policy\nname: d\nrules:\n  - id: dbl\n    effect: allow\n    condition: type(resource.properties.level) == double\n"),
		"d_test.yaml":    []byte("tests:\n  - name: double\n    input: {subject: {type: u, id: a}, action: {name: r}, resource: {type: d, id: '1', properties: {level: 3.0}}}\n    expect: true\n"),
	}, DefaultLimits())
	snap, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	cases, _ := b.Tests()
	if r := RunTests(context.Background(), snap, cases); !r[0].Passed() {
		t.Fatal(r[0].Failure)
	}
}

// TestEachBundlesTestsRunAgainstItsOwnPolicies: a bundle whose tests pass
// alone still passes beside another bundle that denies what it allows.
func TestEachBundlesTestsRunAgainstItsOwnPolicies(t *testing.T) {
	m := NewManager(DefaultConfig(), nil)
	denyAll := writeDir(t, map[string]string{"deny.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: guard\nrules:\n  - id: nobody\n    effect: deny\n"})
	a, err := m.LoadPaths(context.Background(), []string{writeDir(t, goodFiles), denyAll})
	if err != nil {
		t.Fatalf("the first bundle's tests must run against its own policies: %v", err)
	}
	if a.Tests.Passed != 3 {
		t.Fatalf("tests passed: %d", a.Tests.Passed)
	}
	if d := a.Snapshot.Decide(context.Background(), &engine.Input{Subject: engine.Entity{Type: "u", ID: "root"}}, false); d.Allow {
		t.Fatal("the served snapshot must combine both bundles")
	}
}

func TestManifestCacheFlagMustBeBoolean(t *testing.T) {
	b, _ := FromFiles(map[string][]byte{
		".manifest": []byte(`{"metadata":{"verdict":{"cacheTimeDependent":"true"}}}`),
		"a.rego":    []byte("package verdict\n\ndecision := true\n"),
	}, DefaultLimits())
	if _, err := Compile(context.Background(), []*Bundle{b}, engine.DefaultLimits()); err == nil || !strings.Contains(err.Error(), "true or false") {
		t.Fatalf("want an error for a string flag, got %v", err)
	}
}
