package server

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// Error codes clients may branch on.
const (
	CodeBadRequest       = "bad_request"
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidInput     = "invalid_input"
	CodeTooDeep          = "too_deep"
	CodeTooLarge         = "payload_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
	CodeNotReady         = "not_ready"
	CodeExplainDisabled  = "explain_disabled"
	// CodeInvalidBundle is a bundle that cannot be read safely (400).
	CodeInvalidBundle = "invalid_bundle"
	// CodeBundleRejected is a bundle that does not compile (422); the
	// response's error.details lists every problem as file:line:col: message.
	CodeBundleRejected = "bundle_rejected"
)

// apiError is an error a client may see: a status, a stable code and a
// message safe to show. Internal causes never go into it.
type apiError struct {
	Status  int
	Code    string
	Message string
	// Details, when set, lists every individual problem (compile errors).
	Details []string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

type errorBody struct {
	Error struct {
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Details []string `json:"details,omitempty"`
	} `json:"error"`
}

// errorHandler is Fiber's ErrorHandler: the one place that turns errors into
// HTTP responses. Unknown errors are logged and answered with a generic 500.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ensureRequestID(c)
		var ae *apiError
		var fe *fiber.Error
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &fe):
			ae = fromFiber(fe)
		default:
			log.Error("internal error", "path", c.Path(), "request_id", requestID(c), "error", err)
			ae = newError(fiber.StatusInternalServerError, CodeInternal, "internal error")
		}
		var body errorBody
		body.Error.Code = ae.Code
		body.Error.Message = ae.Message
		body.Error.Details = ae.Details
		return c.Status(ae.Status).JSON(body)
	}
}

func fromFiber(fe *fiber.Error) *apiError {
	switch fe.Code {
	case fiber.StatusRequestEntityTooLarge:
		return newError(fe.Code, CodeTooLarge, "request body is over the size limit")
	case fiber.StatusNotFound:
		return newError(fe.Code, CodeNotFound, "no such route")
	case fiber.StatusMethodNotAllowed:
		return newError(fe.Code, CodeMethodNotAllowed, "method not allowed on this route")
	case fiber.StatusUnsupportedMediaType:
		return newError(fe.Code, CodeUnsupportedMedia, fe.Message)
	case fiber.StatusBadRequest:
		return newError(fe.Code, CodeBadRequest, fe.Message)
	}
	if fe.Code >= 500 {
		return newError(fe.Code, CodeInternal, "internal error")
	}
	return newError(fe.Code, CodeBadRequest, fe.Message)
}

// bundleError maps what reading or compiling a bundle returned: an unsafe or
// corrupt archive is 400 naming the entry, policies that do not compile are
// 422 with every problem in details, failing tests are 422 with each failure.
// Anything else stays an internal error.
func bundleError(err error) error {
	if re, ok := errors.AsType[*bundles.ReadError](err); ok {
		return newError(fiber.StatusBadRequest, CodeInvalidBundle, re.Error())
	}
	if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
		e := newError(fiber.StatusUnprocessableEntity, CodeBundleRejected,
			fmt.Sprintf("the bundle does not compile: %d problem(s); see details", len(ce)))
		for _, c := range ce {
			e.Details = append(e.Details, c.Error())
		}
		return e
	}
	if tf, ok := errors.AsType[bundles.TestFailures](err); ok {
		e := newError(fiber.StatusUnprocessableEntity, CodeBundleRejected,
			fmt.Sprintf("%d of the bundle's tests failed; see details", len(tf)))
		for _, f := range tf {
			e.Details = append(e.Details, bundles.TestFailures{f}.Error())
		}
		return e
	}
	return err
}
