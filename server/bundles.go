package server

import (
	"context"
	"fmt"
	"mime"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/bundles"
)

// BundleAdmin is what the bundle routes need of the bundle lifecycle.
type BundleAdmin interface {
	Push(ctx context.Context, archive []byte, by string, activate bool) (bundles.PushResult, error)
	Activate(ctx context.Context, rev string) (bundles.PushResult, error)
	Revisions(ctx context.Context) ([]bundles.RevisionInfo, error)
	ActiveRevision(ctx context.Context) (bundles.RevisionInfo, error)
	Archive(ctx context.Context, rev string) ([]byte, error)
	MaxArchiveBytes() int64
}

var _ BundleAdmin = (*bundles.Lifecycle)(nil)

// WithBundleAdmin serves /v1/bundles: push (scope verdict:bundles:write),
// list, download and activate revisions. Pushes may carry bodies up to
// b.MaxArchiveBytes(); every other route keeps Config.BodyLimit. Without
// it the bundle routes answer 404.
func WithBundleAdmin(b BundleAdmin) Option {
	return func(s *Server) { s.bundleAdmin = b }
}

// bundleUploadPaths are the POST routes whose body is a bundle archive and
// so may be as large as the compressed-size limit.
var bundleUploadPaths = []string{"/v1/bundles", "/v1/bundles/preview", consolePushPath}

// fiberBodyLimit is the largest body any route takes: Fiber's own limit
// must let the largest through, and limitBodies holds every other route to
// Config.BodyLimit.
func (s *Server) fiberBodyLimit() int {
	if m := s.archiveLimit(); m > s.cfg.BodyLimit {
		return m
	}
	return s.cfg.BodyLimit
}

func (s *Server) archiveLimit() int {
	if s.bundleAdmin == nil {
		return 0
	}
	return int(min(s.bundleAdmin.MaxArchiveBytes(), int64(^uint(0)>>1)))
}

// takeBody hands the request body to the caller without a copy: the store
// may keep it, and fasthttp's pooled buffer then holds nothing of it, so an
// upload's memory goes with its last reference instead of staying pooled.
func takeBody(c *fiber.Ctx) []byte {
	return c.Request().SwapBody(nil)
}

// releaseUpload returns the memory an upload took to the operating system:
// the archive and whatever unpacking it cost (up to bundles.max_bytes, from
// a compressed archive of any size: a gzip bomb is small) are garbage once a
// push or preview is answered, and the Go runtime would otherwise give that
// memory back only slowly, so that a few large pushes would leave a
// replica's RSS high for minutes. Uploads are rare and authenticated, so a
// forced collection after each is cheap.
func releaseUpload() {
	debug.FreeOSMemory()
}

func (s *Server) bundlesReady() error {
	if s.bundleAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no bundle store")
	}
	return nil
}

// archiveTypes are the media types a pushed archive may be sent as.
var archiveTypes = []string{"application/gzip", "application/x-gzip", "application/octet-stream"}

type pushResponse struct {
	bundles.PushResult
	Message string `json:"message"`
}

// pushBundle is POST /v1/bundles: a .tar.gz body → 201 {revision, digest,
// created, activated, tests}; 200 when the identical revision was stored
// already.
func (s *Server) pushBundle(c *fiber.Ctx) error {
	if err := s.bundlesReady(); err != nil {
		return err
	}
	mt, _, _ := strings.Cut(c.Get(fiber.HeaderContentType), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	found := false
	for _, t := range archiveTypes {
		found = found || mt == t
	}
	if !found {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"a bundle is sent as a .tar.gz with Content-Type "+strings.Join(archiveTypes, ", "))
	}
	activate := true
	if v := c.Query("activate"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return newError(fiber.StatusBadRequest, CodeBadRequest, "activate must be true or false")
		}
		activate = b
	}
	archive := takeBody(c)
	res, err := s.bundleAdmin.Push(c.UserContext(), archive, callerID(c), activate)
	releaseUpload()
	if err != nil {
		return err
	}
	out := pushResponse{PushResult: res}
	status := fiber.StatusCreated
	switch {
	case !res.Created:
		status = fiber.StatusOK
		out.Message = fmt.Sprintf("revision %s was already stored with this digest; nothing new was stored", res.Revision)
	case res.Activated:
		out.Message = fmt.Sprintf("revision %s stored and active", res.Revision)
	default:
		out.Message = fmt.Sprintf("revision %s stored, not activated", res.Revision)
	}
	if !res.Created && res.Activated {
		out.Message += "; it is active"
	}
	return c.Status(status).JSON(out)
}

// listBundles is GET /v1/bundles: every stored revision, newest first.
func (s *Server) listBundles(c *fiber.Ctx) error {
	if err := s.bundlesReady(); err != nil {
		return err
	}
	revs, err := s.bundleAdmin.Revisions(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"revisions": revs})
}

// activeBundle is GET /v1/bundles/active: the record of the revision that
// serves now; 404 no_active_bundle when none or bundles from paths do.
func (s *Server) activeBundle(c *fiber.Ctx) error {
	if err := s.bundlesReady(); err != nil {
		return err
	}
	info, err := s.bundleAdmin.ActiveRevision(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(info)
}

// revisionParam decodes the :revision path segment of a bundle route (404
// without a bundle store). Revisions are any string a manifest holds, so
// clients percent-encode them (sha256:... or a revision with a slash).
func (s *Server) revisionParam(c *fiber.Ctx) (string, error) {
	if err := s.bundlesReady(); err != nil {
		return "", err
	}
	raw := utils.CopyString(c.Params("revision"))
	rev, err := url.PathUnescape(raw)
	if err != nil || rev == "" {
		return "", newError(fiber.StatusBadRequest, CodeBadRequest, "the revision in the path is not validly percent-encoded")
	}
	return rev, nil
}

// downloadBundle is GET /v1/bundles/{revision}: the archive as pushed.
func (s *Server) downloadBundle(c *fiber.Ctx) error {
	rev, err := s.revisionParam(c)
	if err != nil {
		return err
	}
	archive, err := s.bundleAdmin.Archive(c.UserContext(), rev)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": archiveName(rev)}))
	return c.Send(archive)
}

// archiveName is a file name for rev's archive: characters that are unsafe
// in file names become "_".
func archiveName(rev string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, rev)
	return "bundle-" + safe + ".tar.gz"
}

// activateBundle is POST /v1/bundles/{revision}/activate: the stored
// revision is verified, compiled and tested again and then serves.
func (s *Server) activateBundle(c *fiber.Ctx) error {
	rev, err := s.revisionParam(c)
	if err != nil {
		return err
	}
	res, err := s.bundleAdmin.Activate(c.UserContext(), rev)
	if err != nil {
		return err
	}
	s.log.Info("bundle revision activated over the API", "audit", true, "revision", rev, "by", callerID(c))
	return c.JSON(pushResponse{PushResult: res, Message: fmt.Sprintf("revision %s is active", rev)})
}
