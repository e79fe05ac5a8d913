package server

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"mime"
	"mime/multipart"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
)

// The console's push page: a .tar.gz, or a folder (the browser sends its
// files with their relative paths), pushed as POST /v1/bundles pushes it —
// verified, compiled, tested, stored, and activated or not — with the
// problems listed as the API lists them (file:line:column for compile
// errors, each failing test case).

const consolePushPath = consolePath + "/push"

// pushOutcome is what the page shows after a push.
type pushOutcome struct {
	Result   *bundles.PushResult
	Code     string
	Problems []string
}

func (s *Server) consolePushPage(c *fiber.Ctx) error {
	return s.renderPush(c, fiber.StatusOK, "", nil)
}

func (s *Server) renderPush(c *fiber.Ctx, status int, msg string, out *pushOutcome) error {
	p := s.newConsolePage(c, "Push a bundle", "push")
	p.Error = msg
	return s.render(c, status, "console_push.html", pageCSP(false), struct {
		consolePage
		Out *pushOutcome
	}{p, out})
}

// consolePush pushes the uploaded archive or folder.
func (s *Server) consolePush(c *fiber.Ctx) error {
	defer releaseUpload()
	if !s.checkCSRF(c) {
		return s.renderPush(c, fiber.StatusForbidden, "The form expired or came from another site; nothing was pushed.", nil)
	}
	if err := s.bundlesReady(); err != nil {
		return s.renderPush(c, fiber.StatusNotFound, "This server keeps no revisions (no bundle store).", nil)
	}
	form, err := c.MultipartForm()
	if err != nil {
		return s.renderPush(c, fiber.StatusBadRequest, "The upload is not a form with files: "+err.Error(), nil)
	}
	archive, err := uploadedArchive(form, int64(s.archiveLimit()))
	if err != nil {
		status, _, msg, _ := Refusal(err)
		if status == fiber.StatusInternalServerError {
			status, msg = fiber.StatusBadRequest, err.Error()
		}
		return s.renderPush(c, status, msg, nil)
	}
	who, _ := c.Locals(consoleWho).(string)
	res, err := s.bundleAdmin.Push(c.UserContext(), archive, who, c.FormValue("activate") == "on")
	if err != nil {
		status, code, msg, _ := Refusal(bundleError(err))
		ae, _ := bundleError(err).(*apiError)
		out := &pushOutcome{Code: code}
		if ae != nil {
			out.Problems = ae.Details
		}
		return s.renderPush(c, status, "Rejected ("+code+"): "+msg, out)
	}
	s.log.Info("bundle pushed from the console", "audit", true, "revision", res.Revision, "activated", res.Activated, "by", who, "request_id", requestID(c))
	return s.renderPush(c, fiber.StatusOK, "", &pushOutcome{Result: &res})
}

// uploadedArchive is the form's bundle as a .tar.gz: the "archive" file
// as it is, or the "files" of a folder (their names are paths relative to
// the chosen folder, whose own name is dropped) packed into one.
func uploadedArchive(form *multipart.Form, max int64) ([]byte, error) {
	if fs := form.File["archive"]; len(fs) == 1 && fs[0].Size > 0 {
		return readPart(fs[0], max, "archive")
	}
	files := form.File["files"]
	if len(files) == 0 {
		return nil, fmt.Errorf("choose a .tar.gz or a folder to push")
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, fh := range files {
		name := path.Clean(strings.ReplaceAll(sentName(fh), "\\", "/"))
		if _, rest, ok := strings.Cut(name, "/"); ok {
			name = rest // the folder's own name
		}
		if name == "." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return nil, fmt.Errorf("%q is not a path inside the folder", fh.Filename)
		}
		b, err := readPart(fh, max, fh.Filename)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sentName is a part's file name as the browser sent it: a folder
// upload's names are paths relative to the folder, which
// multipart.FileHeader.Filename cuts to their last element.
func sentName(fh *multipart.FileHeader) string {
	if _, params, err := mime.ParseMediaType(fh.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return fh.Filename
}

// consoleUploadAllowed reports whether an upload to the console's push
// page comes with a console cookie of a client with verdict:admin (the
// upload gate runs before the body is read; a user signed in with the
// verdict:admin role is checked the same way through the session).
func (s *Server) consoleUploadAllowed(ctx context.Context, h *fasthttp.RequestHeader) bool {
	if tok := string(h.Cookie(s.cookieName(cookieConsole))); tok != "" && s.verifier != nil {
		claims, err := s.verifier.Verify(ctx, tok)
		return err == nil && authn.HasScope(claims.Scopes(), ScopeAdmin)
	}
	if s.people != nil {
		if sess, u, err := s.people.Resume(ctx, string(h.Cookie(s.cookieName(cookieSession)))); err == nil && !sess.MFAPending {
			for _, r := range u.Roles {
				if r == ScopeAdmin {
					return true
				}
			}
		}
	}
	return false
}
