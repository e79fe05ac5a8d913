package cel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
)

// APIVersion is the only apiVersion a policy file may declare.
const APIVersion = "verdict.dev/v1"

// Combining algorithms of a policy's rules.
const (
	DenyOverrides   = "deny-overrides"
	PermitOverrides = "permit-overrides"
	FirstApplicable = "first-applicable"
)

// file is the YAML shape of a policy file. Expressions are kept as nodes so
// that compile errors can point into the file.
type file struct {
	APIVersion         string    `yaml:"apiVersion"`
	Kind               string    `yaml:"kind"`
	Name               string    `yaml:"name"`
	Description        string    `yaml:"description"`
	Combining          string    `yaml:"combining"`
	CacheTimeDependent bool      `yaml:"cacheTimeDependent"`
	Variables          yaml.Node `yaml:"variables"`
	Rules              []rule    `yaml:"rules"`
}

type rule struct {
	ID          string    `yaml:"id"`
	Description string    `yaml:"description"`
	Effect      string    `yaml:"effect"`
	Actions     []string  `yaml:"actions"`
	Resources   []string  `yaml:"resources"`
	Condition   yaml.Node `yaml:"condition"`
	line, col   int
}

// UnmarshalYAML keeps the rule's line for error messages and rejects keys a
// rule does not have: Node.Decode does not honour the decoder's KnownFields,
// and a misspelt "conditon" must never leave a rule that matches everything.
func (r *rule) UnmarshalYAML(n *yaml.Node) error {
	if err := KnownKeys(n, "rule", "id", "description", "effect", "actions", "resources", "condition"); err != nil {
		return err
	}
	type plain rule
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = rule(p)
	r.line, r.col = n.Line, n.Column
	return nil
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// source is an expression with where it stands in its file.
type source struct {
	text string
	node *yaml.Node
}

// parseFile decodes and validates the structure of a policy file. Every
// structural problem is returned, located where possible.
func parseFile(path string, src []byte) (*file, engine.CompileErrors) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		ce := YAMLErrors(path, src, err)
		if errors.Is(err, io.EOF) {
			ce[0].Message = "empty policy file"
		}
		return nil, ce
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, YAMLErrors(path, src, err)
		}
		return nil, engine.CompileErrors{{File: path, Line: more.Line, Message: "a policy file holds one policy: put the policy after --- in a file of its own"}}
	}
	// Unknown keys are checked here rather than with the decoder's
	// KnownFields, whose message names Go types.
	if len(root.Content) == 1 {
		if err := KnownKeys(root.Content[0], "the policy", "apiVersion", "kind", "name", "description",
			"combining", "cacheTimeDependent", "variables", "rules"); err != nil {
			return nil, YAMLErrors(path, src, err)
		}
	}
	var f file
	if err := root.Decode(&f); err != nil {
		return nil, YAMLErrors(path, src, err)
	}
	var errs engine.CompileErrors
	add := func(line int, format string, args ...any) {
		errs = append(errs, engine.CompileError{File: path, Line: line, Message: fmt.Sprintf(format, args...)})
	}
	if f.APIVersion != APIVersion {
		add(1, "apiVersion must be %q, got %q", APIVersion, f.APIVersion)
	}
	if f.Kind != "Policy" {
		add(1, "kind must be \"Policy\", got %q", f.Kind)
	}
	if strings.TrimSpace(f.Name) == "" {
		add(1, "name is required")
	}
	switch f.Combining {
	case "":
		f.Combining = DenyOverrides
	case DenyOverrides, PermitOverrides, FirstApplicable:
	default:
		add(1, "combining must be one of %s, %s, %s; got %q", DenyOverrides, PermitOverrides, FirstApplicable, f.Combining)
	}
	if f.Variables.Kind != 0 && f.Variables.Kind != yaml.MappingNode {
		add(f.Variables.Line, "variables must be a mapping of name to CEL expression")
	}
	if f.Variables.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		c := f.Variables.Content
		for i := 0; i+1 < len(c); i += 2 {
			k, v := c[i], c[i+1]
			if !identRe.MatchString(k.Value) {
				add(k.Line, "variable name %q is not an identifier", k.Value)
			}
			if seen[k.Value] {
				add(k.Line, "variable %q is defined twice", k.Value)
			}
			seen[k.Value] = true
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
				add(v.Line, "variable %q must be a non-empty CEL expression string", k.Value)
			}
		}
	}
	if len(f.Rules) == 0 {
		add(1, "a policy needs at least one rule")
	}
	ids := map[string]bool{}
	for i := range f.Rules {
		r := &f.Rules[i]
		if r.ID == "" {
			add(r.line, "rule %d has no id", i+1)
		} else if ids[r.ID] {
			add(r.line, "rule id %q is used twice", r.ID)
		}
		ids[r.ID] = true
		if r.Effect != "allow" && r.Effect != "deny" {
			add(r.line, "rule %q: effect must be \"allow\" or \"deny\", got %q", r.ID, r.Effect)
		}
		if r.Condition.Kind != 0 && (r.Condition.Kind != yaml.ScalarNode || strings.TrimSpace(r.Condition.Value) == "") {
			add(r.Condition.Line, "rule %q: condition must be a non-empty CEL expression string", r.ID)
		}
		for _, a := range r.Actions {
			if a == "" {
				add(r.line, "rule %q: empty action name", r.ID)
			}
		}
		for _, t := range r.Resources {
			if t == "" {
				add(r.line, "rule %q: empty resource type", r.ID)
			}
		}
	}
	return &f, errs
}
