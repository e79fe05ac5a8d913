package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/verdictpdp/verdict/engine"
)

// checkDepth reports whether the JSON text nests objects and arrays deeper
// than max. It scans bytes without decoding, so a deep document is refused
// before any work is spent on it.
func checkDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return newError(400, CodeTooDeep, fmt.Sprintf("JSON is nested deeper than %d levels", max))
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// decodeObject decodes a JSON object with numbers as int64 or float64 and no
// trailing data.
func decodeObject(b []byte, maxDepth int) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, newError(400, CodeInvalidJSON, "request body is empty")
	}
	v, err := decodeValue(b, maxDepth, "")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, newError(400, CodeInvalidInput, "request body must be a JSON object")
	}
	return m, nil
}

// decodeValue decodes one JSON value nested at most maxDepth levels, with
// numbers as int64 or float64 and no trailing data. Errors are 400s whose
// message starts with prefix.
func decodeValue(b []byte, maxDepth int, prefix string) (any, error) {
	if err := checkDepth(b, maxDepth); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, newError(400, CodeInvalidJSON, prefix+"malformed JSON: "+jsonMsg(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError(400, CodeInvalidJSON, prefix+"malformed JSON: unexpected data after the top-level value")
	}
	return engine.NormalizeJSON(v), nil
}

func jsonMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}
