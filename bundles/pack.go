package bundles

import "bytes"

// Pack returns b as a .tar.gz in memory, written by WriteArchive: the same
// files always pack to the same bytes, and reading the result with
// ReadArchive gives b's files and digest back. It returns an error only if
// compression fails.
func Pack(b *Bundle) ([]byte, error) {
	var buf bytes.Buffer
	if err := WriteArchive(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
