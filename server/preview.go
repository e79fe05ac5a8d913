package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// Previewer is what POST /v1/bundles/preview needs of the bundle manager:
// the limits bundles are read with, and a trial compile that never activates
// (and does not fail on the candidate's tests). *bundles.Manager is one; a
// Bundles without these methods answers the route with 404.
type Previewer interface {
	Limits() bundles.Limits
	Trial(ctx context.Context, bs []*bundles.Bundle) (*bundles.Active, bundles.TestFailures, error)
}

var _ Previewer = (*bundles.Manager)(nil)

// DecisionHistory gives a preview recent real inputs to decide when the
// request brings none (beside the test cases of both bundles). The decision
// log will implement it; a server without one uses the test cases only.
type DecisionHistory interface {
	// RecentInputs returns up to n inputs of recent decisions, newest first.
	// An error fails the preview with 500 (logged).
	RecentInputs(ctx context.Context, n int) ([]*engine.Input, error)
}

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
	p, ok := s.bundles.(Previewer)
	if !ok {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server cannot preview bundles")
	}
	// The candidate, its unpacked files and compiled form are garbage
	// after the answer.
	defer releaseUpload()
	req, err := s.parsePreview(c, p.Limits())
	if err != nil {
		return err
	}
	b, err := bundles.ReadArchive(bytes.NewReader(req.archive), p.Limits())
	if err != nil {
		return bundleError(err)
	}
	b.Source = "preview"
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	cand, failures, err := p.Trial(ctx, []*bundles.Bundle{b})
	if err != nil {
		return bundleError(err)
	}
	active := s.bundles.Active()
	inputs := req.inputs
	if len(inputs) == 0 {
		inputs = bundles.DefaultInputs(active, cand)
		if s.history != nil {
			logged, err := s.history.RecentInputs(ctx, s.cfg.MaxBatch)
			if err != nil {
				return fmt.Errorf("preview: decision history: %w", err)
			}
			for i, in := range logged {
				inputs = append(inputs, bundles.PreviewInput{Source: bundles.SourceLogged, Name: fmt.Sprintf("logged[%d]", i), Input: in})
			}
		}
	}
	rep := bundles.Preview(ctx, active, cand, failures, inputs)
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
	if req.inputs, err = ParsePreviewInputs(raw, s.cfg.MaxDepth, s.cfg.MaxBatch); err != nil {
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
	if req.inputs, err = previewInputs(doc["inputs"], s.cfg.MaxBatch); err != nil {
		return nil, err
	}
	return req, nil
}

// ParsePreviewInputs reads the inputs of a preview: a JSON array of at most
// maxBatch decision inputs in the /v1/decide shape, nested at most maxDepth
// levels. Empty text or null means none. Errors are client errors (400)
// naming the item, as inputs[i].field.
func ParsePreviewInputs(raw []byte, maxDepth, maxBatch int) ([]bundles.PreviewInput, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	v, err := decodeValue(raw, maxDepth, "inputs: ")
	if err != nil {
		return nil, err
	}
	return previewInputs(v, maxBatch)
}

// previewInputs checks the inputs array: at most maxBatch decision inputs
// in the /v1/decide shape. Absent or null means none.
func previewInputs(v any, maxBatch int) ([]bundles.PreviewInput, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, "inputs: must be an array of decision inputs")
	}
	if len(items) > maxBatch {
		return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("inputs: at most %d items are allowed, got %d", maxBatch, len(items)))
	}
	out := make([]bundles.PreviewInput, len(items))
	for i, it := range items {
		name := fmt.Sprintf("inputs[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, name+": must be an object")
		}
		in, err := engine.ParseInput(m, name+".")
		if err != nil {
			return nil, newError(fiber.StatusBadRequest, CodeInvalidInput, err.Error())
		}
		out[i] = bundles.PreviewInput{Source: bundles.SourceRequest, Name: name, Input: in}
	}
	return out, nil
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
