package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
)

// The console's playground: an input (JSON) decided by the active
// revision or by any stored one (compiled as a preview candidate, nothing
// activated), with its trace rule by rule; and the case as a bundle test
// case to download.

// playgroundSample is the input the playground starts with.
const playgroundSample = `{
  "subject": {"type": "user", "id": "alice", "properties": {"roles": ["viewer"]}},
  "action": {"name": "read"},
  "resource": {"type": "document", "id": "1", "properties": {"owner": "olga"}},
  "context": {}
}`

// playgroundResult is one decision the page shows.
type playgroundResult struct {
	Decision         bool
	Revision, ID     string
	Reasons          []string
	Error            string
	Trace            []engine.RuleTrace
	TraceUnavailable bool
	// TestCase is the case as a *_test.yaml entry.
	TestCase string
}

func (s *Server) consolePlayground(c *fiber.Ctx) error {
	return s.renderPlayground(c, fiber.StatusOK, playgroundSample, "", "", nil)
}

func (s *Server) renderPlayground(c *fiber.Ctx, status int, input, revision, msg string, res *playgroundResult) error {
	p := s.newConsolePage(c, "Playground", "playground")
	p.Error = msg
	var revs []bundles.RevisionInfo
	if s.bundleAdmin != nil {
		revs, _ = s.bundleAdmin.Revisions(c.UserContext())
	}
	return s.render(c, status, "console_playground.html", pageCSP(false), struct {
		consolePage
		Input, Revision string
		Revisions       []bundles.RevisionInfo
		Result          *playgroundResult
		Schema          *playgroundSchema
	}{p, input, revision, revs, res, s.playgroundSchema(c.UserContext(), input, revision)})
}

// playgroundSchema is what the page shows beside the editor: the JSON
// Schema the chosen revision validates the input's resource type with.
type playgroundSchema struct {
	// Type is the input's resource.type.
	Type string
	// Sources are the schema files for Type, one a bundle of the revision.
	Sources []bundles.SchemaSource
	// Types are the resource types the revision has a schema for.
	Types []string
	// Note says why the revision's schemas could not be read.
	Note string
}

// playgroundSchema finds the schema of the resource type named in input
// (read leniently: nil when it is no JSON object with a resource.type) in
// revision, the active one when revision is empty or the active one's. A
// stored revision that cannot be read gives a note, never an error: the
// page shows the decision regardless.
func (s *Server) playgroundSchema(ctx context.Context, input, revision string) *playgroundSchema {
	typ := inputResourceType(input, s.cfg.BodyLimit)
	if typ == "" {
		return nil
	}
	out := &playgroundSchema{Type: typ}
	active := s.bundles.Active()
	var bs []*bundles.Bundle
	switch {
	case revision == "" || active != nil && revision == active.Snapshot.Revision():
		if active == nil {
			out.Note = "No revision is active."
			return out
		}
		bs = active.Bundles
	case s.bundleAdmin == nil:
		out.Note = "This server keeps no revisions."
		return out
	default:
		b, err := s.storedBundle(ctx, revision)
		if err != nil {
			_, code, m, _ := Refusal(bundleError(err))
			if code == CodeInternal {
				s.log.WarnContext(ctx, "the playground could not read a revision's schemas", "revision", revision, "error", err)
			}
			out.Note = fmt.Sprintf("The schemas of revision %s could not be read (%s): %s", revision, code, m)
			return out
		}
		bs = []*bundles.Bundle{b}
	}
	out.Sources, out.Types = bundles.SchemaSources(bs, typ), bundles.SchemaTypes(bs)
	return out
}

// storedBundle reads stored revision rev within the limits the decision
// service's Try reads it with.
func (s *Server) storedBundle(ctx context.Context, rev string) (*bundles.Bundle, error) {
	archive, err := s.bundleAdmin.Archive(ctx, rev)
	if err != nil {
		return nil, err
	}
	lim := bundles.DefaultLimits()
	if p, ok := s.bundles.(pdp.Previewer); ok {
		lim = p.Limits()
	} else {
		lim.MaxCompressedBytes = s.bundleAdmin.MaxArchiveBytes()
	}
	return bundles.ReadArchive(bytes.NewReader(archive), lim)
}

// inputResourceType is the resource.type of the textarea's JSON, or ""
// when it is over limit bytes, not a JSON object, or names none.
func inputResourceType(input string, limit int) string {
	if len(input) > limit {
		return ""
	}
	var doc map[string]any
	if json.Unmarshal([]byte(input), &doc) != nil {
		return ""
	}
	res, _ := doc["resource"].(map[string]any)
	typ, _ := res["type"].(string)
	return typ
}

