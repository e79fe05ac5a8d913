package server

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

// DecisionHistory gives a preview recent real inputs (pdp.DecisionHistory).
type DecisionHistory = pdp.DecisionHistory

// WithDecisionHistory makes previews without inputs also decide the last
// server.max_batch inputs h returns (source "logged decisions").
func WithDecisionHistory(h DecisionHistory) Option {
	return func(s *Server) { s.history = h }
}

// previewRequest is a decoded preview body.
type previewRequest struct {
	archive []byte
	inputs  []bundles.PreviewInput
}

// previewBundle is POST /v1/bundles/preview: the candidate bundle is read,
// compiled and tested like a push but never stored or activated, and each
// input is decided under the active revision and the candidate, straight
// from their snapshots (the decision cache is neither read nor written).
func (s *Server) previewBundle(c *fiber.Ctx) error {
	lim, ok := s.dec.PreviewLimits()
	if !ok {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server cannot preview bundles")
	}
	// The candidate, its unpacked files and compiled form are garbage
	// after the answer.
	defer releaseUpload()
	req, err := s.parsePreview(c, lim)
	if err != nil {
		return err
	}
	rep, err := s.dec.Preview(c.UserContext(), req.archive, req.inputs)
	if err != nil {
		return bundleError(err)
	}
	s.log.Info("bundle previewed", "request_id", requestID(c), "candidate", rep.Candidate.Revision,
		"total", rep.Summary.Total, "changed", rep.Summary.Changed)
	return c.JSON(rep)
}

// parsePreview reads either multipart/form-data (parts bundle and inputs) or
// JSON {"bundle": base64, "inputs": [...]}.
func (s *Server) parsePreview(c *fiber.Ctx, lim bundles.Limits) (*previewRequest, error) {
	ct := c.Get(fiber.HeaderContentType)
	mt, _, _ := strings.Cut(ct, ";")
	switch {
	case isJSON(ct):
		return s.parsePreviewJSON(c.Body())
	case strings.EqualFold(strings.TrimSpace(mt), fiber.MIMEMultipartForm):
	default:
		return nil, newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type must be multipart/form-data (parts bundle, inputs) or application/json")
	}
	form, err := c.MultipartForm()
	if err != nil {
		return nil, newError(fiber.StatusBadRequest, CodeBadRequest, "malformed multipart body: "+err.Error())
	}
	files := form.File["bundle"]
	if len(files) != 1 {
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("bundle: exactly one file part named bundle is required, got %d", len(files)))
	}
	archive, err := readPart(files[0], lim.MaxCompressedBytes, "bundle")
	if err != nil {
		return nil, err
	}
	req := &previewRequest{archive: archive}
	var raw []byte
	switch {
	case len(form.File["inputs"]) > 1 || len(form.Value["inputs"]) > 1 || (len(form.File["inputs"]) == 1 && len(form.Value["inputs"]) == 1):
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, "inputs: at most one part named inputs is allowed")
	case len(form.File["inputs"]) == 1:
		if raw, err = readPart(form.File["inputs"][0], int64(s.cfg.BodyLimit), "inputs"); err != nil {
			return nil, err
		}
	case len(form.Value["inputs"]) == 1:
		raw = []byte(form.Value["inputs"][0])
	}
	if req.inputs, err = pdp.ParsePreviewInputs(raw, s.cfg.MaxDepth, s.cfg.MaxBatch); err != nil {
		return nil, err
	}
	return req, nil
}

func (s *Server) parsePreviewJSON(body []byte) (*previewRequest, error) {
	doc, err := decodeObject(body, s.cfg.MaxDepth)
	if err != nil {
		return nil, err
	}
	for k := range doc {
		if k != "bundle" && k != "inputs" {
			return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("%s: unknown field (a preview body has bundle and inputs)", k))
		}
	}
	enc, ok := doc["bundle"].(string)
	if !ok || enc == "" {
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, "bundle: required, the candidate .tar.gz in standard base64")
	}
	archive, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, "bundle: not standard base64: "+err.Error())
	}
	req := &previewRequest{archive: archive}
	if req.inputs, err = pdp.PreviewInputs(doc["inputs"], s.cfg.MaxBatch); err != nil {
		return nil, err
	}
	return req, nil
}

// readPart reads a whole multipart file part of at most max bytes.
func readPart(fh *multipart.FileHeader, max int64, name string) ([]byte, error) {
	if fh.Size > max {
		return nil, newError(fiber.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("%s: %d bytes, over the %d-byte limit", name, fh.Size, max))
	}
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("preview: opening part %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("preview: reading part %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, newError(fiber.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("%s: over the %d-byte limit", name, max))
	}
	return data, nil
}
