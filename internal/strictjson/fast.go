package strictjson

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// fast is the decoder of well-formed documents: one pass over the bytes,
// building the values as it goes, with the same rules as the jsontext path
// (I-JSON: no duplicate names, valid UTF-8 and no lone surrogates, numbers
// in the float64 range; the depth bound; nothing after the value). It does
// not word errors: on any problem it gives up (ok false) and Decode runs
// the jsontext path, which finds the same problem and says what and where.
// FuzzDecode checks that both accept the same documents as the same values.
//
// Why: a decision request is decoded on every call, and the jsontext path
// costs ~3.8 µs and 78 allocations for a 225-byte body (BenchmarkDecode),
// most of it tokens and the name tracking that a map insert does anyway.
type fast struct {
	b        []byte
	s        string // b as one string: plain strings are slices of it
	i        int
	depth    int
	maxDepth int
}

// jsontextMaxDepth is the syntax layer's own nesting bound.
const jsontextMaxDepth = 10000

func decodeFast(b []byte, maxDepth int) (any, bool) {
	if maxDepth <= 0 || maxDepth > jsontextMaxDepth {
		maxDepth = jsontextMaxDepth
	}
	f := fast{b: b, s: string(b), maxDepth: maxDepth}
	f.ws()
	v, ok := f.value()
	if !ok {
		return nil, false
	}
	f.ws()
	return v, f.i == len(f.b)
}

func (f *fast) ws() {
	for f.i < len(f.b) {
		switch f.b[f.i] {
		case ' ', '\t', '\n', '\r':
			f.i++
		default:
			return
		}
	}
}

func (f *fast) value() (any, bool) {
	if f.i >= len(f.b) {
		return nil, false
	}
	switch c := f.b[f.i]; {
	case c == '{':
		return f.object()
	case c == '[':
		return f.array()
	case c == '"':
		str, ok := f.string()
		if !ok {
			return nil, false
		}
		return str, true
	case c == 't':
		return true, f.literal("true")
	case c == 'f':
		return false, f.literal("false")
	case c == 'n':
		return nil, f.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return f.number()
	}
	return nil, false
}

func (f *fast) literal(lit string) bool {
	if len(f.b)-f.i < len(lit) || string(f.b[f.i:f.i+len(lit)]) != lit {
		return false
	}
	f.i += len(lit)
	return true
}

func (f *fast) enter() bool {
	f.depth++
	f.i++
	return f.depth <= f.maxDepth
}

func (f *fast) object() (any, bool) {
	if !f.enter() {
		return nil, false
	}
	m := map[string]any{}
	f.ws()
	if f.i < len(f.b) && f.b[f.i] == '}' {
		f.i++
		f.depth--
		return m, true
	}
	for {
		if f.i >= len(f.b) || f.b[f.i] != '"' {
			return nil, false
		}
		name, ok := f.string()
		if !ok {
			return nil, false
		}
		if _, dup := m[name]; dup {
			return nil, false
		}
		f.ws()
		if f.i >= len(f.b) || f.b[f.i] != ':' {
			return nil, false
		}
		f.i++
		f.ws()
		v, ok := f.value()
		if !ok {
			return nil, false
		}
		m[name] = v
		f.ws()
		if f.i >= len(f.b) {
			return nil, false
		}
		switch f.b[f.i] {
		case ',':
			f.i++
			f.ws()
		case '}':
			f.i++
			f.depth--
			return m, true
		default:
			return nil, false
		}
	}
}

func (f *fast) array() (any, bool) {
	if !f.enter() {
		return nil, false
	}
	a := []any{}
	f.ws()
	if f.i < len(f.b) && f.b[f.i] == ']' {
		f.i++
		f.depth--
		return a, true
	}
	for {
		v, ok := f.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		f.ws()
		if f.i >= len(f.b) {
			return nil, false
		}
		switch f.b[f.i] {
		case ',':
			f.i++
			f.ws()
		case ']':
			f.i++
			f.depth--
			return a, true
		default:
			return nil, false
		}
	}
}

// string reads a string at f.i (its opening quote). Plain ASCII without
// escapes is sliced once; anything else goes through unescape.
func (f *fast) string() (string, bool) {
	start := f.i + 1
	for j := start; j < len(f.b); j++ {
		switch c := f.b[j]; {
		case c == '"':
			f.i = j + 1
			return f.s[start:j], true
		case c == '\\' || c >= utf8.RuneSelf:
			return f.unescape(start)
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// unescape reads the rest of a string that has escapes or non-ASCII bytes,
// from start (just after the opening quote).
func (f *fast) unescape(start int) (string, bool) {
	out := make([]byte, 0, 32)
	j := start
	for j < len(f.b) {
		c := f.b[j]
		switch {
		case c == '"':
			f.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf && c != '\\':
			out = append(out, c)
			j++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(f.b[j:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out = append(out, f.b[j:j+size]...)
			j += size
		default: // a backslash
			if j+1 >= len(f.b) {
				return "", false
			}
			switch e := f.b[j+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(f.b, j+2)
				if !ok {
					return "", false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					// Only a high surrogate followed by a low one is a
					// character; anything else is a lone surrogate.
					if r >= 0xDC00 || j+1 >= len(f.b) || f.b[j] != '\\' || f.b[j+1] != 'u' {
						return "", false
					}
					lo, ok := hex4(f.b, j+2)
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return "", false
					}
					r = utf16.DecodeRune(r, lo)
					j += 6
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return "", false
			}
			j += 2
		}
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number of RFC 8259's grammar and converts it as the
// jsontext path does (number): int64 when it is an integer that fits,
// float64 otherwise, out of float64's range a failure.
func (f *fast) number() (any, bool) {
	start, j := f.i, f.i
	if f.b[j] == '-' {
		j++
	}
	switch {
	case j < len(f.b) && f.b[j] == '0':
		j++
	case j < len(f.b) && '1' <= f.b[j] && f.b[j] <= '9':
		for j < len(f.b) && '0' <= f.b[j] && f.b[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	integer := true
	if j < len(f.b) && f.b[j] == '.' {
		integer = false
		j++
		d := j
		for j < len(f.b) && '0' <= f.b[j] && f.b[j] <= '9' {
			j++
		}
		if j == d {
			return nil, false
		}
	}
	if j < len(f.b) && (f.b[j] == 'e' || f.b[j] == 'E') {
		integer = false
		j++
		if j < len(f.b) && (f.b[j] == '+' || f.b[j] == '-') {
			j++
		}
		d := j
		for j < len(f.b) && '0' <= f.b[j] && f.b[j] <= '9' {
			j++
		}
		if j == d {
			return nil, false
		}
	}
	f.i = j
	s := f.s[start:j]
	if integer {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
	}
	return parseNumber(s)
}
