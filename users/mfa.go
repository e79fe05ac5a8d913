package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/png"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 defaults, what every authenticator app
// supports): SHA-1, 6 digits, 30-second steps, one step of clock skew
// either way.
const (
	totpPeriod        = 30
	totpSkew          = 1
	recoveryCodeCount = 10
)

// ErrBadCode is the answer to a wrong, reused or expired one-time or
// recovery code.
var ErrBadCode = errors.New("the code is wrong or was already used")

// ErrMFAState means the step does not fit the account's MFA state
// (confirming with nothing pending, enrolling twice).
var ErrMFAState = errors.New("mfa state")

// Enrolment is what a user needs to add Verdict to an authenticator app.
type Enrolment struct {
	// Secret is the base32 secret, for typing in by hand.
	Secret string `json:"secret"`
	// URL is the otpauth:// URL the QR code carries.
	URL string `json:"otpauth_url"`
	// QRPNG is the QR code as a PNG image.
	QRPNG []byte `json:"-"`
}

// BeginTOTP makes a new TOTP secret for the user and keeps it pending
// until ConfirmTOTP; a user who already has MFA gets ErrMFAState.
func (s *Service) BeginTOTP(ctx context.Context, userID string) (Enrolment, error) {
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return Enrolment{}, err
	}
	if u.MFAEnabled() {
		return Enrolment{}, fmt.Errorf("%w: a second factor is already enrolled; remove it first", ErrMFAState)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.MFAIssuer, AccountName: u.Email, Period: totpPeriod})
	if err != nil {
		return Enrolment{}, fmt.Errorf("users: totp: %w", err)
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return Enrolment{}, fmt.Errorf("users: qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("users: qr code: %w", err)
	}
	u.TOTPPending, u.UpdatedAt = key.Secret(), s.now().UTC()
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL(), QRPNG: buf.Bytes()}, nil
}

// ConfirmTOTP checks a code from the app against the pending secret, and
// on success makes it the user's second factor and returns ten one-time
// recovery codes (shown once: only their hashes are kept). Wrong code:
// ErrBadCode, nothing changes.
func (s *Service) ConfirmTOTP(ctx context.Context, userID, code string, m Meta) ([]string, error) {
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.TOTPPending == "" {
		return nil, fmt.Errorf("%w: no enrolment is pending; start one first", ErrMFAState)
	}
	step, ok := s.matchTOTP(u.TOTPPending, code, 0)
	if !ok {
		return nil, ErrBadCode
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return nil, err
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = u.TOTPPending, "", step, hashes
	u.UpdatedAt = s.now().UTC()
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return nil, err
	}
	s.event(ctx, EventMFAEnrolled, u.ID, OutcomeSuccess, "totp", m)
	return codes, nil
}

// RemoveMFA removes the user's second factor and recovery codes (an
// administrator's action for a lost phone).
func (s *Service) RemoveMFA(ctx context.Context, userID string, m Meta) error {
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return err
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = "", "", 0, nil
	u.UpdatedAt = s.now().UTC()
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return err
	}
	s.event(ctx, EventMFARemoved, u.ID, OutcomeSuccess, "", m)
	_, err = s.EndSessions(ctx, u.ID, "")
	return err
}

// VerifySecondFactor checks a TOTP code (each accepted once) or, failing
// that, a recovery code (then used up). It reports the method used
// ("otp" or "recovery"). A wrong code counts as a failed sign-in of the
// account (so that codes cannot be guessed without a lockout) and is
// ErrBadCode, or a *LockedError.
func (s *Service) VerifySecondFactor(ctx context.Context, userID, code string, m Meta) (string, error) {
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return "", err
	}
	acct := accountKey(u.Email)
	if until, err := s.lockedUntil(ctx, acct); err != nil {
		return "", err
	} else if !until.IsZero() {
		return "", &LockedError{Until: until}
	}
	if !u.MFAEnabled() {
		return "", fmt.Errorf("%w: no second factor is enrolled", ErrMFAState)
	}
	method := ""
	if step, ok := s.matchTOTP(u.TOTPSecret, code, u.TOTPLastStep); ok {
		u.TOTPLastStep, method = step, "otp"
	} else if i := matchRecovery(u.RecoveryHashes, code); i >= 0 {
		u.RecoveryHashes, method = slices.Delete(slices.Clone(u.RecoveryHashes), i, i+1), "recovery"
	}
	if method == "" {
		until, err := s.fail(ctx, acct, s.cfg.Lockout.Threshold)
		if err != nil {
			return "", err
		}
		s.event(ctx, EventMFA, u.ID, OutcomeFailure, "wrong code", m)
		if !until.IsZero() {
			s.event(ctx, EventLockout, u.ID, OutcomeSuccess, "locked until "+until.UTC().Format(time.RFC3339), m)
			return "", &LockedError{Until: until}
		}
		return "", ErrBadCode
	}
	u.UpdatedAt = s.now().UTC()
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return "", err
	}
	if err := s.attempts.ClearAttempts(ctx, acct); err != nil {
		return "", err
	}
	s.event(ctx, EventMFA, u.ID, OutcomeSuccess, method, m)
	return method, nil
}

// matchTOTP checks code against secret within the allowed skew and
// returns the matching time step; a step not after last (already used)
// does not match.
func (s *Service) matchTOTP(secret, code string, last int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0, false
	}
	now := s.now().Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := now + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totp.ValidateOpts{
			Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > last {
			return step, true
		}
	}
	return 0, false
}

// recoveryAlphabet has no look-alike characters.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCodes returns recovery codes ("xxxxx-xxxxx", about 49 bits
// each) and their hashes.
func newRecoveryCodes() ([]string, [][]byte, error) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	for i := range codes {
		raw := make([]byte, 10)
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, fmt.Errorf("users: recovery codes: %w", err)
		}
		var b strings.Builder
		for j, r := range raw {
			if j == 5 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[int(r)%len(recoveryAlphabet)])
		}
		codes[i] = b.String()
		h := sha256.Sum256([]byte(codes[i]))
		hashes[i] = h[:]
	}
	return codes, hashes, nil
}

// matchRecovery returns the index of code's hash among hashes, or -1.
func matchRecovery(hashes [][]byte, code string) int {
	code = strings.ToLower(strings.TrimSpace(code))
	if len(code) != 11 {
		return -1
	}
	h := sha256.Sum256([]byte(code))
	found := -1
	for i, want := range hashes {
		if subtle.ConstantTimeCompare(h[:], want) == 1 {
			found = i
		}
	}
	return found
}
