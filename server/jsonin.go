package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/verdictpdp/verdict/internal/strictjson"
)

// decodeObject decodes a request body that must be a JSON object, strictly
// (see decodeValue).
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

// decodeValue decodes one JSON value nested at most maxDepth levels, as
// I-JSON (RFC 7493): a duplicate member name, invalid UTF-8 or a number
// outside the float64 range is refused, never resolved silently. Numbers
// become int64 or float64 and nothing may follow the value. Errors are 400s
// whose message starts with prefix and says where the problem is.
func decodeValue(b []byte, maxDepth int, prefix string) (any, error) {
	v, err := strictjson.Decode(b, maxDepth)
	if err != nil {
		return nil, jsonError(err, prefix)
	}
	return v, nil
}

// jsonError is the 400 for a document strictjson refused: too_deep for
// nesting, invalid_json for anything else.
func jsonError(err error, prefix string) error {
	if errors.Is(err, strictjson.ErrTooDeep) {
		return newError(400, CodeTooDeep, prefix+err.Error())
	}
	return newError(400, CodeInvalidJSON, prefix+"malformed JSON: "+err.Error())
}

// jsonMsg is a short message for an encoding/json error.
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
