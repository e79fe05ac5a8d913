package server

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/pdp"
)

// The console's impact preview: a stored revision as the candidate of
// POST /v1/bundles/preview, decided beside the active one on the recent
// logged decisions and both bundles' test cases (or on inputs given), and
// the decisions it would change grouped by what decided them before and
// after.

// previewGroup is the changed decisions with the same outcome before and
// after.
type previewGroup struct {
	From, To string
	Items    []bundles.PreviewItem
}

func (s *Server) consolePreviewPage(c *fiber.Ctx) error {
	return s.renderPreview(c, fiber.StatusOK, "", "", "", nil, nil)
}

func (s *Server) renderPreview(c *fiber.Ctx, status int, msg, candidate, inputs string, rep *bundles.PreviewReport, groups []previewGroup) error {
	p := s.newConsolePage(c, "Impact preview", "preview")
	p.Error = msg
	var revs []bundles.RevisionInfo
	if s.bundleAdmin != nil {
		revs, _ = s.bundleAdmin.Revisions(c.UserContext())
		revs = slices.DeleteFunc(revs, func(r bundles.RevisionInfo) bool { return r.Status == bundles.StatusActive })
	}
	return s.render(c, status, "console_preview.html", pageCSP(false), struct {
		consolePage
		Candidate, Inputs string
		Revisions         []bundles.RevisionInfo
		Report            *bundles.PreviewReport
		Groups            []previewGroup
	}{p, candidate, inputs, revs, rep, groups})
}

// consolePreview runs the preview of the chosen revision.
func (s *Server) consolePreview(c *fiber.Ctx) error {
	candidate, inputs := c.FormValue("candidate"), c.FormValue("inputs")
	fail := func(status int, msg string) error {
		return s.renderPreview(c, status, msg, candidate, inputs, nil, nil)
	}
	if !s.checkCSRF(c) {
		return fail(fiber.StatusForbidden, "The form expired or came from another site; preview again.")
	}
	if s.bundleAdmin == nil {
		return fail(fiber.StatusNotFound, "This server keeps no revisions.")
	}
	if candidate == "" {
		return fail(fiber.StatusBadRequest, "Choose the revision to preview.")
	}
	raw, err := previewInputsFile(c)
	if err != nil {
		return fail(fiber.StatusBadRequest, err.Error())
	}
	if raw == nil {
		raw = []byte(inputs)
	} else if strings.TrimSpace(inputs) != "" {
		return fail(fiber.StatusBadRequest, "Give the inputs either in the box or as a file, not both.")
	}
	given, err := pdp.ParsePreviewInputs(raw, s.cfg.MaxDepth, s.cfg.MaxBatch)
	if err != nil {
		_, _, m, _ := Refusal(err)
		return fail(fiber.StatusBadRequest, "Inputs: "+m)
	}
	archive, err := s.bundleAdmin.Archive(c.UserContext(), candidate)
	if err != nil {
		_, code, m, _ := Refusal(bundleError(err))
		return fail(fiber.StatusNotFound, fmt.Sprintf("Revision %s (%s): %s", candidate, code, m))
	}
	defer releaseUpload()
	rep, err := s.dec.Preview(c.UserContext(), archive, given)
	if err != nil {
		status, code, m, _ := Refusal(bundleError(err))
		return fail(status, fmt.Sprintf("Revision %s cannot be previewed (%s): %s", candidate, code, m))
	}
	return s.renderPreview(c, fiber.StatusOK, "", candidate, inputs, rep, groupChanges(rep.Items))
}

// previewInputsFile is the content of the inputs file the form uploaded
// (a JSON array, as in the box; the request is within server.body_limit),
// or nil when none was chosen.
func previewInputsFile(c *fiber.Ctx) ([]byte, error) {
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		return nil, nil
	}
	fh, err := c.FormFile("inputs_file")
	if err != nil || fh.Size == 0 {
		return nil, nil // no file chosen: the browser sends an empty part
	}
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("the inputs file could not be read: %v", err)
	}
	defer f.Close()
	return io.ReadAll(f)
}

// groupChanges groups the items whose decision or reasons change by their
// outcome before and after, largest group first.
func groupChanges(items []bundles.PreviewItem) []previewGroup {
	var groups []previewGroup
	index := map[string]int{}
	for _, it := range items {
		if !it.Changed && !it.ReasonsChanged {
			continue
		}
		from, to := outcomeText(it.Active), outcomeText(it.Candidate)
		k := from + "\x00" + to
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, previewGroup{From: from, To: to})
		}
		groups[i].Items = append(groups[i].Items, it)
	}
	slices.SortStableFunc(groups, func(a, b previewGroup) int { return len(b.Items) - len(a.Items) })
	return groups
}

func outcomeText(o bundles.PreviewOutcome) string {
	d := "deny"
	if o.Decision {
		d = "allow"
	}
	if len(o.Reasons) == 0 {
		return d
	}
	return d + " (" + strings.Join(o.Reasons, ", ") + ")"
}
