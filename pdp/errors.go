package pdp

import (
	"bytes"
	"errors"

	"github.com/verdictpdp/verdict/internal/strictjson"
)

// Codes of the errors a caller may see; transports map them to their own
// status (server/errors.go: HTTP).
const (
	CodeInvalidJSON         = "invalid_json"
	CodeInvalidInput        = "invalid_input"
	CodeTooDeep             = "too_deep"
	CodeInvalidSubjectToken = "invalid_subject_token"
	CodeUnavailable         = "unavailable"
	CodeExplainDisabled     = "explain_disabled"
	CodeInvalidPageToken    = "invalid_page_token"
	CodeSearchTooBroad      = "search_too_broad"
	CodeSearchTimeout       = "search_timeout"
)

// Error is a request the service refused, with a stable Code and a Message
// safe to show the caller (it names the offending field, never an internal
// cause).
type Error struct {
	Code    string
	Message string
}

// Error returns "code: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// ErrUnavailable is what a SubjectVerifier wraps when a token cannot be
// checked now (keys or the revocation store unreachable): the request is
// refused with CodeUnavailable, to be retried, never let through.
var ErrUnavailable = errors.New("cannot be checked now")

// DecodeObject decodes a request body that must be a JSON object, strictly
// (see DecodeValue).
func DecodeObject(b []byte, maxDepth int) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, newError(CodeInvalidJSON, "request body is empty")
	}
	v, err := DecodeValue(b, maxDepth, "")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, newError(CodeInvalidInput, "request body must be a JSON object")
	}
	return m, nil
}

// DecodeValue decodes one JSON value nested at most maxDepth levels, as
// I-JSON (RFC 7493): a duplicate member name, invalid UTF-8 or a number
// outside the float64 range is refused, never resolved silently. Numbers
// become int64 or float64 and nothing may follow the value. Errors are
// *Error (too_deep or invalid_json) whose message starts with prefix and
// says where the problem is.
func DecodeValue(b []byte, maxDepth int, prefix string) (any, error) {
	v, err := strictjson.Decode(b, maxDepth)
	if err == nil {
		return v, nil
	}
	if errors.Is(err, strictjson.ErrTooDeep) {
		return nil, newError(CodeTooDeep, prefix+err.Error())
	}
	return nil, newError(CodeInvalidJSON, prefix+"malformed JSON: "+err.Error())
}
