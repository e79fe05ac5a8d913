package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Errors callers branch on.
var (
	// ErrNotFound: no user (session, consent) with that id.
	ErrNotFound = errors.New("not found")
	// ErrExists: the email is taken.
	ErrExists = errors.New("a user with this email exists")
	// ErrInvalid wraps every refusal of a malformed field (email, name,
	// role); the message names the field.
	ErrInvalid = errors.New("invalid user")
)

// Statuses of a user.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// User is a person who signs in, as stored. See package store's User for
// the meaning of each field (this is the same record).
type User struct {
	ID                string    `json:"id"`
	Email             string    `json:"email"`
	Name              string    `json:"name,omitempty"`
	PasswordHash      string    `json:"password_hash,omitempty"`
	Status            string    `json:"status"`
	Roles             []string  `json:"roles,omitempty"`
	Groups            []string  `json:"groups,omitempty"`
	TOTPSecret        string    `json:"totp_secret,omitempty"`
	TOTPPending       string    `json:"totp_pending,omitempty"`
	TOTPLastStep      int64     `json:"totp_last_step,omitempty"`
	RecoveryHashes    [][]byte  `json:"recovery_hashes,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
	LastSignInAt      time.Time `json:"last_sign_in_at,omitzero"`
}

// MFAEnabled reports whether the user has a confirmed second factor.
func (u User) MFAEnabled() bool { return u.TOTPSecret != "" }

// Public is what a user's record shows to an administrator or in an
// export: everything but the secrets (password hash, TOTP secret and
// recovery code hashes).
type Public struct {
	ID                string    `json:"id"`
	Email             string    `json:"email"`
	Name              string    `json:"name,omitempty"`
	Status            string    `json:"status"`
	Roles             []string  `json:"roles"`
	Groups            []string  `json:"groups"`
	MFA               bool      `json:"mfa"`
	RecoveryCodesLeft int       `json:"recovery_codes_left"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
	LastSignInAt      time.Time `json:"last_sign_in_at,omitzero"`
}

// Public returns the user without secrets.
func (u User) Public() Public {
	return Public{
		ID: u.ID, Email: u.Email, Name: u.Name, Status: u.Status,
		Roles: nonNil(u.Roles), Groups: nonNil(u.Groups),
		MFA: u.MFAEnabled(), RecoveryCodesLeft: len(u.RecoveryHashes),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		PasswordChangedAt: u.PasswordChangedAt, LastSignInAt: u.LastSignInAt,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// UserStore stores users; its errors wrap ErrNotFound and ErrExists as
// the store's methods document.
type UserStore interface {
	CreateUser(ctx context.Context, u User) error
	UpdateUser(ctx context.Context, u User) error
	User(ctx context.Context, id string) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	DeleteUser(ctx context.Context, id string) error
}

// Meta is where a request came from, for throttling and audit events.
type Meta struct {
	IP        string
	UserAgent string
	// RequestID names the request in logs.
	RequestID string
}

// Service manages users. It is safe for concurrent use.
type Service struct {
	cfg      Config
	users    UserStore
	attempts AttemptStore
	sessions SessionStore
	consents ConsentStore
	families FamilyStore
	audit    AuditStore
	revoker  FamilyRevoker
	breached Breached
	log      *slog.Logger
	now      func() time.Time
	// dummy is a hash of a random password at the configured cost: an
	// unknown email is checked against it so that its answer takes as long
	// as a wrong password's.
	dummy string
	// seq orders the audit events this service records.
	seq atomic.Uint64
}

// Stores are the stores a Service needs.
type Stores struct {
	Users    UserStore
	Attempts AttemptStore
	Sessions SessionStore
	Consents ConsentStore
	Families FamilyStore
	Audit    AuditStore
	// Revoker revokes the refresh-token families of ended sessions and
	// erased users.
	Revoker FamilyRevoker
}

// New returns a Service. breached may be nil (no list); log nil discards
// audit logging; now nil is time.Now. It fails if cfg is invalid or a
// store is missing.
func New(cfg Config, st Stores, breached Breached, log *slog.Logger, now func() time.Time) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st.Users == nil || st.Attempts == nil || st.Sessions == nil || st.Consents == nil || st.Families == nil || st.Audit == nil || st.Revoker == nil {
		return nil, errors.New("users: every store is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	dummy, err := Hash(rand.Text(), cfg.Argon2)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, users: st.Users, attempts: st.Attempts, sessions: st.Sessions,
		consents: st.Consents, families: st.Families, audit: st.Audit, revoker: st.Revoker,
		breached: breached, log: log, now: now, dummy: dummy,
	}, nil
}

// Config returns the configuration the service runs with.
func (s *Service) Config() Config { return s.cfg }

// NormalizeEmail trims and lower-cases an email address and checks that
// it is one plain address (no display name, at most 254 bytes).
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return "", fmt.Errorf("%w: email is required", ErrInvalid)
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", fmt.Errorf("%w: email %q is not a valid address (like name@example.com)", ErrInvalid, email)
	}
	return e, nil
}

