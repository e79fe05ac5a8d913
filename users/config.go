package users

import (
	"errors"
	"fmt"
	"time"
)

// Argon2 is the cost of the Argon2id password hash (RFC 9106). Raising it
// rehashes each password at its next successful sign-in.
type Argon2 struct {
	// MemoryKiB is the memory per hash in KiB (default 65536: 64 MiB, the
	// RFC 9106 second recommendation).
	MemoryKiB uint32 `yaml:"memory_kib"`
	// Time is the number of passes (default 2).
	Time uint32 `yaml:"time"`
	// Parallelism is the number of lanes (default 2).
	Parallelism uint8 `yaml:"parallelism"`
}

// Passwords says which passwords are accepted.
type Passwords struct {
	// MinLength is the fewest characters (default 12).
	MinLength int `yaml:"min_length"`
	// MinScore is the lowest zxcvbn score, 0 to 4 (default 3: "safely
	// unguessable").
	MinScore int `yaml:"min_score"`
	// BreachedFile, when set, names a file of breached passwords, one per
	// line: plain text, or upper-case SHA-1 hex as Have I Been Pwned
	// publishes it (a ":count" suffix is ignored). A password on it is
	// refused.
	BreachedFile string `yaml:"breached_file"`
}

// Lockout throttles failed sign-ins, per account and per client address.
type Lockout struct {
	// Threshold is how many failures of one account lock it (default 5).
	Threshold int `yaml:"threshold"`
	// IPThreshold is how many failures from one address lock that address
	// out (default 20).
	IPThreshold int `yaml:"ip_threshold"`
	// Base is the first lockout (default 30s); each further failure while
	// over the threshold doubles it, up to Max (default 1h).
	Base time.Duration `yaml:"base"`
	Max  time.Duration `yaml:"max"`
	// Window is how long failures are remembered after the last one
	// (default 15m).
	Window time.Duration `yaml:"window"`
}

// Sessions bounds sign-in sessions.
type Sessions struct {
	// Idle ends a session unused this long (default 30m).
	Idle time.Duration `yaml:"idle"`
	// Absolute ends any session this long after sign-in (default 12h).
	Absolute time.Duration `yaml:"absolute"`
	// MFAPending bounds the step between password and second factor
	// (default 5m).
	MFAPending time.Duration `yaml:"mfa_pending"`
}

// Config configures users, sign-in and what is kept about people.
type Config struct {
	Argon2    Argon2    `yaml:"argon2"`
	Passwords Passwords `yaml:"passwords"`
	Lockout   Lockout   `yaml:"lockout"`
	Sessions  Sessions  `yaml:"sessions"`
	// MFAIssuer is the name authenticator apps show (default "Verdict").
	MFAIssuer string `yaml:"mfa_issuer"`
	// AuditRetention is how long audit events are kept (default 90 days,
	// 2160h); the janitor deletes older ones.
	AuditRetention time.Duration `yaml:"audit_retention"`
}

// Default returns the defaults documented on each field.
func Default() Config {
	return Config{
		Argon2:         Argon2{MemoryKiB: 64 * 1024, Time: 2, Parallelism: 2},
		Passwords:      Passwords{MinLength: 12, MinScore: 3},
		Lockout:        Lockout{Threshold: 5, IPThreshold: 20, Base: 30 * time.Second, Max: time.Hour, Window: 15 * time.Minute},
		Sessions:       Sessions{Idle: 30 * time.Minute, Absolute: 12 * time.Hour, MFAPending: 5 * time.Minute},
		MFAIssuer:      "Verdict",
		AuditRetention: 90 * 24 * time.Hour,
	}
}

// Validate reports every problem, joined, each naming its key under
// "users.".
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("users."+format, a...)) }
	if c.Argon2.MemoryKiB < 8*1024 {
		bad("argon2.memory_kib must be at least 8192 (8 MiB), got %d", c.Argon2.MemoryKiB)
	}
	if c.Argon2.Time < 1 {
		bad("argon2.time must be at least 1, got %d", c.Argon2.Time)
	}
	if c.Argon2.Parallelism < 1 {
		bad("argon2.parallelism must be at least 1, got %d", c.Argon2.Parallelism)
	}
	if c.Passwords.MinLength < 8 || c.Passwords.MinLength > 128 {
		bad("passwords.min_length must be between 8 and 128, got %d", c.Passwords.MinLength)
	}
	if c.Passwords.MinScore < 0 || c.Passwords.MinScore > 4 {
		bad("passwords.min_score must be between 0 and 4, got %d", c.Passwords.MinScore)
	}
	if c.Lockout.Threshold < 1 {
		bad("lockout.threshold must be at least 1, got %d", c.Lockout.Threshold)
	}
	if c.Lockout.IPThreshold < c.Lockout.Threshold {
		bad("lockout.ip_threshold must be at least lockout.threshold (%d), got %d", c.Lockout.Threshold, c.Lockout.IPThreshold)
	}
	if c.Lockout.Base <= 0 || c.Lockout.Max < c.Lockout.Base {
		bad("lockout.base must be positive and lockout.max at least lockout.base, got %s and %s", c.Lockout.Base, c.Lockout.Max)
	}
	if c.Lockout.Window <= 0 {
		bad("lockout.window must be positive, got %s", c.Lockout.Window)
	}
	if c.Sessions.Idle <= 0 || c.Sessions.Absolute < c.Sessions.Idle {
		bad("sessions.idle must be positive and sessions.absolute at least sessions.idle, got %s and %s", c.Sessions.Idle, c.Sessions.Absolute)
	}
	if c.Sessions.MFAPending <= 0 {
		bad("sessions.mfa_pending must be positive, got %s", c.Sessions.MFAPending)
	}
	if c.MFAIssuer == "" {
		bad("mfa_issuer must not be empty")
	}
	if c.AuditRetention < time.Hour {
		bad("audit_retention must be at least 1h, got %s", c.AuditRetention)
	}
	return errors.Join(errs...)
}
