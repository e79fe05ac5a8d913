package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/strictjson"
)

// Limits bound what a bundle may hold. They protect the server from archives
// that expand to more than memory can take.
type Limits struct {
	// MaxCompressedBytes bounds a .tar.gz file as stored.
	MaxCompressedBytes int64 `yaml:"max_compressed_bytes"`
	// MaxBytes bounds the sum of all file sizes after decompression.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxFileBytes bounds any single file.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// MaxFiles bounds the number of files.
	MaxFiles int `yaml:"max_files"`
	// MaxPathLength bounds a file's path inside the bundle.
	MaxPathLength int `yaml:"max_path_length"`
}

// DefaultLimits returns 64 MiB compressed, 256 MiB in all, 64 MiB a file,
// 10,000 files and 1,024-byte paths.
func DefaultLimits() Limits {
	return Limits{
		MaxCompressedBytes: 64 << 20,
		MaxBytes:           256 << 20,
		MaxFileBytes:       64 << 20,
		MaxFiles:           10_000,
		MaxPathLength:      1024,
	}
}

// Validate reports every problem with l, joined.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxCompressedBytes <= 0 || l.MaxBytes <= 0 || l.MaxFileBytes <= 0 {
		errs = append(errs, errors.New("bundle size limits must be positive"))
	}
	if l.MaxFiles <= 0 {
		errs = append(errs, errors.New("bundle max files must be positive"))
	}
	if l.MaxPathLength <= 0 {
		errs = append(errs, errors.New("bundle max path length must be positive"))
	}
	return errors.Join(errs...)
}

