package oauth

import (
	"context"
	"log/slog"
)

// requestIDKey is the context key of the request id WithRequestID stores.
type requestIDKey struct{}

// WithRequestID returns ctx carrying the HTTP request's id, so that the
// audit events the token service logs (reuse detected, token revoked) name
// the request that caused them. An empty id returns ctx unchanged.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id WithRequestID put in ctx, or "" if none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestIDAttr is the request_id attribute of an audit event: empty when
// ctx carries none (a call from outside an HTTP request).
func requestIDAttr(ctx context.Context) slog.Attr {
	return slog.String("request_id", RequestID(ctx))
}
