package users

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// AuditEvent is one stored audit event (see package store's AuditEvent).
type AuditEvent struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	UserID  string    `json:"user_id,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	IP      string    `json:"ip,omitempty"`
}

// AuditStore keeps audit events (see package store's Audit).
type AuditStore interface {
	AppendAudit(ctx context.Context, e AuditEvent) error
	UserAudit(ctx context.Context, userID string) ([]AuditEvent, error)
	PseudonymizeAudit(ctx context.Context, userID, pseudonym string) (int, error)
}

// Audit event types.
const (
	EventSignUp           = "user.sign_up"
	EventUserChanged      = "user.changed"
	EventSignIn           = "user.sign_in"
	EventMFA              = "user.mfa"
	EventLockout          = "user.lockout"
	EventUnlock           = "user.unlock"
	EventMFAEnrolled      = "user.mfa_enrolled"
	EventMFARemoved       = "user.mfa_removed"
	EventPasswordChanged  = "user.password_changed"
	EventPasswordRehashed = "user.password_rehashed"
	EventSessionEnded     = "user.session_ended"
	EventConsent          = "user.consent"
	EventExported         = "user.exported"
	EventErased           = "user.erased"
)

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// event logs an audit event and stores it with the user's others (for
// the export). A failure to store it is logged, never returned: the
// action it describes has happened.
func (s *Service) event(ctx context.Context, typ, userID, outcome, detail string, m Meta) {
	// The id orders events of the same instant as they happened (the
	// store sorts by time, then id), and stays unique across replicas.
	e := AuditEvent{
		ID: fmt.Sprintf("%012x", s.seq.Add(1)) + strings.ToLower(rand.Text()[:10]), Time: s.now().UTC(), Type: typ,
		UserID: userID, Outcome: outcome, Detail: detail, IP: m.IP,
	}
	level := slog.LevelInfo
	if outcome == OutcomeFailure {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(ctx, level, "audit", slog.String("event", typ), slog.String("user_id", userID),
		slog.String("outcome", outcome), slog.String("detail", detail), slog.String("ip", m.IP),
		slog.String("request_id", m.RequestID))
	if userID == "" {
		return // nothing to export it with; the log has it
	}
	if err := s.audit.AppendAudit(ctx, e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit event not stored", slog.String("event", typ),
			slog.String("user_id", userID), slog.String("error", err.Error()))
	}
}
