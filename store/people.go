package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// User is a person who signs in. Only a password hash is kept (a PHC
// string such as "$argon2id$v=19$m=65536,t=3,p=2$salt$hash"), and of the
// MFA recovery codes only their hashes.
type User struct {
	ID string `json:"id"`
	// Email is normalised (lower-cased, trimmed) and unique in a
	// namespace.
	Email        string   `json:"email"`
	Name         string   `json:"name,omitempty"`
	PasswordHash string   `json:"password_hash,omitempty"`
	Status       string   `json:"status"`
	Roles        []string `json:"roles,omitempty"`
	Groups       []string `json:"groups,omitempty"`
	// TOTPSecret is the base32 RFC 6238 secret once enrolment completed;
	// TOTPPending holds a secret offered and not yet confirmed.
	TOTPSecret  string `json:"totp_secret,omitempty"`
	TOTPPending string `json:"totp_pending,omitempty"`
	// TOTPLastStep is the last time step accepted, so that a code is
	// accepted once.
	TOTPLastStep int64 `json:"totp_last_step,omitempty"`
	// RecoveryHashes are SHA-256 hashes of the unused recovery codes.
	RecoveryHashes    [][]byte  `json:"recovery_hashes,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"`
	LastSignInAt      time.Time `json:"last_sign_in_at,omitzero"`
}

// Users stores people. Email is an index: no two users of a namespace
// have the same one.
type Users interface {
	// CreateUser adds u; ErrConflict if the id or the email is taken.
	CreateUser(ctx context.Context, ns string, u User) error
	// UpdateUser replaces an existing user; ErrNotFound if none,
	// ErrConflict if the new email belongs to another user.
	UpdateUser(ctx context.Context, ns string, u User) error
	// User returns one user; ErrNotFound if none.
	User(ctx context.Context, ns, id string) (User, error)
	// UserByEmail returns the user with that (normalised) email;
	// ErrNotFound if none.
	UserByEmail(ctx context.Context, ns, email string) (User, error)
	// ListUsers lists every user by id.
	ListUsers(ctx context.Context, ns string) ([]User, error)
	// DeleteUser removes a user and its email index entry; ErrNotFound if
	// none.
	DeleteUser(ctx context.Context, ns, id string) error
	// AddUserFamily records a refresh-token family issued to a user
	// (replacing the record of the same family).
	AddUserFamily(ctx context.Context, ns, userID string, f UserFamily) error
	// UserFamilies lists the user's families that have not expired, by
	// family id.
	UserFamilies(ctx context.Context, ns, userID string) ([]UserFamily, error)
	// DeleteUserFamilies forgets every family record of a user.
	DeleteUserFamilies(ctx context.Context, ns, userID string) error
}

// UserFamily is a refresh-token family issued to a user: through which
// session, and until when it can be used.
type UserFamily struct {
	Family    string    `json:"family"`
	SessionID string    `json:"session_id,omitempty"`
	ClientID  string    `json:"client_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is a signed-in browser. Its ID is a hash of the cookie's value,
// so that the store never holds what the cookie carries.
type Session struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	// AuthTime is when the user last proved who they are; AMR how
	// ("pwd", "otp").
	AuthTime time.Time `json:"auth_time"`
	AMR      []string  `json:"amr,omitempty"`
	// MFAPending is true between the password and the second factor: such
	// a session signs nobody in.
	MFAPending bool      `json:"mfa_pending,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	// ExpiresAt is the absolute end; the idle end is LastSeenAt plus the
	// idle timeout, checked by the reader.
	ExpiresAt time.Time `json:"expires_at"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// Sessions stores sign-in sessions.
type Sessions interface {
	// PutSession inserts or replaces a session (an error without ID,
	// UserID or ExpiresAt).
	PutSession(ctx context.Context, ns string, s Session) error
	// Session returns one session; ErrNotFound if none or if it is past
	// its ExpiresAt.
	Session(ctx context.Context, ns, id string) (Session, error)
	// UserSessions lists a user's live sessions, oldest first
	// (SortSessions).
	UserSessions(ctx context.Context, ns, userID string) ([]Session, error)
	// DeleteSession removes a session and returns it; ErrNotFound if none.
	DeleteSession(ctx context.Context, ns, id string) (Session, error)
}

// Consent is what a user allowed a client.
type Consent struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
}

// Consents stores consents, one per (user, client).
type Consents interface {
	// PutConsent inserts or replaces the consent of (c.UserID, c.ClientID).
	PutConsent(ctx context.Context, ns string, c Consent) error
	// Consent returns one; ErrNotFound if none.
	Consent(ctx context.Context, ns, userID, clientID string) (Consent, error)
	// UserConsents lists a user's consents by client id.
	UserConsents(ctx context.Context, ns, userID string) ([]Consent, error)
	// DeleteUserConsents removes every consent of a user.
	DeleteUserConsents(ctx context.Context, ns, userID string) error
}

// AuthCode is an authorization code (RFC 6749 §4.1) as stored: under a
// hash of the code, with what it was bound to.
type AuthCode struct {
	Hash                string    `json:"hash"`
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri"`
	CodeChallenge       string    `json:"code_challenge"`
	CodeChallengeMethod string    `json:"code_challenge_method"`
	UserID              string    `json:"user_id"`
	SessionID           string    `json:"session_id,omitempty"`
	Scopes              []string  `json:"scopes"`
	Nonce               string    `json:"nonce,omitempty"`
	AuthTime            time.Time `json:"auth_time"`
	AMR                 []string  `json:"amr,omitempty"`
	ExpiresAt           time.Time `json:"expires_at"`
	// Redeemed is set by RedeemCode together with what the redemption
	// produced (the refresh family and the access token's id), so that a
	// replay can revoke them.
	Redeemed  bool   `json:"redeemed,omitempty"`
	Family    string `json:"family,omitempty"`
	AccessJTI string `json:"access_jti,omitempty"`
}

