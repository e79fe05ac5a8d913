package users

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LoginAttempts is the failed sign-ins counted under one key.
type LoginAttempts struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// AttemptStore counts failed sign-ins (see package store's Attempts).
type AttemptStore interface {
	AddFailure(ctx context.Context, key string, expires time.Time) (int, error)
	LockUntil(ctx context.Context, key string, until time.Time) error
	Attempts(ctx context.Context, key string) (LoginAttempts, error)
	ClearAttempts(ctx context.Context, key string) error
}

// ErrBadCredentials is the one answer to a failed sign-in: unknown email,
// wrong password and disabled account look the same.
var ErrBadCredentials = errors.New("the email or password is wrong")

// LockedError is the answer while an account (or the caller's address) is
// locked out. It says when to try again, never whether the account
// exists: an unknown email locks like a known one.
type LockedError struct {
	Until time.Time
}

// Error says the sign-in is paused and for how long.
func (e *LockedError) Error() string {
	return "too many failed sign-ins: try again after " + e.Until.UTC().Format(time.RFC3339)
}

// RetryAfter is how long from now the lockout lasts, at least a second.
func (e *LockedError) RetryAfter(now time.Time) time.Duration {
	return max(time.Second, e.Until.Sub(now).Round(time.Second))
}

func accountKey(email string) string { return "acct:" + email }
func addressKey(ip string) string    { return "ip:" + ip }

// lockedUntil is the lockout end of a key, zero when it is not locked.
func (s *Service) lockedUntil(ctx context.Context, key string) (time.Time, error) {
	a, err := s.attempts.Attempts(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	if s.now().Before(a.LockedUntil) {
		return a.LockedUntil, nil
	}
	return time.Time{}, nil
}

// fail counts a failure under key and locks the key once it reaches
// threshold: Base after threshold failures, doubling with each further
// one, up to Max.
func (s *Service) fail(ctx context.Context, key string, threshold int) (time.Time, error) {
	now := s.now()
	n, err := s.attempts.AddFailure(ctx, key, now.Add(s.cfg.Lockout.Window))
	if err != nil || n < threshold {
		return time.Time{}, err
	}
	d := s.cfg.Lockout.Base
	for i := threshold; i < n && d < s.cfg.Lockout.Max; i++ {
		d *= 2
	}
	until := now.Add(min(d, s.cfg.Lockout.Max))
	return until, s.attempts.LockUntil(ctx, key, until)
}

// SignIn checks an email and password. It answers ErrBadCredentials for an
// unknown email, a wrong password or a disabled account alike (an unknown
// email costs one Argon2id hash too, so that timing tells nothing), and a
// *LockedError while the account or m.IP is locked out, without checking
// the password. Failures are counted per account and per address; a
// success clears the account's count and, when the configured Argon2 cost
// was raised since the password was hashed, rehashes it. A store failure
// is returned as it is (no sign-in).
func (s *Service) SignIn(ctx context.Context, email, password string, m Meta) (User, error) {
	norm, nerr := NormalizeEmail(email)
	if nerr != nil {
		norm = "invalid"
	}
	acct := accountKey(norm)
	for _, key := range []string{acct, addressKey(m.IP)} {
		if key == addressKey("") {
			continue
		}
		until, err := s.lockedUntil(ctx, key)
		if err != nil {
			return User{}, err
		}
		if !until.IsZero() {
			s.event(ctx, EventSignIn, "", OutcomeFailure, "locked out", m)
			return User{}, &LockedError{Until: until}
		}
	}
	u, err := s.users.UserByEmail(ctx, norm)
	switch {
	case errors.Is(err, ErrNotFound) || nerr != nil:
		Verify(password, s.dummy)
		return User{}, s.failed(ctx, acct, "", m)
	case err != nil:
		return User{}, err
	}
	if !Verify(password, u.PasswordHash) || u.Status != StatusActive {
		return User{}, s.failed(ctx, acct, u.ID, m)
	}
	if err := s.attempts.ClearAttempts(ctx, acct); err != nil {
		return User{}, err
	}
	now := s.now().UTC()
	u.LastSignInAt = now
	if NeedsRehash(u.PasswordHash, s.cfg.Argon2) {
		if h, err := Hash(password, s.cfg.Argon2); err == nil {
			u.PasswordHash = h
			s.event(ctx, EventPasswordRehashed, u.ID, OutcomeSuccess, "argon2 cost raised", m)
		}
	}
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return User{}, err
	}
	s.event(ctx, EventSignIn, u.ID, OutcomeSuccess, "password", m)
	return u, nil
}

// failed counts a failed sign-in against the account and the address,
// records it, and returns what the caller answers: ErrBadCredentials, or a
// *LockedError when this failure started a lockout.
func (s *Service) failed(ctx context.Context, acct, userID string, m Meta) error {
	until, err := s.fail(ctx, acct, s.cfg.Lockout.Threshold)
	if err != nil {
		return err
	}
	if m.IP != "" {
		ipUntil, err := s.fail(ctx, addressKey(m.IP), s.cfg.Lockout.IPThreshold)
		if err != nil {
			return err
		}
		if ipUntil.After(until) {
			until = ipUntil
		}
	}
	s.event(ctx, EventSignIn, userID, OutcomeFailure, "bad credentials", m)
	if !until.IsZero() {
		s.event(ctx, EventLockout, userID, OutcomeSuccess, fmt.Sprintf("locked until %s", until.UTC().Format(time.RFC3339)), m)
		return &LockedError{Until: until}
	}
	return ErrBadCredentials
}

// Unlock clears the failure count and lockout of an account (an
// administrator's action).
func (s *Service) Unlock(ctx context.Context, id string, m Meta) error {
	u, err := s.users.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.attempts.ClearAttempts(ctx, accountKey(u.Email)); err != nil {
		return err
	}
	s.event(ctx, EventUnlock, u.ID, OutcomeSuccess, "", m)
	return nil
}
