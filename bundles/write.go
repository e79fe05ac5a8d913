package bundles

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sort"

	"github.com/verdictpdp/verdict/internal/strictjson"
)

// WriteArchive writes b to w as a gzip-compressed tar in OPA's layout: one
// regular-file entry per file, named with a leading "/" as `opa build` writes
// them (/data.json, /.manifest, /.signatures.json), in path order, with mode
// 0644 and no time stamps, so that the same bundle always gives the same
// bytes. Both Verdict and OPA read the result. It returns the first write
// error.
func WriteArchive(w io.Writer, b *Bundle) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data := b.Files[n]
		h := &tar.Header{Name: "/" + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("bundle archive: %s: %w", n, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("bundle archive: %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle archive: %w", err)
	}
	return nil
}

// WithRevision returns a copy of b whose .manifest carries revision rev,
// every other manifest field kept as it was (a .manifest is created when
// there is none). b is not changed. It returns a *ReadError when the
// existing .manifest is not a JSON object.
func (b *Bundle) WithRevision(rev string) (*Bundle, error) {
	m := map[string]any{}
	if raw, ok := b.Files[".manifest"]; ok {
		if err := strictjson.Unmarshal(raw, &m); err != nil {
			return nil, &ReadError{Entry: ".manifest", Err: fmt.Errorf("invalid JSON: %s", strictjson.Position(raw, err))}
		}
	}
	m["revision"] = rev
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	files := maps.Clone(b.Files)
	files[".manifest"] = append(raw, '\n')
	out, err := finish(b.Source, files)
	if err != nil {
		return nil, err
	}
	return out, nil
}