// AuthCodes stores authorization codes until they expire.
type AuthCodes interface {
	// CreateCode stores c; ErrConflict if the hash exists, an error
	// without Hash or ExpiresAt.
	CreateCode(ctx context.Context, ns string, c AuthCode) error
	// RedeemCode marks the code redeemed with family and accessJTI,
	// atomically, and returns it with first true; a code already redeemed
	// comes back as stored (with what its first redemption recorded) and
	// first false. ErrNotFound if there is no such code or it expired.
	RedeemCode(ctx context.Context, ns, hash, family, accessJTI string) (c AuthCode, first bool, err error)
}

// LoginAttempts is the failed sign-ins counted under one key (an account
// or an address) and the lockout they caused.
type LoginAttempts struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// ExpiresAt is when the record is forgotten.
	ExpiresAt time.Time `json:"expires_at"`
}

// Attempts counts failed sign-ins.
type Attempts interface {
	// AddFailure adds one failure to key, atomically, makes the record
	// live until expires (or longer, if it already was), and returns the
	// count after it. A record past its ExpiresAt counts from zero, without
	// its lockout.
	AddFailure(ctx context.Context, ns, key string, expires time.Time) (int, error)
	// LockUntil sets key's lockout end, making the record live at least
	// until then; ErrNotFound if key has no live record.
	LockUntil(ctx context.Context, ns, key string, until time.Time) error
	// Attempts returns key's record, the zero record if none or expired.
	Attempts(ctx context.Context, ns, key string) (LoginAttempts, error)
	// ClearAttempts forgets key.
	ClearAttempts(ctx context.Context, ns, key string) error
}

// AuditEvent is one security-relevant event kept for a person's export
// (sign-in, lockout, MFA enrolment, password change, ...).
type AuditEvent struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	UserID string    `json:"user_id,omitempty"`
	// Outcome is "success" or "failure"; Detail what a reader needs (never
	// a secret).
	Outcome string `json:"outcome,omitempty"`
	Detail  string `json:"detail,omitempty"`
	IP      string `json:"ip,omitempty"`
}

// Audit keeps audit events for a retention period.
type Audit interface {
	// AppendAudit stores e (an error without ID or Time).
	AppendAudit(ctx context.Context, ns string, e AuditEvent) error
	// UserAudit lists a user's events, oldest first (by Time, then ID).
	UserAudit(ctx context.Context, ns, userID string) ([]AuditEvent, error)
	// PseudonymizeAudit replaces userID by pseudonym in every event of the
	// user and clears their IP, returning how many events it changed.
	PseudonymizeAudit(ctx context.Context, ns, userID, pseudonym string) (int, error)
	// PruneAudit deletes the events of every namespace older than before
	// (an event at before stays) and returns how many it deleted.
	PruneAudit(ctx context.Context, before time.Time) (int, error)
}

// People is everything stored about people who sign in.
type People interface {
	Users
	Sessions
	Consents
	AuthCodes
	Attempts
	Audit
}

// User statuses.
const (
	UserActive   = "active"
	UserDisabled = "disabled"
)

// Kinds of change announced for people.
const (
	// ChangeUser: a user was added, changed or removed (ID is its id).
	ChangeUser = "user"
	// ChangeSession: a session ended (ID is its id).
	ChangeSession = "session"
)

// SortSessions orders sessions oldest first (by CreatedAt, then ID).
func SortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
