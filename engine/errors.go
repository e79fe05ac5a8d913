package engine

import (
	"fmt"
	"strings"
)

// CompileError is one problem found while compiling a policy source, located
// at File:Line:Col (1-based; 0 when unknown).
type CompileError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

// Error formats the problem as "file:line:col: message", leaving out the
// parts that are unknown.
func (e CompileError) Error() string {
	return located(e.File, e.Line, e.Col) + e.Message
}

// located returns "file:line:col: ", leaving out the parts that are unknown
// (a zero line or column), or "" when all are.
func located(file string, line, col int) string {
	var b strings.Builder
	b.WriteString(file)
	if line > 0 {
		fmt.Fprintf(&b, ":%d", line)
		if col > 0 {
			fmt.Fprintf(&b, ":%d", col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	return b.String()
}

// CompileErrors is every problem found in a bundle. A bundle with any of them
// is rejected as a whole.
type CompileErrors []CompileError

// Error lists every problem, one per line.
func (es CompileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
