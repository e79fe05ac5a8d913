package bundles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// RevisionStore is what a Lifecycle needs of the durable store: revision
// records, their archives and the active pointer, in one namespace (the
// wiring adapts package store to it: internal/storeadapt).
type RevisionStore interface {
	// PutRevision stores r with its archive and reports whether it was
	// new. The same revision with the same digest is a no-op (false, nil);
	// with another digest it is an error wrapping ErrRevisionConflict,
	// whatever the order of concurrent callers.
	PutRevision(ctx context.Context, r StoredRevision, archive []byte) (bool, error)
	// Revisions lists every revision, newest first.
	Revisions(ctx context.Context) ([]StoredRevision, error)
	// Revision returns one revision's record; ErrNotStored if none.
	Revision(ctx context.Context, revision string) (StoredRevision, error)
	// Archive returns a revision's archive as pushed; ErrNotStored if none.
	Archive(ctx context.Context, revision string) ([]byte, error)
	// SetActive records revision as the active one, atomically;
	// ErrNotStored if it is not stored.
	SetActive(ctx context.Context, revision string) error
	// ActiveRevision returns the active revision; ErrNotStored if none was
	// ever set.
	ActiveRevision(ctx context.Context) (string, error)
}

// StoredRevision is a RevisionStore's record of a pushed revision (the
// archive is kept apart, so that listing never reads archives).
type StoredRevision struct {
	// Revision is the manifest's revision (or the digest when it has none).
	Revision string
	// Digest is the bundle's content digest ("sha256:...").
	Digest string
	// Size is the archive's length in bytes, compressed as pushed; the
	// store sets it.
	Size int64
	// PushedAt is when the revision was first stored.
	PushedAt time.Time
	// PushedBy is the client id that pushed it ("cli" or "dev" otherwise).
	PushedBy string
	// Tests counts the bundle's test cases when it was pushed.
	Tests TestSummary
}

// ErrNotStored is what a RevisionStore wraps when the revision, or an
// active one, is not stored.
var ErrNotStored = errors.New("not stored")

// Errors a Lifecycle returns that callers branch on.
var (
	// ErrRevisionConflict means the revision is stored with other
	// contents (another digest); a revision is immutable once pushed.
	ErrRevisionConflict = errors.New("bundle revision exists with other contents")
	// ErrUnknownRevision means no revision of that name is stored.
	ErrUnknownRevision = errors.New("no such bundle revision")
	// ErrNoActiveRevision means no stored revision is served now: nothing
	// is, or bundles read from paths are.
	ErrNoActiveRevision = errors.New("no pushed bundle revision is active")
)

// reservedRevisions cannot be pushed: they would be shadowed by the
// /v1/bundles/active and /v1/bundles/preview routes.
var reservedRevisions = []string{"active", "preview"}

// PushedSource is the source (Active.Sources) of a stored revision.
const PushedSource = "push"

// Revision statuses.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// PushResult is the outcome of a push or an activation.
type PushResult struct {
	Revision string      `json:"revision"`
	Digest   string      `json:"digest"`
	Tests    TestSummary `json:"tests"`
	// Created is false when the identical revision was already stored.
	Created bool `json:"created"`
	// Activated is true when the revision serves now.
	Activated bool `json:"activated"`
}

// RevisionInfo is a stored revision and whether it serves now, as the API
// shows it (GET /v1/bundles, `verdict bundle revisions --json`). It is its
// own type, not the store's record, so that the store's format and the
// API can change apart.
type RevisionInfo struct {
	// Revision is the manifest's revision (or the digest when it has none).
	Revision string `json:"revision"`
	// Digest is the bundle's content digest ("sha256:...").
	Digest string `json:"digest"`
	// Size is the archive's length in bytes, compressed as pushed.
	Size int64 `json:"size"`
	// PushedAt is when the revision was first stored.
	PushedAt time.Time `json:"pushed_at"`
	// PushedBy is the client id that pushed it ("cli" or "dev" otherwise).
	PushedBy string      `json:"pushed_by"`
	Tests    TestSummary `json:"tests"`
	// Status is StatusActive when the revision serves decisions now,
	// else StatusInactive.
	Status string `json:"status"`
}

