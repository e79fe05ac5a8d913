package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/pdp"
	"github.com/verdictpdp/verdict/store"
)

// Error codes clients may branch on.
const (
	CodeBadRequest       = "bad_request"
	CodeInvalidJSON      = pdp.CodeInvalidJSON
	CodeInvalidInput     = pdp.CodeInvalidInput
	CodeTooDeep          = pdp.CodeTooDeep
	CodeTooLarge         = "payload_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
	CodeNotReady         = "not_ready"
	CodeExplainDisabled  = pdp.CodeExplainDisabled
	// AuthZEN search.
	CodeInvalidPageToken = pdp.CodeInvalidPageToken
	CodeSearchTooBroad   = pdp.CodeSearchTooBroad
	CodeSearchTimeout    = pdp.CodeSearchTimeout
	// Bundle pushes and revisions.
	CodeBundleUnreadable = "bundle_unreadable"
	CodeBundleSignature  = "bundle_signature_invalid"
	CodeBundleInvalid    = "bundle_invalid"
	CodeBundleTests      = "bundle_tests_failed"
	CodeRevisionConflict = "bundle_revision_conflict"
	CodeNoActiveBundle   = "no_active_bundle"
)

// apiError is an error a client may see: a status, a stable code and a
// message safe to show. Internal causes never go into it.
type apiError struct {
	Status  int
	Code    string
	Message string
	// Details are the individual problems (one compile error or failing
	// test a line), when there are several.
	Details []string
	// headers are set on the answer (WWW-Authenticate, Retry-After).
	headers [][2]string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// with sets a header on the answer of e.
func (e *apiError) with(name, value string) *apiError {
	e.headers = append(e.headers, [2]string{name, value})
	return e
}

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
func errorHandler(log *slog.Logger, hsts string) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ensureRequestID(c)
		setSafetyHeaders(c, hsts)
		var ae *apiError
		var fe *fiber.Error
		switch {
		case errors.As(err, &ae):
		case isPDP(err):
			ae = fromPDP(err)
			if ae.Status == fiber.StatusServiceUnavailable {
				c.Set(fiber.HeaderRetryAfter, "1")
			}
		case errors.As(err, &fe):
			ae = fromFiber(fe)
		case storeUnavailable(err):
			// Nothing was decided or stored; the client may retry.
			log.Warn("store unavailable", "path", c.Path(), "request_id", requestID(c), "error", err)
			c.Set(fiber.HeaderRetryAfter, "1")
			ae = newError(fiber.StatusServiceUnavailable, CodeUnavailable, "the store cannot be reached now; retry")
		default:
			if ae = fromBundles(err); ae == nil {
				log.Error("internal error", "path", c.Path(), "request_id", requestID(c), "error", err)
				ae = newError(fiber.StatusInternalServerError, CodeInternal, "internal error")
			}
		}
		for _, h := range ae.headers {
			c.Set(h[0], h[1])
		}
		var body errorBody
		body.Error.Code = ae.Code
		body.Error.Message = ae.Message
		body.Error.Details = ae.Details
		return c.Status(ae.Status).JSON(body)
	}
}

// pdpStatus is the HTTP status of each decision-service error code; any
// other code is a 400.
var pdpStatus = map[string]int{
	pdp.CodeUnavailable:     fiber.StatusServiceUnavailable,
	pdp.CodeSearchTimeout:   fiber.StatusServiceUnavailable,
	pdp.CodeExplainDisabled: fiber.StatusForbidden,
	pdp.CodeUnplannable:     fiber.StatusUnprocessableEntity,
	pdp.CodePlanTimeout:     fiber.StatusServiceUnavailable,
	// A decision that was to be signed and could not be is never
	// answered unsigned instead.
	pdp.CodeSigningUnavailable: fiber.StatusServiceUnavailable,
}

func isPDP(err error) bool {
	_, ok := errors.AsType[*pdp.Error](err)
	return ok
}

// fromPDP is the apiError of a decision-service error (an *apiError for
// anything else, as it is, or a 500).
func fromPDP(err error) *apiError {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae
	}
	pe, ok := errors.AsType[*pdp.Error](err)
	if !ok {
		return newError(fiber.StatusInternalServerError, CodeInternal, "internal error")
	}
	status, ok := pdpStatus[pe.Code]
	if !ok {
		status = fiber.StatusBadRequest
	}
	return newError(status, pe.Code, pe.Message)
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

// storeUnavailable reports whether err is a failure to reach the store (a
// shared store wraps those with store.ErrUnavailable; a network error or a
// deadline that got through unwrapped counts too): a 503 with Retry-After,
// never a 500.
func storeUnavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet
}

// fromBundles maps the errors of reading, compiling, testing and storing a
// bundle; nil for any other error. The messages name files and lines of the
// caller's own bundle, never server paths.
func fromBundles(err error) *apiError {
	if se, ok := errors.AsType[*bundles.SignatureError](err); ok {
		return newError(fiber.StatusUnprocessableEntity, CodeBundleSignature, se.Error())
	}
	if re, ok := errors.AsType[*bundles.ReadError](err); ok {
		return newError(fiber.StatusBadRequest, CodeBundleUnreadable, re.Error())
	}
	if ce, ok := errors.AsType[engine.CompileErrors](err); ok {
		ae := newError(fiber.StatusUnprocessableEntity, CodeBundleInvalid,
			fmt.Sprintf("the bundle does not compile: %d problem(s), listed in details", len(ce)))
		for _, e := range ce {
			ae.Details = append(ae.Details, e.Error())
		}
		return ae
	}
	if tf, ok := errors.AsType[bundles.TestFailures](err); ok {
		ae := newError(fiber.StatusUnprocessableEntity, CodeBundleTests,
			fmt.Sprintf("%d of the bundle's own test case(s) failed, listed in details", len(tf)))
		ae.Details = tf.Lines()
		return ae
	}
	switch {
	case errors.Is(err, bundles.ErrRevisionConflict):
		return newError(fiber.StatusConflict, CodeRevisionConflict, err.Error())
	case errors.Is(err, bundles.ErrUnknownRevision):
		return newError(fiber.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, bundles.ErrNoActiveRevision):
		return newError(fiber.StatusNotFound, CodeNoActiveBundle, err.Error())
	}
	return nil
}

// bundleError is fromBundles for a handler: the mapped error, or err as it
// is (an internal error).
func bundleError(err error) error {
	if ae := fromBundles(err); ae != nil {
		return ae
	}
	return err
}
