package cel

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
)

// position maps a 1-based line and 0-based column inside the expression held
// by the scalar node n (as CEL reports them, in code points) to the 1-based
// line and column of that character in the file whose lines are lines.
//
// YAML changes a scalar on its way to the value: quotes and escapes go, block
// indentation goes, and folded (>), plain and quoted scalars join their lines
// with spaces. So the value is walked along the source instead: every
// non-blank character of the value is the next non-blank character of the
// source (after undoing an escape), and blanks only ever appear or vanish.
// When that walk fails (a source this does not understand) or CEL gives no
// location, the answer is the scalar's own start, never a column that does
// not exist.
func position(n *yaml.Node, lines []string, exprLine, exprCol int) (int, int) {
	p := filePos{n.Line, n.Column}
	if at, ok := exprPosition(n, lines, exprLine, exprCol); ok {
		p = at
	}
	// A blank that stands for a line break, or an empty scalar, has no
	// column of its own: the end of its line is the nearest that exists.
	if p.line >= 1 && p.line <= len(lines) {
		if width := utf8.RuneCountInString(lines[p.line-1]); p.col > width {
			p.col = max(width, 1)
		}
	}
	return p.line, p.col
}

// exprPosition is position when the walk along the source succeeds.
func exprPosition(n *yaml.Node, lines []string, exprLine, exprCol int) (filePos, bool) {
	if exprLine < 1 || exprCol < 0 {
		return filePos{}, false // CEL gave no location (e.g. a size limit)
	}
	offset, ok := runeOffset(n.Value, exprLine, exprCol)
	if !ok {
		return filePos{}, false
	}
	pos, ok := scalarPositions(lines, n)
	if !ok || len(pos) == 0 || len(pos) != utf8.RuneCountInString(n.Value) {
		return filePos{}, false
	}
	if offset >= len(pos) {
		// The end of the expression (an unexpected <EOF>): its last
		// character that is not a blank.
		value := []rune(n.Value)
		offset = len(value) - 1
		for offset > 0 && isBlank(value[offset]) {
			offset--
		}
	}
	if pos[offset].line > len(lines) {
		return filePos{}, false
	}
	return pos[offset], true
}

// runeOffset turns CEL's line (1-based) and column (0-based, in code points)
// into an offset in code points into expr.
func runeOffset(expr string, line, col int) (int, bool) {
	offset := 0
	for i := 1; i < line; i++ {
		nl := strings.IndexByte(expr, '\n')
		if nl < 0 {
			return 0, false
		}
		offset += utf8.RuneCountInString(expr[:nl]) + 1
		expr = expr[nl+1:]
	}
	return offset + col, true
}

// filePos is a 1-based line and column in a file.
type filePos struct{ line, col int }

// cursor walks a file rune by rune, line by line; the end of each line but
// the last reads as '\n'.
type cursor struct {
	lines [][]rune
	li    int // 0-based line
	ci    int // 0-based column
}

const eof = -1

func (c *cursor) peekAt(k int) rune {
	li, ci := c.li, c.ci
	for ; k > 0; k-- {
		if li >= len(c.lines) {
			return eof
		}
		if ci < len(c.lines[li]) {
			ci++
		} else {
			li, ci = li+1, 0
		}
	}
	if li >= len(c.lines) {
		return eof
	}
	if ci < len(c.lines[li]) {
		return c.lines[li][ci]
	}
	if li == len(c.lines)-1 {
		return eof
	}
	return '\n'
}

func (c *cursor) peek() rune { return c.peekAt(0) }

func (c *cursor) advance() {
	if c.li >= len(c.lines) {
		return
	}
	if c.ci < len(c.lines[c.li]) {
		c.ci++
		return
	}
	c.li, c.ci = c.li+1, 0
}

