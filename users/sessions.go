package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Session is a signed-in browser (see package store's Session).
type Session struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	AuthTime   time.Time `json:"auth_time"`
	AMR        []string  `json:"amr,omitempty"`
	MFAPending bool      `json:"mfa_pending,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
}

// SessionStore stores sessions (see package store's Sessions).
type SessionStore interface {
	PutSession(ctx context.Context, s Session) error
	Session(ctx context.Context, id string) (Session, error)
	UserSessions(ctx context.Context, userID string) ([]Session, error)
	DeleteSession(ctx context.Context, id string) (Session, error)
}

// UserFamily is a refresh-token family issued to a user.
type UserFamily struct {
	Family    string    `json:"family"`
	SessionID string    `json:"session_id,omitempty"`
	ClientID  string    `json:"client_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// FamilyStore records the refresh-token families issued to users.
type FamilyStore interface {
	AddUserFamily(ctx context.Context, userID string, f UserFamily) error
	UserFamilies(ctx context.Context, userID string) ([]UserFamily, error)
	DeleteUserFamilies(ctx context.Context, userID string) error
}

// FamilyRevoker revokes a refresh-token family and the access tokens
// issued from it (the authorization server's Refresher); an unknown
// family is not an error.
type FamilyRevoker interface {
	RevokeFamily(ctx context.Context, family string) error
}

// Authentication methods (RFC 8176) a session records.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)

// touchEvery bounds how often a session's LastSeenAt is written: the idle
// timeout is minutes, so a write per request would be waste.
const touchEvery = time.Minute

// ErrNoSession means the cookie names no live session: unknown, ended,
// idle too long, past its absolute end, or its user is gone or disabled.
var ErrNoSession = errors.New("no live session")

// SessionID is the stored id of the session a cookie value names: the
// base64url SHA-256 of the value, so the store never holds the cookie.
func SessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// StartSession opens a session for u after a successful sign-in with the
// methods amr and returns the cookie value to send (random, 256 bits). A
// session that still waits for the second factor (mfaPending) lasts
// Sessions.MFAPending and signs nobody in.
func (s *Service) StartSession(ctx context.Context, u User, amr []string, mfaPending bool, m Meta) (string, Session, error) {
	cookie := rand.Text() + rand.Text()
	now := s.now().UTC()
	end := now.Add(s.cfg.Sessions.Absolute)
	if mfaPending {
		end = now.Add(s.cfg.Sessions.MFAPending)
	}
	ses := Session{
		ID: SessionID(cookie), UserID: u.ID, AuthTime: now, AMR: slices.Clone(amr), MFAPending: mfaPending,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: end, IP: m.IP, UserAgent: truncate(m.UserAgent, 256),
	}
	if err := s.sessions.PutSession(ctx, ses); err != nil {
		return "", Session{}, err
	}
	return cookie, ses, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Resume returns the live session the cookie names and its user, and
// records that it was seen (at most once a minute). It answers
// ErrNoSession when there is none; a store failure as it is.
func (s *Service) Resume(ctx context.Context, cookie string) (Session, User, error) {
	if cookie == "" || len(cookie) > 256 {
		return Session{}, User{}, ErrNoSession
	}
	ses, err := s.sessions.Session(ctx, SessionID(cookie))
	if errors.Is(err, ErrNotFound) {
		return Session{}, User{}, ErrNoSession
	}
	if err != nil {
		return Session{}, User{}, err
	}
	now := s.now()
	if !now.Before(ses.ExpiresAt) || (!ses.MFAPending && !now.Before(ses.LastSeenAt.Add(s.cfg.Sessions.Idle))) {
		_ = s.endSession(ctx, ses.ID, "expired", Meta{})
		return Session{}, User{}, ErrNoSession
	}
	u, err := s.users.User(ctx, ses.UserID)
	if errors.Is(err, ErrNotFound) || (err == nil && u.Status != StatusActive) {
		_ = s.endSession(ctx, ses.ID, "user disabled or removed", Meta{})
		return Session{}, User{}, ErrNoSession
	}
	if err != nil {
		return Session{}, User{}, err
	}
	if now.Sub(ses.LastSeenAt) >= touchEvery {
		ses.LastSeenAt = now.UTC()
		if err := s.sessions.PutSession(ctx, ses); err != nil {
			return Session{}, User{}, err
		}
	}
	return ses, u, nil
}

// SessionLive reports whether the session with this stored id exists and
// has not passed its absolute end (the idle end is checked by Resume).
func (s *Service) SessionLive(ctx context.Context, id string) (bool, error) {
	ses, err := s.sessions.Session(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !ses.MFAPending && s.now().Before(ses.ExpiresAt), nil
}

// Sessions lists a user's live sessions, oldest first.
func (s *Service) Sessions(ctx context.Context, userID string) ([]Session, error) {
	return s.sessions.UserSessions(ctx, userID)
}

// RecordFamily remembers that a refresh-token family was issued to the
// user through the session, so that ending the session (or erasing the
// user) revokes it.
func (s *Service) RecordFamily(ctx context.Context, userID string, f UserFamily) error {
	return s.families.AddUserFamily(ctx, userID, f)
}

// EndSession ends one session (logout, or an administrator's revocation)
// and revokes the refresh-token families issued through it, with their
// access tokens. ErrNotFound if there is no such session.
func (s *Service) EndSession(ctx context.Context, id string, m Meta) error {
	return s.endSession(ctx, id, "logout", m)
}

func (s *Service) endSession(ctx context.Context, id, why string, m Meta) error {
	ses, err := s.sessions.DeleteSession(ctx, id)
	if err != nil {
		return err
	}
	fams, err := s.families.UserFamilies(ctx, ses.UserID)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range fams {
		if f.SessionID == ses.ID {
			errs = append(errs, s.revoker.RevokeFamily(ctx, f.Family))
		}
	}
	s.event(ctx, EventSessionEnded, ses.UserID, OutcomeSuccess, why, m)
	return errors.Join(errs...)
}

// EndSessions ends every session of the user but the one with id except
// (none when empty), with their refresh tokens, and returns how many it
// ended. With except empty it also revokes the refresh tokens issued to
// the user outside any live session (a privilege change, a new password,
// a disabled account: nothing issued before stays usable).
func (s *Service) EndSessions(ctx context.Context, userID, except string) (int, error) {
	list, err := s.sessions.UserSessions(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	if except == "" {
		errs = append(errs, s.revokeAllFamilies(ctx, userID))
	}
	for _, ses := range list {
		if ses.ID == except {
			continue
		}
		if err := s.endSession(ctx, ses.ID, "ended by a change to the account", Meta{}); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// revokeAllFamilies revokes every refresh-token family issued to the user.
func (s *Service) revokeAllFamilies(ctx context.Context, userID string) error {
	fams, err := s.families.UserFamilies(ctx, userID)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range fams {
		errs = append(errs, s.revoker.RevokeFamily(ctx, f.Family))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("users: revoke tokens: %w", err)
	}
	return s.families.DeleteUserFamilies(ctx, userID)
}
