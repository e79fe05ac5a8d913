package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Export is everything Verdict stores about a person, as one document
// (the right of access, GDPR art. 15): no secret appears in it (no
// password hash, TOTP secret or recovery-code hash, no session cookie).
type Export struct {
	ExportedAt time.Time    `json:"exported_at"`
	User       Public       `json:"user"`
	Sessions   []Session    `json:"sessions"`
	Consents   []Consent    `json:"consents"`
	Tokens     []UserFamily `json:"refresh_token_families"`
	Audit      []AuditEvent `json:"audit_events"`
}

// Export gathers the user's record, sessions, consents, refresh-token
// families and audit events, and records that it did.
func (s *Service) Export(ctx context.Context, id string, m Meta) (Export, error) {
	u, err := s.users.User(ctx, id)
	if err != nil {
		return Export{}, err
	}
	ses, err := s.sessions.UserSessions(ctx, id)
	if err != nil {
		return Export{}, err
	}
	cons, err := s.consents.UserConsents(ctx, id)
	if err != nil {
		return Export{}, err
	}
	fams, err := s.families.UserFamilies(ctx, id)
	if err != nil {
		return Export{}, err
	}
	s.event(ctx, EventExported, id, OutcomeSuccess, "", m)
	ev, err := s.audit.UserAudit(ctx, id)
	if err != nil {
		return Export{}, err
	}
	return Export{
		ExportedAt: s.now().UTC(), User: u.Public(), Sessions: nonNilSlice(ses),
		Consents: nonNilSlice(cons), Tokens: nonNilSlice(fams), Audit: nonNilSlice(ev),
	}, nil
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Pseudonym is what an erased user's audit events carry instead of their
// id: "erased:" and an HMAC of the id under a key of the deployment's, so
// that events of one erased person stay linkable to each other but not,
// without the key, to the person.
func Pseudonym(key []byte, userID string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(userID))
	return "erased:" + hex.EncodeToString(mac.Sum(nil)[:12])
}

// Erase deletes the person (the right to erasure, GDPR art. 17): every
// refresh-token family issued to them is revoked with its access tokens,
// every session ended, consents deleted, the user record deleted, and
// their audit events keep only a pseudonym (see Pseudonym) and no
// address; one "user.erased" event under that pseudonym remains. It
// returns the pseudonym. Erasing an unknown id is ErrNotFound. If a step
// fails the error says so and Erase can be run again: each step is
// idempotent and the record goes last.
func (s *Service) Erase(ctx context.Context, id string, pseudonymKey []byte, m Meta) (string, error) {
	u, err := s.users.User(ctx, id)
	if err != nil {
		return "", err
	}
	if err := s.revokeAllFamilies(ctx, id); err != nil {
		return "", err
	}
	if _, err := s.EndSessions(ctx, id, ""); err != nil {
		return "", err
	}
	if err := s.consents.DeleteUserConsents(ctx, id); err != nil {
		return "", err
	}
	if err := s.attempts.ClearAttempts(ctx, accountKey(u.Email)); err != nil {
		return "", err
	}
	pseudo := Pseudonym(pseudonymKey, id)
	if _, err := s.audit.PseudonymizeAudit(ctx, id, pseudo); err != nil {
		return "", err
	}
	if err := s.users.DeleteUser(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	s.event(ctx, EventErased, pseudo, OutcomeSuccess, "", Meta{RequestID: m.RequestID})
	return pseudo, nil
}