func (c *cursor) pos() filePos { return filePos{c.li + 1, c.ci + 1} }

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// scalarPositions returns the file position of every code point of n.Value,
// or false when the value cannot be lined up with its source.
func scalarPositions(lines []string, n *yaml.Node) ([]filePos, bool) {
	if n.Kind != yaml.ScalarNode || n.Line < 1 || n.Line > len(lines) || n.Column < 1 {
		return nil, false
	}
	c := &cursor{lines: make([][]rune, len(lines)), li: n.Line - 1, ci: n.Column - 1}
	for i, l := range lines {
		c.lines[i] = []rune(l)
	}
	if c.ci > len(c.lines[c.li]) {
		return nil, false
	}
	// A tag or an anchor may stand before the scalar itself.
	for r := c.peek(); r == '!' || r == '&'; r = c.peek() {
		for r = c.peek(); r != eof && !isBlank(r); r = c.peek() {
			c.advance()
		}
		for isBlank(c.peek()) {
			c.advance()
		}
	}
	style := n.Style
	double, single := style&yaml.DoubleQuotedStyle != 0, style&yaml.SingleQuotedStyle != 0
	switch {
	case style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The content starts on the line after the | or > header.
		if r := c.peek(); r != '|' && r != '>' {
			return nil, false
		}
		for r := c.peek(); r != '\n'; r = c.peek() {
			if r == eof {
				return nil, false
			}
			c.advance()
		}
		c.advance()
	case double:
		if c.peek() != '"' {
			return nil, false
		}
		c.advance()
	case single:
		if c.peek() != '\'' {
			return nil, false
		}
		c.advance()
	}
	value := []rune(n.Value)
	out := make([]filePos, 0, len(value))
	for i := 0; i < len(value); {
		v := value[i]
		if !isBlank(v) {
			for isBlank(c.peek()) {
				c.advance()
			}
		}
		r := c.peek()
		switch {
		case double && r == '\\':
			if next := c.peekAt(1); next == '\n' || next == '\r' {
				// An escaped line break: nothing in the value.
				c.advance()
				for isBlank(c.peek()) {
					c.advance()
				}
				continue
			}
			got, width, ok := unescape(c)
			if !ok || got != v {
				return nil, false
			}
			out = append(out, c.pos())
			for ; width > 0; width-- {
				c.advance()
			}
		case single && r == '\'':
			if v != '\'' || c.peekAt(1) != '\'' {
				return nil, false
			}
			out = append(out, c.pos())
			c.advance()
			c.advance()
		case isBlank(v):
			// A blank of the value: the blank here, or one that folding
			// made out of nothing (it has no place of its own).
			out = append(out, c.pos())
			if isBlank(r) {
				c.advance()
			}
		case r == v:
			out = append(out, c.pos())
			c.advance()
		default:
			return nil, false
		}
		i++
	}
	return out, true
}

// unescape reads the double-quoted escape sequence at c (which is on its
// backslash) without moving c, and returns the code point it stands for and
// its length in code points.
func unescape(c *cursor) (rune, int, bool) {
	simple := map[rune]rune{
		'0': 0, 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n', 'v': '\v', 'f': '\f',
		'r': '\r', 'e': 0x1b, ' ': ' ', '"': '"', '/': '/', '\\': '\\', 'N': 0x85, '_': 0xa0,
		'L': 0x2028, 'P': 0x2029,
	}
	k := c.peekAt(1)
	if r, ok := simple[k]; ok {
		return r, 2, true
	}
	digits := map[rune]int{'x': 2, 'u': 4, 'U': 8}[k]
	if digits == 0 {
		return 0, 0, false
	}
	hex := make([]rune, digits)
	for i := range hex {
		hex[i] = c.peekAt(2 + i)
	}
	v, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return rune(v), 2 + digits, true
}

// lineBreaks are the line breaks of YAML 1.1, which yaml.v3 counts lines by.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

// splitLines splits a YAML file into its lines as yaml.v3 numbers them.
func splitLines(src []byte) []string {
	return strings.Split(lineBreaks.Replace(string(src)), "\n")
}

// inFile moves every error's position onto the file: yaml.v3 places an
// empty value just after its line's end, and a line break has no column.
func inFile(lines []string, errs engine.CompileErrors) engine.CompileErrors {
	for i := range errs {
		e := &errs[i]
		if e.Line > len(lines) {
			e.Line, e.Col = len(lines), 0
		}
		if e.Line >= 1 {
			if width := utf8.RuneCountInString(lines[e.Line-1]); e.Col > width {
				e.Col = max(width, 1)
			}
		}
	}
	return errs
}
