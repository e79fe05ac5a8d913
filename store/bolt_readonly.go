package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNoDatabase means OpenBoltReadOnly found no database file: nothing was
// ever stored in the data directory. It wraps fs.ErrNotExist.
var ErrNoDatabase = fmt.Errorf("store: no database yet: %w", os.ErrNotExist)

// snapshotAttempts bounds how often OpenBoltReadOnly copies a database that
// a writer keeps changing before it gives up with ErrLocked.
const snapshotAttempts = 5

// OpenBoltReadOnly opens the database BoltFile in dir for reading only,
// creating nothing; every write returns an error. It does not wait for a
// running server: bbolt's writer holds an exclusive lock on the file for as
// long as it runs, so when the file stays locked for opts.LockTimeout (zero
// means a tenth of a second here) it reads a consistent copy instead —
// written next to the file (same directory, same 0600 mode, since it holds
// the same secrets) and unlinked as soon as it is open, so nothing is left
// behind. The copy is the state as of the last commit before it was made.
// No database file is ErrNoDatabase; a file a writer changes during every
// attempt to copy it is ErrLocked.
func OpenBoltReadOnly(dir string, opts BoltOptions) (*Bolt, error) {
	if dir == "" {
		return nil, errors.New("store: empty data dir")
	}
	path := filepath.Join(dir, BoltFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoDatabase, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err == nil {
		return &Bolt{db: db, now: now}, nil
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	for range snapshotAttempts {
		db, err := openSnapshot(path)
		if err == nil {
			return &Bolt{db: db, now: now}, nil
		}
		if !errors.Is(err, errChanged) {
			return nil, fmt.Errorf("store: read %s while it is in use: %w", path, err)
		}
	}
	return nil, fmt.Errorf("store: open %s: it changed during every copy: %w", path, ErrLocked)
}

// errChanged means a commit finished while openSnapshot copied the file.
var errChanged = errors.New("the database changed while it was copied")

// openSnapshot copies the database at path and opens the copy read-only.
//
// Why a copy taken without the lock is consistent: bbolt never overwrites a
// page the last committed tree uses; a commit writes its pages to free ones
// and then one of the two meta pages at the start of the file, which names
// the new tree. If the meta pages read again after the copy are unchanged,
// no commit finished during it, so the copy's newest meta names a tree whose
// pages were all copied intact (a commit still under way only wrote pages
// that tree does not use). Otherwise errChanged, and the caller tries again.
func openSnapshot(path string) (*bolt.DB, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	meta, err := metaPages(src)
	if err != nil {
		return nil, err
	}
	dst, err := os.CreateTemp(filepath.Dir(path), ".verdict-snapshot-*.db")
	if err != nil {
		return nil, err
	}
	name := dst.Name()
	defer os.Remove(name) // once bbolt has it open, the name is not needed
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, 1<<62))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	after, err := metaPages(src)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(meta, after) {
		return nil, errChanged
	}
	return bolt.Open(name, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
}

// metaPages reads bbolt's two meta pages at the start of f: a page header
// of 16 bytes, then the meta's magic number and version (4 bytes each) and
// the page size (4 bytes), in the machine's byte order.
func metaPages(f *os.File) ([]byte, error) {
	var hdr [28]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("not a bbolt database: %w", err)
	}
	const magic = 0xED0CDAED
	if binary.NativeEndian.Uint32(hdr[16:]) != magic {
		return nil, errors.New("not a bbolt database (bad magic number)")
	}
	size := int64(binary.NativeEndian.Uint32(hdr[24:]))
	if size < 1024 || size > 1<<20 {
		return nil, fmt.Errorf("not a bbolt database (page size %d)", size)
	}
	buf := make([]byte, 2*size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("reading the meta pages: %w", err)
	}
	return buf, nil
}
