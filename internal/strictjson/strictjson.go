// Package strictjson decodes JSON the one way every reader of outside input
// in Verdict does: I-JSON (RFC 7493) and nothing looser. A document with a
// duplicate member name, invalid UTF-8 (raw or as a lone surrogate escape),
// a number outside the float64 range, nesting deeper than a bound, or
// anything after its one top-level value is refused with an *Error that
// says what and where (byte offset and JSON pointer).
//
// Strictness closes parser differentials: a gateway that reads the first of
// two "id" members and a PDP that reads the last would decide about
// different subjects, and two byte strings that a lenient decoder maps to
// the same U+FFFD-laden string would share a cache entry.
//
// The syntax layer is github.com/go-json-experiment/json/jsontext, the
// module that mirrors encoding/json/v2 (stable in the standard library from
// Go 1.27): it rejects duplicate names and invalid UTF-8 by default.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrTooDeep is wrapped by the *Error of a document nested deeper than the
// bound given to Decode; callers that answer it differently test with
// errors.Is.
var ErrTooDeep = errors.New("nested too deeply")

// Error is a document Decode refused.
type Error struct {
	// Offset is the byte offset of the problem (0-based).
	Offset int64
	// Pointer is the JSON pointer (RFC 6901) of the value or member the
	// problem is in; empty for the top level.
	Pointer string
	// Reason says what is wrong, without position.
	Reason string
	err    error
}

// Error returns "<reason> (at <pointer>, byte <offset>)".
func (e *Error) Error() string {
	if e.Pointer != "" {
		return fmt.Sprintf("%s (at %s, byte %d)", e.Reason, e.Pointer, e.Offset)
	}
	return fmt.Sprintf("%s (at byte %d)", e.Reason, e.Offset)
}

// Unwrap returns ErrTooDeep for a document nested too deeply, else nil.
func (e *Error) Unwrap() error { return e.err }

// Decode parses b as exactly one JSON value nested at most maxDepth levels
// (maxDepth <= 0: no bound beyond the syntax layer's own, 10,000). Objects
// become map[string]any, arrays []any, integers without fraction or
// exponent that fit become int64, other numbers float64, and strings,
// booleans and null string, bool and nil. Any problem is an *Error; b is
// never retained.
func Decode(b []byte, maxDepth int) (any, error) {
	if v, ok := decodeFast(b, maxDepth); ok {
		return v, nil
	}
	return decodeSlow(b, maxDepth)
}

// decodeSlow is Decode over jsontext: it words every problem.
func decodeSlow(b []byte, maxDepth int) (any, error) {
	d := decoder{dec: jsontext.NewDecoder(bytes.NewReader(b)), maxDepth: maxDepth}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		if err == nil || !isSyntax(err) {
			return nil, d.fail("unexpected data after the top-level value", nil)
		}
		return nil, d.wrap(err)
	}
	return v, nil
}

// DecodeObject is Decode for a document that must be a JSON object; an
// empty document and any other value are *Errors too.
func DecodeObject(b []byte, maxDepth int) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &Error{Reason: "the document is empty"}
	}
	v, err := Decode(b, maxDepth)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Reason: "the document must be a JSON object, not " + kindName(v)}
	}
	return m, nil
}

// LineCol turns a byte offset of b into a 1-based line and column (in
// bytes), for messages about files.
func LineCol(b []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(b)))
	before := b[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

type decoder struct {
	dec      *jsontext.Decoder
	maxDepth int
}

func (d *decoder) value() (any, error) {
	tok, err := d.dec.ReadToken()
	if err != nil {
		return nil, d.wrap(err)
	}
	switch tok.Kind() {
	case '{':
		if err := d.checkDepth(); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for d.dec.PeekKind() != '}' {
			tok, err := d.dec.ReadToken()
			if err != nil {
				return nil, d.wrap(err)
			}
			name := tok.String() // the token is void after the next read
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, d.wrap(err)
		}
		return m, nil
	case '[':
		if err := d.checkDepth(); err != nil {
			return nil, err
		}
		a := []any{}
		for d.dec.PeekKind() != ']' {
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, d.wrap(err)
		}
		return a, nil
	case '0':
		return d.number(tok.String())
	case '"':
		return tok.String(), nil
	case 't', 'f':
		return tok.Bool(), nil
	case 'n':
		return nil, nil
	}
	return nil, d.fail("unexpected token", nil)
}

// number keeps integers that fit as int64 and everything else as float64;
// a number no float64 holds (1e400) is refused rather than turned into
// infinity, which no JSON text can express and no policy expects.
func (d *decoder) number(s string) (any, error) {
	v, ok := parseNumber(s)
	if !ok {
		return nil, d.fail(fmt.Sprintf("number %s is out of the range of a 64-bit float", short(s)), nil)
	}
	return v, nil
}

// parseNumber converts a number the syntax accepted: int64 when it is an
// integer that fits, float64 otherwise; false when no float64 holds it.
func parseNumber(s string) (any, bool) {
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, false
	}
	return f, true
}

func (d *decoder) checkDepth() error {
	if d.maxDepth > 0 && d.dec.StackDepth() > d.maxDepth {
		return d.fail(fmt.Sprintf("JSON is nested deeper than %d levels", d.maxDepth), ErrTooDeep)
	}
	return nil
}

// fail is an *Error at the decoder's current position.
func (d *decoder) fail(reason string, cause error) *Error {
	return &Error{Offset: d.dec.InputOffset(), Pointer: string(d.dec.StackPointer()), Reason: reason, err: cause}
}

// wrap turns the syntax layer's error into an *Error without its package
// prefix.
func (d *decoder) wrap(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		e := &Error{Offset: se.ByteOffset, Pointer: string(se.JSONPointer)}
		switch {
		case errors.Is(se.Err, jsontext.ErrDuplicateName):
			e.Reason = fmt.Sprintf("duplicate member %s", strconv.Quote(short(se.JSONPointer.LastToken())))
			e.Pointer = string(se.JSONPointer.Parent())
		case errors.Is(se.Err, io.ErrUnexpectedEOF):
			e.Reason = "unexpected end of input"
		case se.Err != nil:
			e.Reason = strings.TrimPrefix(se.Err.Error(), "jsontext: ")
		default:
			e.Reason = "syntax error"
		}
		return e
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return d.fail("unexpected end of input", nil)
	}
	return d.fail(strings.TrimPrefix(err.Error(), "jsontext: "), nil)
}

func isSyntax(err error) bool {
	_, ok := errors.AsType[*jsontext.SyntacticError](err)
	return ok
}

func kindName(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "an object"
}

// short keeps a quoted name or number readable in a message.
func short(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Unmarshal checks b as Decode does (no depth bound), then decodes it into v
// with encoding/json (numbers as json.Number where v has interface values).
// The strict check's problem is an *Error; a mismatch between b and v's
// type is encoding/json's error.
func Unmarshal(b []byte, v any) error {
	if _, err := Decode(b, 0); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// Position is where err, an *Error about the text b, happened as
// "line:col: reason"; any other error as it is.
func Position(b []byte, err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	line, col := LineCol(b, e.Offset)
	msg := e.Reason
	if e.Pointer != "" {
		msg += " (in " + e.Pointer + ")"
	}
	return fmt.Sprintf("%d:%d: %s", line, col, msg)
}
