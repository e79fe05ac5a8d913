package bundles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/verdictpdp/verdict/engine"
)

// SchemaDir is the bundle directory that holds JSON Schemas: the file
// schemas/<resource type>.json validates every decision input whose
// resource.type is <resource type>. Files in subdirectories of schemas/ bind
// no type; they are there to be $ref'd.
const SchemaDir = "schemas/"

// maxSchemaProblems bounds how many validation errors a decision reports.
const maxSchemaProblems = 3

// schemaBase is the URL bundle schema files are known under, so that a
// relative $ref ("common/address.json") names another file of the bundle.
// Nothing is ever fetched: the loader refuses every URL not in the bundle.
const schemaBase = "verdict-bundle:///"

// IsSchemaFile reports whether name is a JSON Schema of the bundle.
func IsSchemaFile(name string) bool {
	return strings.HasPrefix(name, SchemaDir) && strings.HasSuffix(name, ".json")
}

// typeSchemaFile is the file that binds resource type typ, and whether typ
// can name one at all: a type with a slash would name a file in a
// subdirectory (there only for $ref) or, with "..", outside schemas/.
func typeSchemaFile(typ string) (string, bool) {
	name := SchemaDir + typ + ".json"
	return name, typ != "" && path.Dir(name)+"/" == SchemaDir
}

// SchemaSource is one schema file of a bundle as a person reads it.
type SchemaSource struct {
	// File is the file's path in its bundle: schemas/<type>.json.
	File string
	// Revision is the revision of the bundle that holds it.
	Revision string
	// Text is the file indented two spaces a level when it is valid JSON,
	// else exactly as stored.
	Text string
}

// SchemaSources returns the schema files that validate inputs whose
// resource.type is typ, one for each bundle of bs that has
// schemas/<typ>.json, in bundle order (every one applies). It returns nil
// when none does, or when typ cannot name a schema file (empty, or with a
// slash or a dot path).
func SchemaSources(bs []*Bundle, typ string) []SchemaSource {
	name, ok := typeSchemaFile(typ)
	if !ok {
		return nil
	}
	var out []SchemaSource
	for _, b := range bs {
		raw, ok := b.Files[name]
		if !ok {
			continue
		}
		text := string(raw)
		var buf bytes.Buffer
		if json.Indent(&buf, bytes.TrimSpace(raw), "", "  ") == nil {
			text = buf.String()
		}
		out = append(out, SchemaSource{File: name, Revision: b.Revision(), Text: text})
	}
	return out
}

// SchemaTypes returns the resource types that bs have a schema for (each
// schemas/<type>.json directly under SchemaDir, not the files of its
// subdirectories), sorted and each once; nil when there is none.
func SchemaTypes(bs []*Bundle) []string {
	seen := map[string]bool{}
	for _, b := range bs {
		for name := range b.Files {
			typ := strings.TrimSuffix(path.Base(name), ".json")
			if IsSchemaFile(name) && path.Dir(name)+"/" == SchemaDir && typ != "" {
				seen[typ] = true
			}
		}
	}
	if len(seen) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(seen))
}

// noLoader refuses to fetch anything: a schema may refer only to the bundle's
// own schema files and the JSON Schema meta-schemas built into the library.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is not a schema file of this bundle (schemas may only $ref files under %s)", url, SchemaDir)
}

// Schemas compiles the bundle's schemas/*.json (JSON Schema draft 2020-12
// unless a file's $schema says otherwise; format is asserted) into a
// validator per resource type. Every problem comes back in
// engine.CompileErrors naming its file.
func (b *Bundle) Schemas() (map[string]engine.InputValidator, error) {
	names := sortedNames(b.Files, IsSchemaFile)
	if len(names) == 0 {
		return nil, nil
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	var errs engine.CompileErrors
	for _, name := range names {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Files[name]))
		if err != nil {
			errs = append(errs, jsonError(name, b.Files[name], err))
			continue
		}
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			errs = append(errs, engine.CompileError{File: name, Message: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	out := map[string]engine.InputValidator{}
	for _, name := range names {
		if path.Dir(name)+"/" != SchemaDir {
			continue
		}
		typ := strings.TrimSuffix(path.Base(name), ".json")
		sch, err := c.Compile(schemaBase + name)
		if err != nil {
			errs = append(errs, engine.CompileError{File: name, Message: "invalid schema: " + schemaMessage(err)})
			continue
		}
		out[typ] = schemaValidator{sch}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// schemaMessage strips the bundle URL prefix from the library's messages so
// that they name files as the author wrote them.
func schemaMessage(err error) string {
	return strings.ReplaceAll(err.Error(), schemaBase, "")
}

type schemaValidator struct{ s *jsonschema.Schema }

var _ engine.InputValidator = schemaValidator{}

var printer = message.NewPrinter(language.English)

// ValidateInput returns the first few leaf errors, each as "at <JSON
// pointer>: <message>".
func (v schemaValidator) ValidateInput(doc map[string]any) []string {
	err := v.s.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{err.Error()}
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(out) >= maxSchemaProblems {
			return
		}
		if len(e.Causes) == 0 {
			out = append(out, fmt.Sprintf("at %s: %s", pointer(e.InstanceLocation), e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// allOf applies several bundles' validators for one resource type: an input
// must match every one.
type allOf []engine.InputValidator

func (a allOf) ValidateInput(doc map[string]any) []string {
	var out []string
	for _, v := range a {
		out = append(out, v.ValidateInput(doc)...)
	}
	if len(out) > maxSchemaProblems {
		out = out[:maxSchemaProblems]
	}
	return out
}