// NewUser is what Add needs.
type NewUser struct {
	Email    string
	Name     string
	Password string
	Roles    []string
	Groups   []string
}

func checkNames(what string, names []string) error {
	for _, n := range names {
		if n == "" || len(n) > 128 || strings.ContainsAny(n, " \t\r\n,") {
			return fmt.Errorf("%w: %s %q must be 1-128 characters without spaces or commas", ErrInvalid, what, n)
		}
	}
	return nil
}

func checkName(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200 || strings.ContainsAny(name, "\r\n\x00") {
		return fmt.Errorf("%w: name must be at most 200 characters on one line", ErrInvalid)
	}
	return nil
}

// Add creates an active user. Every malformed field is an error wrapping
// ErrInvalid, a refused password one wrapping ErrWeakPassword, a taken
// email ErrExists; nothing is stored then.
func (s *Service) Add(ctx context.Context, nu NewUser, m Meta) (User, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return User{}, err
	}
	if err := errors.Join(checkName(nu.Name), checkNames("role", nu.Roles), checkNames("group", nu.Groups)); err != nil {
		return User{}, err
	}
	if err := CheckPassword(ctx, s.cfg.Passwords, s.breached, nu.Password, email, nu.Name); err != nil {
		return User{}, err
	}
	hash, err := Hash(nu.Password, s.cfg.Argon2)
	if err != nil {
		return User{}, err
	}
	now := s.now().UTC()
	u := User{
		ID: "u_" + strings.ToLower(rand.Text()), Email: email, Name: nu.Name, PasswordHash: hash,
		Status: StatusActive, Roles: dedupe(nu.Roles), Groups: dedupe(nu.Groups),
		CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now,
	}
	if err := s.users.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	s.event(ctx, EventSignUp, u.ID, OutcomeSuccess, "", m)
	return u, nil
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Get returns one user; an error wrapping ErrNotFound if none.
func (s *Service) Get(ctx context.Context, id string) (User, error) { return s.users.User(ctx, id) }

// Find returns a user by id or, when ref contains "@", by email.
func (s *Service) Find(ctx context.Context, ref string) (User, error) {
	if strings.Contains(ref, "@") {
		email, err := NormalizeEmail(ref)
		if err != nil {
			return User{}, err
		}
		return s.users.UserByEmail(ctx, email)
	}
	return s.users.User(ctx, ref)
}

// List returns every user by id.
func (s *Service) List(ctx context.Context) ([]User, error) { return s.users.ListUsers(ctx) }

// Update is a change to a user; nil fields stay as they are.
type Update struct {
	Name   *string
	Email  *string
	Roles  *[]string
	Groups *[]string
	Status *string
}

// Update applies u to the user id. A change of roles, groups, email or
// status is a privilege change: the user's sessions end (they sign in
// again and get a new session). Errors as Add's.
func (s *Service) Update(ctx context.Context, id string, up Update, m Meta) (User, error) {
	u, err := s.users.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	privileged := false
	if up.Name != nil {
		if err := checkName(*up.Name); err != nil {
			return User{}, err
		}
		u.Name = *up.Name
	}
	if up.Email != nil {
		e, err := NormalizeEmail(*up.Email)
		if err != nil {
			return User{}, err
		}
		privileged = privileged || e != u.Email
		u.Email = e
	}
	if up.Roles != nil {
		if err := checkNames("role", *up.Roles); err != nil {
			return User{}, err
		}
		privileged = true
		u.Roles = dedupe(*up.Roles)
	}
	if up.Groups != nil {
		if err := checkNames("group", *up.Groups); err != nil {
			return User{}, err
		}
		privileged = true
		u.Groups = dedupe(*up.Groups)
	}
	if up.Status != nil {
		if *up.Status != StatusActive && *up.Status != StatusDisabled {
			return User{}, fmt.Errorf("%w: status must be %s or %s", ErrInvalid, StatusActive, StatusDisabled)
		}
		privileged = privileged || *up.Status != u.Status
		u.Status = *up.Status
	}
	u.UpdatedAt = s.now().UTC()
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return User{}, err
	}
	s.event(ctx, EventUserChanged, u.ID, OutcomeSuccess, "", m)
	if privileged {
		if _, err := s.EndSessions(ctx, u.ID, ""); err != nil {
			return u, err
		}
	}
	return u, nil
}

// SetPassword checks and stores a new password for the user and ends
// every session of theirs (an administrator's reset or the user's own
// change).
func (s *Service) SetPassword(ctx context.Context, id, password string, m Meta) error {
	u, err := s.users.User(ctx, id)
	if err != nil {
		return err
	}
	if err := CheckPassword(ctx, s.cfg.Passwords, s.breached, password, u.Email, u.Name); err != nil {
		return err
	}
	hash, err := Hash(password, s.cfg.Argon2)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	u.PasswordHash, u.PasswordChangedAt, u.UpdatedAt = hash, now, now
	if err := s.users.UpdateUser(ctx, u); err != nil {
		return err
	}
	s.event(ctx, EventPasswordChanged, u.ID, OutcomeSuccess, "", m)
	_, err = s.EndSessions(ctx, u.ID, "")
	return err
}
