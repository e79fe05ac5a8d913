package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Error is an answer of Verdict's that was not a decision: a status other
// than 200, with the code and message of its JSON error body
// ({"error":{"code","message"}}, or OAuth's {"error","error_description"}
// from the token endpoint). Test for it with errors.As, or with the Is*
// helpers.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the stable error code to branch on (invalid_input,
	// unauthorized, insufficient_scope, rate_limited, unavailable,
	// invalid_client, ...); "" when the body had none (an answer of a
	// proxy in front of Verdict).
	Code string
	// Message is for people.
	Message string
	// Details are the individual problems, when the server lists several.
	Details []string
	// RetryAfter is the answer's Retry-After, 0 without one.
	RetryAfter time.Duration
}

// Error returns "verdict: <status> <code>: <message>".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else {
		b.WriteString(" " + http.StatusText(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// IsUnavailable reports whether err is a 503 answer (*Error): the server or
// something it needs cannot answer now, and a later retry may succeed.
func IsUnavailable(err error) bool { return hasStatus(err, http.StatusServiceUnavailable) }

// IsRateLimited reports whether err is a 429 answer (*Error); its
// RetryAfter says when to try again.
func IsRateLimited(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

// IsUnauthorized reports whether err is a 401 answer (*Error): the
// caller's credentials (client secret, token, API key) were refused.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports whether err is a 403 answer (*Error): valid
// credentials without the route's scope (insufficient_scope).
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

func hasStatus(err error, status int) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == status
}

// errorBody reads both error shapes: Verdict's {"error": {...}} and
// OAuth's {"error": "code", "error_description": "..."}.
type errorBody struct {
	Error       json.RawMessage `json:"error"`
	Description string          `json:"error_description"`
}

// newError is the *Error of a non-200 answer with body b.
func newError(status int, h http.Header, b []byte) *Error {
	e := &Error{Status: status, RetryAfter: retryAfter(h.Get("Retry-After"), time.Now())}
	var body errorBody
	if json.Unmarshal(b, &body) == nil && len(body.Error) > 0 {
		var v struct {
			Code    string   `json:"code"`
			Message string   `json:"message"`
			Details []string `json:"details"`
		}
		var code string
		switch {
		case json.Unmarshal(body.Error, &v) == nil:
			e.Code, e.Message, e.Details = v.Code, v.Message, v.Details
			return e
		case json.Unmarshal(body.Error, &code) == nil:
			e.Code, e.Message = code, body.Description
			return e
		}
	}
	// Not Verdict's answer (a proxy's page): a short excerpt, for people.
	e.Message = excerpt(b)
	return e
}

// tokenError is the *Error of a failed token request, when the token
// endpoint answered; any other error (the network) as it is.
func tokenError(err error) error {
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok || re.Response == nil {
		return err
	}
	e := &Error{Status: re.Response.StatusCode, Code: re.ErrorCode, Message: re.ErrorDescription,
		RetryAfter: retryAfter(re.Response.Header.Get("Retry-After"), time.Now())}
	if e.Code == "" {
		e.Message = excerpt(re.Body)
	}
	return fmt.Errorf("token request: %w", e)
}

// excerpt is the start of a body that is not Verdict's JSON, printable.
func excerpt(b []byte) string {
	const n = 200
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// retryAfter reads a Retry-After value, seconds or an HTTP date (RFC 9110
// §10.2.3); 0 when absent, malformed or past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