// Manifest is the OPA .manifest file.
type Manifest struct {
	Revision string `json:"revision"`
	// RegoVersion 0 parses the bundle's Rego as v0 (OPA before 1.0); absent
	// or 1 means v1.
	RegoVersion *int           `json:"rego_version,omitempty"`
	Roots       *[]string      `json:"roots,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// Bundle is a bundle read into memory: every file by its clean, slash
// separated path relative to the bundle root.
type Bundle struct {
	// Source is where the bundle was read from (a path), for messages.
	Source string
	// Files maps each path to its contents.
	Files map[string][]byte
	// Manifest is the parsed .manifest, zero when absent.
	Manifest Manifest
	// Digest is "sha256:" and the hex SHA-256 over every path and content.
	Digest string

	// dirs are the directory's absolute path, as OPA names one, when Load
	// read a directory (see dirNames); nil for an archive.
	dirs []string
}

// Revision returns the manifest's revision, else the digest.
func (b *Bundle) Revision() string {
	if b.Manifest.Revision != "" {
		return b.Manifest.Revision
	}
	return b.Digest
}

// ReadError is a bundle that could not be read: too large, unsafe, corrupt or
// with an invalid manifest. Entry names the offending file when there is one.
type ReadError struct {
	Entry string
	Err   error
}

// Error returns the problem, naming the entry when known.
func (e *ReadError) Error() string {
	if e.Entry != "" {
		return fmt.Sprintf("bundle entry %q: %v", e.Entry, e.Err)
	}
	return "bundle: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ReadError) Unwrap() error { return e.Err }

// Load reads the bundle at p: a directory, or a .tar.gz (.tgz) file. It
// returns a *ReadError if the bundle breaks a limit, holds a link or a special
// file, or has a path that escapes its root.
func Load(p string, l Limits) (*Bundle, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, &ReadError{Err: err}
	}
	if fi.IsDir() {
		return loadDir(p, l)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, &ReadError{Err: err}
	}
	defer f.Close()
	if fi.Size() > l.MaxCompressedBytes {
		return nil, &ReadError{Err: fmt.Errorf("archive is %d bytes, over the %d-byte limit", fi.Size(), l.MaxCompressedBytes)}
	}
	b, err := ReadArchive(f, l)
	if b != nil {
		b.Source = p
	}
	return b, err
}

type collector struct {
	l       Limits
	files   map[string][]byte
	fold    map[string]string
	total   int64
	entries int // every entry, directories included, against MaxFiles
}

func newCollector(l Limits) *collector {
	return &collector{l: l, files: map[string][]byte{}, fold: map[string]string{}}
}

// name cleans an entry name the way OPA reads them: a leading "/" means the
// bundle root.
func (c *collector) name(raw string) (string, error) {
	if !utf8.ValidString(raw) || strings.ContainsRune(raw, 0) {
		return "", errors.New("name is not valid UTF-8 or contains NUL")
	}
	if len(raw) > c.l.MaxPathLength {
		return "", fmt.Errorf("path is longer than %d bytes", c.l.MaxPathLength)
	}
	n := strings.TrimPrefix(filepath.ToSlash(raw), "/")
	clean := path.Clean(n)
	if clean == "." {
		return "", errors.New("empty name")
	}
	if clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
		return "", errors.New("path escapes the bundle root")
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errors.New("path escapes the bundle root")
		}
	}
	return clean, nil
}

func (c *collector) add(raw string, size int64, r io.Reader) error {
	name, err := c.name(raw)
	if err != nil {
		return &ReadError{Entry: raw, Err: err}
	}
	if err := c.count(raw); err != nil {
		return err
	}
	// Sizes come from the header (tar) or the file system, and are checked
	// before a byte is read: a header that claims 10 GiB costs nothing.
	if size > c.l.MaxFileBytes {
		return &ReadError{Entry: raw, Err: fmt.Errorf("file is %d bytes, over the %d-byte limit", size, c.l.MaxFileBytes)}
	}
	if size > 0 && c.total+size > c.l.MaxBytes {
		return &ReadError{Entry: raw, Err: fmt.Errorf("bundle is over the %d-byte limit when decompressed", c.l.MaxBytes)}
	}
	if _, dup := c.files[name]; dup {
		return &ReadError{Entry: raw, Err: errors.New("duplicate file")}
	}
	if other, dup := c.fold[strings.ToLower(name)]; dup {
		return &ReadError{Entry: raw, Err: fmt.Errorf("name differs only in case from %q", other)}
	}
	// Exactly size bytes are allocated, once: growing a buffer while
	// reading would cost up to twice the file and leave the garbage of
	// every smaller copy behind, which a gzip bomb multiplies.
	data := make([]byte, max(size, 0))
	if _, err := io.ReadFull(r, data); err != nil {
		return &ReadError{Entry: raw, Err: fmt.Errorf("reading: %w", err)}
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return &ReadError{Entry: raw, Err: fmt.Errorf("file is longer than the %d bytes its header or the file system said", size)}
	}
	c.total += int64(len(data))
	if c.total > c.l.MaxBytes {
		return &ReadError{Entry: raw, Err: fmt.Errorf("bundle is over the %d-byte limit when decompressed", c.l.MaxBytes)}
	}
	c.files[name] = data
	c.fold[strings.ToLower(name)] = name
	return nil
}

// count charges one entry against MaxFiles: directories count too, so that
// an archive of a million empty directories stops early.
func (c *collector) count(raw string) error {
	c.entries++
	if c.entries > c.l.MaxFiles {
		return &ReadError{Entry: raw, Err: fmt.Errorf("bundle has more than %d entries (files and directories)", c.l.MaxFiles)}
	}
	return nil
}

func loadDir(root string, l Limits) (*Bundle, error) {
	c := newCollector(l)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return &ReadError{Err: err}
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") && d.Name() != ".manifest" {
				return filepath.SkipDir // .git and friends are not part of a bundle
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return &ReadError{Entry: filepath.ToSlash(rel), Err: errors.New("symbolic links are not allowed in a bundle")}
		}
		if !d.Type().IsRegular() {
			return &ReadError{Entry: filepath.ToSlash(rel), Err: errors.New("not a regular file")}
		}
		info, err := d.Info()
		if err != nil {
			return &ReadError{Entry: rel, Err: err}
		}
		f, err := os.Open(p)
		if err != nil {
			return &ReadError{Entry: rel, Err: err}
		}
		defer f.Close()
		return c.add(filepath.ToSlash(rel), info.Size(), f)
	})
	if err != nil {
		return nil, err
	}
	b, err := finish(root, c.files)
	if b != nil {
		b.dirs = dirNames(root)
	}
	return b, err
}

// errCompressedTooLarge is what capped returns past the compressed limit.
var errCompressedTooLarge = errors.New("archive is over the compressed size limit")

// capped reads at most n bytes of r and then fails with
// errCompressedTooLarge, rather than ending quietly as io.LimitReader does
// (which would read as a truncated archive).
type capped struct {
	r io.Reader
	n int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errCompressedTooLarge
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// ReadArchive reads a gzip-compressed tar bundle from r within the limits l,
// into memory only: nothing is written to disk. It stops at the first
// problem, so a gzip bomb is decompressed no further than the limits. It
// returns a *ReadError, naming the entry when there is one, for anything
// unsafe or corrupt.
func ReadArchive(r io.Reader, l Limits) (*Bundle, error) {
	zr, err := gzip.NewReader(&capped{r: r, n: l.MaxCompressedBytes})
	if err != nil {
		if errors.Is(err, errCompressedTooLarge) {
			return nil, &ReadError{Err: fmt.Errorf("archive is over the %d-byte compressed limit", l.MaxCompressedBytes)}
		}
		return nil, &ReadError{Err: fmt.Errorf("not a gzip archive: %w", err)}
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	c := newCollector(l)
	last := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, archiveError(err, last, l)
		}
		last = h.Name
		switch h.Typeflag {
		case tar.TypeDir:
			if _, err := c.name(h.Name); err != nil {
				return nil, &ReadError{Entry: h.Name, Err: err}
			}
			if err := c.count(h.Name); err != nil {
				return nil, err
			}
			continue
		case tar.TypeXGlobalHeader:
			// PAX global headers (git archive writes one) carry no file.
			if err := c.count(h.Name); err != nil {
				return nil, err
			}
			continue
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, &ReadError{Entry: h.Name, Err: errors.New("links are not allowed in a bundle")}
		default:
			return nil, &ReadError{Entry: h.Name, Err: fmt.Errorf("entry type %q is not a regular file", h.Typeflag)}
		}
		if err := c.add(h.Name, h.Size, tr); err != nil {
			var re *ReadError
			if errors.As(err, &re) && errors.Is(err, errCompressedTooLarge) {
				re.Err = fmt.Errorf("archive is over the %d-byte compressed limit", l.MaxCompressedBytes)
			}
			return nil, err
		}
	}
	return finish("", c.files)
}

// archiveError explains a failure of the tar or gzip stream between
// entries: over the compressed limit, or corrupt or truncated after the entry
// last read.
func archiveError(err error, last string, l Limits) error {
	if errors.Is(err, errCompressedTooLarge) {
		return &ReadError{Entry: last, Err: fmt.Errorf("archive is over the %d-byte compressed limit", l.MaxCompressedBytes)}
	}
	if last != "" {
		return &ReadError{Entry: last, Err: fmt.Errorf("corrupt or truncated archive after this entry: %w", err)}
	}
	return &ReadError{Err: fmt.Errorf("corrupt or truncated archive: %w", err)}
}

// FromFiles builds a bundle from files already in memory (for tests and
// tools). Paths are cleaned as for archives.
func FromFiles(files map[string][]byte, l Limits) (*Bundle, error) {
	c := newCollector(l)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.add(n, int64(len(files[n])), bytes.NewReader(files[n])); err != nil {
			return nil, err
		}
	}
	return finish("", c.files)
}

func finish(source string, files map[string][]byte) (*Bundle, error) {
	b := &Bundle{Source: source, Files: files, Digest: digest(files)}
	if raw, ok := files[".manifest"]; ok {
		if err := strictjson.Unmarshal(raw, &b.Manifest); err != nil {
			return nil, &ReadError{Entry: ".manifest", Err: fmt.Errorf("invalid JSON: %s", strictjson.Position(raw, err))}
		}
		if v := b.Manifest.RegoVersion; v != nil && *v != 0 && *v != 1 {
			return nil, &ReadError{Entry: ".manifest", Err: fmt.Errorf("rego_version must be 0 or 1, got %d", *v)}
		}
	}
	return b, nil
}

// digest hashes every path and content in path order, with lengths so that
// no two different bundles hash the same stream.
func digest(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s\n%d:", len(n), n, len(files[n]))
		h.Write(files[n])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
