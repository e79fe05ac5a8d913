package main

import (
	"context"
	"log/slog"
)

// auditLog writes the audit events of the CLI's state changes (keys
// rotate|revoke, client add|remove|rotate-secret) to stderr, in the
// configured log format: the same message and attributes as the server's
// admin routes log for the same change, with by=cli. It never sees a
// secret. The zero auditLog discards everything.
type auditLog struct{ log *slog.Logger }

// record logs the outcome of action. On success (err nil) the message is
// done (the server's message for the change) at level, with outcome
// success; on failure it is "<action> failed" at WARN with outcome failure
// and the error.
func (a auditLog) record(ctx context.Context, level slog.Level, done, action string, err error, attrs ...slog.Attr) {
	if a.log == nil {
		return
	}
	attrs = append([]slog.Attr{slog.Bool("audit", true), slog.String("action", action)}, attrs...)
	attrs = append(attrs, slog.String("by", "cli"))
	if err != nil {
		attrs = append(attrs, slog.String("outcome", "failure"), slog.String("error", err.Error()))
		a.log.LogAttrs(ctx, slog.LevelWarn, action+" failed", attrs...)
		return
	}
	a.log.LogAttrs(ctx, level, done, append(attrs, slog.String("outcome", "success"))...)
}
