package server

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"
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
)

// apiError is an error a client may see: a status, a stable code and a
// message safe to show. Internal causes never go into it.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
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
