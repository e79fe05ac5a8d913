package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"sort"
)

// Pack writes b as a .tar.gz in memory, every file a regular entry in path
// order with a fixed mode and time, so that the same files always pack to
// the same bytes. Reading the result with ReadArchive gives b's files and
// digest back. It returns an error only if compression fails.
func Pack(b *Bundle) ([]byte, error) {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		data := b.Files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("pack %s: %w", n, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("pack %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return buf.Bytes(), nil
}