// Lifecycle pushes bundle revisions into a store and activates them: every
// archive is read safely, verified, compiled and tested (Manager.Prepare)
// before it is stored, and re-checked before a stored one is activated again,
// so that a bad bundle never replaces the active one. It is safe for
// concurrent use; build one with NewLifecycle.
type Lifecycle struct {
	m   *Manager
	st  RevisionStore
	log *slog.Logger
	now func() time.Time
	// mu makes the store's active pointer and the manager's active bundle
	// change together, so that concurrent activations cannot leave the two
	// pointing at different revisions. It guards looked and rejected too.
	mu sync.Mutex
	// looked is set once Sync (or an activation here) has seen the store's
	// active pointer: bundles from paths are replaced only by a revision
	// activated after that.
	looked bool
	// rejected is the stored revision (by revision and digest) Sync last
	// failed to prepare: preparing is deterministic, so it is not retried.
	rejected string
}

// NewLifecycle returns a lifecycle that stores revisions in st and
// activates them on m. A nil log discards.
func NewLifecycle(m *Manager, st RevisionStore, log *slog.Logger) *Lifecycle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{m: m, st: st, log: log, now: time.Now}
}

// MaxArchiveBytes is the largest archive Push accepts (the compressed-size
// limit).
func (l *Lifecycle) MaxArchiveBytes() int64 { return l.m.cfg.Limits.MaxCompressedBytes }

// Push reads archive (a .tar.gz) within the manager's limits, prepares it
// (signature, compilation, the bundle's own tests), stores it as pushed by
// by and, if activate, makes it the active bundle. It returns a *ReadError,
// engine.CompileErrors, TestFailures (or what Prepare returns for a bad
// signature), an error wrapping ErrRevisionConflict, or a store error; on
// any error nothing is stored and the active bundle is unchanged. Pushing
// the identical revision again is not an error: Created is false.
func (l *Lifecycle) Push(ctx context.Context, archive []byte, by string, activate bool) (PushResult, error) {
	b, err := l.read(archive)
	if err != nil {
		l.log.Info("bundle push rejected", "pushed_by", by, "error", err)
		return PushResult{}, l.m.reject(err)
	}
	rev := b.Revision()
	if slices.Contains(reservedRevisions, rev) {
		return PushResult{}, &ReadError{Entry: ".manifest", Err: fmt.Errorf("revision %q is reserved; choose another", rev)}
	}
	// A conflict is cheap to see before compiling; PutRevision checks
	// again atomically.
	cur, err := l.st.Revision(ctx, rev)
	switch {
	case err == nil && cur.Digest != b.Digest:
		return PushResult{}, conflict(rev, cur.Digest, b.Digest)
	case err == nil && (l.serving(rev) || !activate):
		// The identical revision again, and nothing to switch: a no-op.
		return PushResult{Revision: rev, Digest: b.Digest, Activated: l.serving(rev),
			Tests: TestSummary{Passed: cur.Tests.Passed, Failed: cur.Tests.Failed}}, nil
	case err != nil && !errors.Is(err, ErrNotStored):
		return PushResult{}, err
	}
	b.Source = PushedSource
	a, err := l.m.Prepare(ctx, []*Bundle{b})
	if err != nil {
		l.log.Info("bundle push rejected", "revision", rev, "pushed_by", by, "error", err)
		return PushResult{}, err
	}
	rec := StoredRevision{
		Revision: rev, Digest: b.Digest, PushedAt: l.now().UTC(), PushedBy: by,
		Tests: TestSummary{Passed: a.Tests.Passed, Failed: a.Tests.Failed},
	}
	created, err := l.st.PutRevision(ctx, rec, archive)
	if errors.Is(err, ErrRevisionConflict) {
		cur, _ := l.st.Revision(ctx, rev)
		return PushResult{}, conflict(rev, cur.Digest, b.Digest)
	}
	if err != nil {
		return PushResult{}, err
	}
	res := PushResult{Revision: rev, Digest: b.Digest, Tests: a.Tests, Created: created}
	if activate {
		if err := l.activate(ctx, rev, a); err != nil {
			return PushResult{}, err
		}
		res.Activated = true
	} else {
		res.Activated = l.serving(rev)
	}
	l.log.Info("bundle revision pushed", "audit", true, "revision", rev, "digest", b.Digest, "pushed_by", by,
		"created", created, "activated", res.Activated, "tests_passed", a.Tests.Passed)
	return res, nil
}