// consoleDecide decides the posted input.
func (s *Server) consoleDecide(c *fiber.Ctx) error {
	input, revision := c.FormValue("input"), c.FormValue("revision")
	if !s.checkCSRF(c) {
		return s.renderPlayground(c, fiber.StatusForbidden, input, revision, "The form expired or came from another site; decide again.", nil)
	}
	in, err := s.playgroundInput(input)
	if err != nil {
		return s.renderPlayground(c, fiber.StatusBadRequest, input, revision, err.Error(), nil)
	}
	active := ""
	if a := s.bundles.Active(); a != nil {
		active = a.Snapshot.Revision()
	}
	var res playgroundResult
	if revision == "" || revision == active {
		d := s.dec.Evaluate(c.UserContext(), in, s.cfg.AllowExplain, pdp.Meta{Endpoint: pdp.EndpointDecide, RequestID: requestID(c), RemoteAddr: remoteAddr(c)})
		res = playgroundResult{Decision: d.Decision, Revision: d.Context.Revision, ID: d.Context.DecisionID,
			Reasons: d.Context.Reasons, Error: d.Context.Error, Trace: d.Context.Explain, TraceUnavailable: !s.cfg.AllowExplain}
	} else {
		if s.bundleAdmin == nil {
			return s.renderPlayground(c, fiber.StatusNotFound, input, revision, "This server keeps no revisions.", nil)
		}
		archive, err := s.bundleAdmin.Archive(c.UserContext(), revision)
		if err != nil {
			_, code, m, _ := Refusal(bundleError(err))
			return s.renderPlayground(c, fiber.StatusNotFound, input, revision, fmt.Sprintf("Revision %s (%s): %s", revision, code, m), nil)
		}
		d, err := s.dec.Try(c.UserContext(), archive, in, true)
		if err != nil {
			_, code, m, _ := Refusal(bundleError(err))
			return s.renderPlayground(c, fiber.StatusUnprocessableEntity, input, revision, fmt.Sprintf("Revision %s does not compile (%s): %s", revision, code, m), nil)
		}
		res = playgroundResult{Decision: d.Decision, Revision: d.Context.Revision, Reasons: d.Context.Reasons, Error: d.Context.Error,
			Trace: d.Context.Explain, TraceUnavailable: !s.cfg.AllowExplain}
	}
	res.TestCase = testCaseYAML(in, res)
	return s.renderPlayground(c, fiber.StatusOK, input, revision, "", &res)
}

// playgroundInput reads the textarea as /v1/decide reads a body: the same
// depth limit and input rules, errors naming the field.
func (s *Server) playgroundInput(text string) (*engine.Input, error) {
	if len(text) > s.cfg.BodyLimit {
		return nil, fmt.Errorf("the input is over server.body_limit (%d bytes)", s.cfg.BodyLimit)
	}
	doc, err := pdp.DecodeObject([]byte(text), s.cfg.MaxDepth)
	if err != nil {
		return nil, fmt.Errorf("the input is not valid JSON: %v", err)
	}
	delete(doc, "token") // claims come only from verified tokens
	in, err := engine.ParseInput(doc, "")
	if err != nil {
		return nil, fmt.Errorf("the input: %v", err)
	}
	return in, nil
}

// testCaseYAML is the decided input as a test case of a *_test.yaml file,
// expecting what was decided.
func testCaseYAML(in *engine.Input, res playgroundResult) string {
	input := map[string]any{"subject": engine.EntityDoc(in.Subject), "action": actionDoc(in.Action), "resource": engine.EntityDoc(in.Resource)}
	if len(in.Context) > 0 {
		input["context"] = in.Context
	}
	reasons := res.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	// The input through JSON first: numbers and nested values as the
	// input had them.
	b, err := json.Marshal(input)
	if err != nil {
		return ""
	}
	var generic any
	if json.Unmarshal(b, &generic) != nil {
		return ""
	}
	type expect struct {
		Decision bool     `yaml:"decision"`
		Reasons  []string `yaml:"reasons"`
	}
	type testCase struct {
		Name   string `yaml:"name"`
		Input  any    `yaml:"input"`
		Expect expect `yaml:"expect"`
	}
	doc := struct {
		Tests []testCase `yaml:"tests"`
	}{[]testCase{{Name: fmt.Sprintf("%s %s %s/%s", in.Subject.ID, in.Action.Name, in.Resource.Type, in.Resource.ID),
		Input: generic, Expect: expect{res.Decision, reasons}}}}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if enc.Encode(doc) != nil {
		return ""
	}
	return out.String()
}

func actionDoc(a engine.Action) map[string]any {
	m := map[string]any{"name": a.Name}
	if len(a.Properties) > 0 {
		m["properties"] = a.Properties
	}
	return m
}

// consoleTestCase sends the posted test case as a file to download.
func (s *Server) consoleTestCase(c *fiber.Ctx) error {
	if !s.checkCSRF(c) {
		return s.message(c, fiber.StatusForbidden, "Not downloaded", "The form expired or came from another site.")
	}
	body := c.FormValue("testcase")
	if body == "" || len(body) > s.cfg.BodyLimit {
		return s.message(c, fiber.StatusBadRequest, "Nothing to download", "Decide an input first.")
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="playground_test.yaml"`)
	c.Set(fiber.HeaderContentType, "application/yaml")
	return c.SendString(body)
}
