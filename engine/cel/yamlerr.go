package cel

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
)

// KeyError is a key that a YAML mapping may not have: a misspelt key must
// never be ignored (a misspelt "conditon" would leave a rule that matches
// everything).
type KeyError struct {
	// Line and Col locate the key (1-based).
	Line, Col int
	// Key is the unknown key; In names the mapping ("rule", "test case").
	Key, In string
	// Known lists the keys the mapping may have.
	Known []string
}

// Error names the key and the one it most likely misspells, or else every
// known key.
func (e *KeyError) Error() string {
	if s, ok := engine.Closest(e.Key, e.Known); ok {
		return fmt.Sprintf("unknown key %q in %s (did you mean %q?)", e.Key, e.In, s)
	}
	return fmt.Sprintf("unknown key %q in %s (known: %s)", e.Key, e.In, strings.Join(e.Known, ", "))
}

// KnownKeys returns a *KeyError for the first key of the mapping node n that
// is not in keys; what names the mapping in the message. Non-mapping nodes
// pass (decoding reports them).
func KnownKeys(n *yaml.Node, what string, keys ...string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(keys, k.Value) {
			return &KeyError{Line: k.Line, Col: k.Column, Key: k.Value, In: what, Known: keys}
		}
	}
	return nil
}

// YAMLErrors turns an error of decoding the YAML file src (named path) into
// compile errors at file:line:col, worded for a policy author: no Go type
// names, and the line of the problem rather than that of the block it is in.
// An empty document (io.EOF) comes back with no position and the message
// "empty file".
func YAMLErrors(path string, src []byte, err error) engine.CompileErrors {
	return inFile(splitLines(src), yamlErrors(path, src, err))
}

func yamlErrors(path string, src []byte, err error) engine.CompileErrors {
	if errors.Is(err, io.EOF) {
		return engine.CompileErrors{{File: path, Message: "empty file"}}
	}
	if ke, ok := errors.AsType[*KeyError](err); ok {
		return engine.CompileErrors{{File: path, Line: ke.Line, Col: ke.Col, Message: ke.Error()}}
	}
	if te, ok := errors.AsType[*yaml.TypeError](err); ok && len(te.Errors) > 0 {
		// Type errors come after a successful parse: the tree tells which
		// key each is about.
		var root yaml.Node
		_ = yaml.Unmarshal(src, &root)
		out := make(engine.CompileErrors, 0, len(te.Errors))
		for _, msg := range te.Errors {
			out = append(out, typeError(path, &root, msg))
		}
		return out
	}
	return engine.CompileErrors{syntaxError(path, src, err)}
}

var (
	yamlLineRe    = regexp.MustCompile(`^line (\d+): `)
	unmarshalRe   = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	definedRe     = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	goFieldRe     = regexp.MustCompile(`^field (\S+) (not found|already set) in type \S+$`)
	goTypeInMsgRe = regexp.MustCompile(`( in| into)?( type)? [\w.*\[\]]*\w\.\w+`)
)

// typeError words one of yaml.v3's type errors ("line 9: cannot unmarshal
// !!str `read` into []string") for a policy author ("rules[0].actions: must
// be a list of strings, got a string (read)").
func typeError(path string, root *yaml.Node, msg string) engine.CompileError {
	ce := engine.CompileError{File: path}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		ce.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	switch m := unmarshalRe.FindStringSubmatch(msg); {
	case m != nil:
		got := tagWords(m[1])
		if m[2] != "" {
			got += " (" + m[2] + ")"
		}
		ce.Message = fmt.Sprintf("must be %s, got %s", goTypeWords(m[3]), got)
		// Every file's top is decoded into a mapping: a mapping there is
		// never the value of the wrong type.
		var top *yaml.Node
		if root != nil && len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
			top = root.Content[0]
		}
		if where, n := find(root, "", false, func(n *yaml.Node) bool {
			return n != top && n.Line == ce.Line && n.ShortTag() == m[1]
		}); n != nil {
			ce.Col = n.Column
			if where != "" {
				ce.Message = where + ": " + ce.Message
			}
		}
	default:
		if m := definedRe.FindStringSubmatch(msg); m != nil {
			ce.Message = fmt.Sprintf("key %q is defined twice (first at line %s)", m[1], m[2])
			if _, n := find(root, "", true, func(n *yaml.Node) bool { return n.Line == ce.Line && n.Value == m[1] }); n != nil {
				ce.Col = n.Column
			}
		} else if m := goFieldRe.FindStringSubmatch(msg); m != nil {
			ce.Message = fmt.Sprintf("key %q %s", m[1], map[string]string{"not found": "is unknown", "already set": "is set twice"}[m[2]])
		} else {
			ce.Message = goTypeInMsgRe.ReplaceAllString(msg, "")
		}
	}
	return ce
}