// Activate makes the stored revision rev the active bundle again (a roll
// back or forward). The archive is read, verified, compiled and tested anew,
// since limits, keys or the engine may have changed since it was pushed. It
// returns an error wrapping ErrUnknownRevision, or what Push returns for a
// bad bundle, and then the active bundle is unchanged.
func (l *Lifecycle) Activate(ctx context.Context, rev string) (PushResult, error) {
	a, digest, err := l.prepareStored(ctx, rev)
	if err != nil {
		return PushResult{}, err
	}
	if err := l.activate(ctx, rev, a); err != nil {
		return PushResult{}, err
	}
	l.log.Info("bundle revision activated", "audit", true, "revision", rev, "digest", digest)
	return PushResult{Revision: rev, Digest: digest, Tests: a.Tests, Activated: true}, nil
}

// prepareStored reads the stored revision rev and prepares it (signature,
// compilation, tests), changing nothing. An error from reading the store is
// returned as it is; one of the bundle itself (unreadable, not matching its
// record, rejected by Prepare) wraps errBundleRejected too.
func (l *Lifecycle) prepareStored(ctx context.Context, rev string) (*Active, string, error) {
	rec, err := l.st.Revision(ctx, rev)
	if errors.Is(err, ErrNotStored) {
		return nil, "", fmt.Errorf("%w: %q", ErrUnknownRevision, rev)
	}
	if err != nil {
		return nil, "", err
	}
	archive, err := l.st.Archive(ctx, rev)
	if err != nil {
		return nil, "", fmt.Errorf("bundle revision %q: reading the stored archive: %w", rev, err)
	}
	b, err := l.read(archive)
	if err != nil {
		return nil, rec.Digest, rejected(l.m.rejectAt(StageRead, err))
	}
	b.Source = PushedSource
	if b.Digest != rec.Digest || b.Revision() != rev {
		return nil, rec.Digest, rejected(fmt.Errorf("bundle revision %q: the stored archive does not match its record (digest %s, want %s)", rev, b.Digest, rec.Digest))
	}
	a, err := l.m.Prepare(ctx, []*Bundle{b})
	if err != nil {
		l.log.Warn("stored bundle revision rejected; the active bundle keeps serving", "revision", rev, "error", err)
		return nil, rec.Digest, rejected(err)
	}
	a.Pushed = true
	return a, b.Digest, nil
}

// errBundleRejected marks, for Sync, errors of the stored bundle itself.
var errBundleRejected = errors.New("stored bundle rejected")

// rejected wraps err (its message unchanged) with errBundleRejected.
func rejected(err error) error { return rejectedError{err} }

type rejectedError struct{ error }

func (e rejectedError) Unwrap() []error { return []error{e.error, errBundleRejected} }

// Sync makes this server serve the store's active revision when it serves
// another one, without writing to the store: it is how a replica follows an
// activation made by another replica of a shared store. It reports whether
// the served bundle changed. With no active revision stored it does
// nothing. Bundles read from paths keep serving until the store's active
// revision changes after the first Sync (a replica started with --bundle
// serves those paths until a push). A stored revision this server rejects
// (a bundle error, such as a signature with a key it lacks) is returned as
// an error once and then skipped until the store's active revision
// changes; an error reading the store is returned every time. On any error
// the served bundle is unchanged.
func (l *Lifecycle) Sync(ctx context.Context) (bool, error) {
	// Under mu, so that an activation of this server (store write, then
	// swap) is never undone by a Sync that read the store in between.
	l.mu.Lock()
	defer l.mu.Unlock()
	rev, err := l.st.ActiveRevision(ctx)
	first := !l.looked
	switch {
	case errors.Is(err, ErrNotStored):
		l.looked = true
		return false, nil
	case err != nil:
		return false, err
	}
	l.looked = true
	if l.serving(rev) {
		return false, nil
	}
	if a := l.m.Active(); first && a != nil && !a.Pushed {
		l.log.Info("bundles read from paths keep serving; the store's active revision is followed from its next change",
			"store_revision", rev, "paths", a.Sources)
		return false, nil
	}
	rec, err := l.st.Revision(ctx, rev)
	if err != nil && !errors.Is(err, ErrNotStored) {
		return false, err
	}
	if key := rev + "@" + rec.Digest; key == l.rejected {
		return false, nil
	}
	a, digest, err := l.prepareStored(ctx, rev)
	if errors.Is(err, errBundleRejected) {
		l.rejected = rev + "@" + digest
	}
	if err != nil {
		return false, fmt.Errorf("following the store's active bundle revision %q: %w", rev, err)
	}
	l.m.Activate(a)
	l.log.Info("bundle revision activated by another replica now serves here", "revision", rev, "digest", digest)
	return true, nil
}

