package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/verdictpdp/verdict/pdp"
)

// decodeObject is pdp.DecodeObject for the server's other JSON routes
// (admin, preview): one strict decoder for every JSON document, its errors
// as the server's.
func decodeObject(b []byte, maxDepth int) (map[string]any, error) {
	m, err := pdp.DecodeObject(b, maxDepth)
	if err != nil {
		return nil, fromPDP(err)
	}
	return m, nil
}

// decodeValue is pdp.DecodeValue, its errors as the server's.
func decodeValue(b []byte, maxDepth int, prefix string) (any, error) {
	v, err := pdp.DecodeValue(b, maxDepth, prefix)
	if err != nil {
		return nil, fromPDP(err)
	}
	return v, nil
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