// find returns the first node under n (depth first, aliases not followed;
// mapping keys only if keys is set) for which match holds, with its path
// from the root ("rules[0].actions").
func find(n *yaml.Node, at string, keys bool, match func(*yaml.Node) bool) (string, *yaml.Node) {
	if n == nil {
		return "", nil
	}
	if match(n) {
		return at, n
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, f := find(c, at, keys, match); f != nil {
				return p, f
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, f := find(c, fmt.Sprintf("%s[%d]", at, i), keys, match); f != nil {
				return p, f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if keys && match(k) {
				return at, k
			}
			p := k.Value
			if at != "" {
				p = at + "." + k.Value
			}
			if p, f := find(v, p, keys, match); f != nil {
				return p, f
			}
		}
	}
	return "", nil
}

// tagWords names the kind of a YAML value by its short tag.
func tagWords(tag string) string {
	if w, ok := map[string]string{
		"!!str": "a string", "!!int": "an integer", "!!float": "a number", "!!bool": "a boolean",
		"!!null": "null", "!!map": "a mapping", "!!seq": "a list", "!!timestamp": "a timestamp",
		"!!binary": "binary data",
	}[tag]; ok {
		return w
	}
	return "a value tagged " + tag
}

// goTypeWords says what a value decoded into the Go type t must be, without
// naming t.
func goTypeWords(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "time.Time":
		return "a timestamp"
	case t == "yaml.Node" || t == "interface {}" || t == "any":
		return "a value"
	case strings.HasPrefix(t, "[]"):
		if goTypeWords(t[2:]) == "a string" {
			return "a list of strings"
		}
		return "a list"
	default: // a map or a struct
		return "a mapping"
	}
}

// syntaxError locates a YAML syntax error. yaml.v3 reports many of them at
// the line where the enclosing block starts (a mis-indented key on line 10
// of a rule is reported at the "- id:" line), or one line early; the problem
// is on the first line after which the text no longer parses, so that line
// is searched for.
func syntaxError(path string, src []byte, err error) engine.CompileError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	ce := engine.CompileError{File: path, Message: withHint(msg)}
	if line < 1 {
		// yaml.v3 leaves the line out when its mark is on the first line
		// (0-based line 0): search from there rather than name no line.
		if len(src) == 0 {
			return ce
		}
		line = 1
	}
	lines := splitLines(src)
	ce.Line = line
	if len(src) <= maxSearched {
		ce.Line = problemLine(lines, line, msg)
	}
	if ce.Line <= len(lines) {
		l := lines[ce.Line-1]
		ce.Col = utf8.RuneCountInString(l) - utf8.RuneCountInString(strings.TrimLeft(l, " \t")) + 1
	}
	return ce
}

// maxSearched bounds the size of a file whose problem line is searched for:
// each step of the search parses the file again (a policy or a test file is
// far smaller; a bigger data.yaml keeps the line yaml.v3 reports).
const maxSearched = 256 << 10

// problemLine returns the first line from reported on such that the text up
// to it fails to parse with the same problem msg (reported when none does).
// It bisects, trusting that once the problem is in, every longer prefix
// fails the same way.
func problemLine(lines []string, reported int, msg string) int {
	fails := func(k int) bool {
		dec := yaml.NewDecoder(strings.NewReader(strings.Join(lines[:k], "\n") + "\n"))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			m := strings.TrimPrefix(err.Error(), "yaml: ")
			if l := yamlLineRe.FindString(m); l != "" {
				m = m[len(l):]
			}
			return !errors.Is(err, io.EOF) && m == msg
		}
	}
	lo, hi := min(reported, len(lines)), len(lines)
	if lo < 1 || !fails(hi) {
		return reported
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// withHint adds what usually causes yaml.v3's terser syntax errors.
func withHint(msg string) string {
	switch msg {
	case "mapping values are not allowed in this context":
		return msg + ": check the indentation of this line, or quote a value that holds \": \""
	case "did not find expected key", "did not find expected '-' indicator",
		"block sequence entries are not allowed in this context":
		return msg + ": check the indentation of this line"
	case "found character that cannot start any token":
		return msg + " (a tab cannot indent YAML; a value starting with @ or ` needs quotes)"
	}
	return msg
}