// Restore activates the store's active revision, as at a restart. With no
// active revision stored it does nothing and returns (false, nil).
func (l *Lifecycle) Restore(ctx context.Context) (bool, error) {
	rev, err := l.st.ActiveRevision(ctx)
	if errors.Is(err, ErrNotStored) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := l.Activate(ctx, rev); err != nil {
		return false, fmt.Errorf("restoring the active bundle revision %q: %w", rev, err)
	}
	return true, nil
}

// Revisions lists the stored revisions, newest first, each with its
// status.
func (l *Lifecycle) Revisions(ctx context.Context) ([]RevisionInfo, error) {
	recs, err := l.st.Revisions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RevisionInfo, len(recs))
	for i, r := range recs {
		out[i] = l.info(r)
	}
	return out, nil
}

// ActiveRevision returns the record of the stored revision that serves
// now. When nothing serves, or bundles from paths do, it returns an error
// wrapping ErrNoActiveRevision that says what serves.
func (l *Lifecycle) ActiveRevision(ctx context.Context) (RevisionInfo, error) {
	a := l.m.Active()
	switch {
	case a == nil:
		return RevisionInfo{}, fmt.Errorf("%w: no bundle is active", ErrNoActiveRevision)
	case !a.Pushed:
		return RevisionInfo{}, fmt.Errorf("%w: this server serves bundles read from %v", ErrNoActiveRevision, a.Sources)
	}
	rec, err := l.st.Revision(ctx, a.Snapshot.Revision())
	if err != nil {
		return RevisionInfo{}, err
	}
	return l.info(rec), nil
}

// Archive returns revision rev's archive as it was pushed; an error
// wrapping ErrUnknownRevision if it is not stored.
func (l *Lifecycle) Archive(ctx context.Context, rev string) ([]byte, error) {
	archive, err := l.st.Archive(ctx, rev)
	if errors.Is(err, ErrNotStored) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRevision, rev)
	}
	return archive, err
}

func (l *Lifecycle) read(archive []byte) (*Bundle, error) {
	lim := l.m.cfg.Limits
	if int64(len(archive)) > lim.MaxCompressedBytes {
		return nil, &ReadError{Err: fmt.Errorf("archive is %d bytes, over the %d-byte limit", len(archive), lim.MaxCompressedBytes)}
	}
	return ReadArchive(bytes.NewReader(archive), lim)
}

// activate writes the store's pointer first and swaps the served bundle
// only once it is durable: a failed write changes nothing.
func (l *Lifecycle) activate(ctx context.Context, rev string, a *Active) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.st.SetActive(ctx, rev); err != nil {
		return fmt.Errorf("bundle revision %q: recording it as active: %w", rev, err)
	}
	a.Pushed = true
	l.m.Activate(a)
	l.looked = true
	return nil
}

func (l *Lifecycle) serving(rev string) bool {
	a := l.m.Active()
	return a != nil && a.Pushed && a.Snapshot.Revision() == rev
}

func (l *Lifecycle) info(r StoredRevision) RevisionInfo {
	st := StatusInactive
	if l.serving(r.Revision) {
		st = StatusActive
	}
	return RevisionInfo{Revision: r.Revision, Digest: r.Digest, Size: r.Size, PushedAt: r.PushedAt, PushedBy: r.PushedBy,
		Tests: r.Tests, Status: st}
}

func conflict(rev, stored, pushed string) error {
	return fmt.Errorf("%w: revision %q is stored with digest %s, and this bundle's digest is %s; a pushed revision never changes, so give the new contents a new revision in .manifest",
		ErrRevisionConflict, rev, stored, pushed)
}
