package apikeys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/authn"
)

// Errors callers branch on.
var (
	// ErrNotFound: no key has that id.
	ErrNotFound = errors.New("no such API key")
	// ErrExists: the id is taken (a collision of 80 random bits: retry).
	ErrExists = errors.New("API key id exists")
	// ErrInvalid wraps every refusal of a key a caller presents: unknown
	// id, wrong secret, revoked, expired. It never says which.
	ErrInvalid = errors.New("invalid API key")
	// ErrSpec wraps a refused creation (a bad name, scope or expiry).
	ErrSpec = errors.New("invalid API key request")
)

// Key is an API key as stored (package store's APIKey, field for field).
type Key struct {
	ID         string
	Name       string
	SecretHMAC []byte
	PrevHMAC   []byte
	PrevUntil  time.Time
	Scopes     []string
	ClientID   string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time
	RevokedAt  time.Time
	RotatedAt  time.Time
}

// Use is how often and when a key was last used.
type Use struct {
	Count      int64
	LastUsedAt time.Time
}

// Store keeps keys and their use (see package store's APIKeys; the wiring
// maps its not-found and conflict errors to ErrNotFound and ErrExists).
type Store interface {
	CreateAPIKey(ctx context.Context, k Key) error
	UpdateAPIKey(ctx context.Context, k Key) error
	APIKey(ctx context.Context, id string) (Key, error)
	ListAPIKeys(ctx context.Context) ([]Key, error)
	AddAPIKeyUse(ctx context.Context, id string, n int64, last time.Time) error
	APIKeyUse(ctx context.Context, id string) (Use, error)
}

// Revocations are the revoked ids every replica mirrors (the access-token
// revocation store): a revoked key's id is recorded there as RevokedID.
type Revocations interface {
	Revoke(ctx context.Context, jti string, exp time.Time) error
	Revoked(ctx context.Context, jti string) (bool, error)
}

// RevokedID is the id a revoked key is recorded under among revoked
// token ids.
func RevokedID(id string) string { return "apikey:" + id }

// Config tunes the keys. The zero value of a field means its default.
type Config struct {
	// CacheTTL bounds how long a replica trusts a key record it read
	// (default 30s); revocation does not wait for it (the revocation
	// mirror is checked on every use).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// RotationOverlap is how long the old secret keeps working after a
	// rotation unless the rotation says otherwise (default 24h).
	RotationOverlap time.Duration `yaml:"rotation_overlap"`
	// MaxLifetime bounds the expiry a key may be created with (default
	// 0: keys may be created without an expiry).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

func (c Config) withDefaults() Config {
	if c.CacheTTL <= 0 {
		c.CacheTTL = 30 * time.Second
	}
	if c.RotationOverlap <= 0 {
		c.RotationOverlap = 24 * time.Hour
	}
	return c
}

// Validate reports every problem, joined.
func (c Config) Validate() error {
	var errs []error
	if c.CacheTTL < 0 || c.CacheTTL > 5*time.Minute {
		errs = append(errs, fmt.Errorf("apikeys.cache_ttl must be between 0s (default) and 5m, got %s", c.CacheTTL))
	}
	if c.RotationOverlap < 0 {
		errs = append(errs, fmt.Errorf("apikeys.rotation_overlap must not be negative, got %s", c.RotationOverlap))
	}
	if c.MaxLifetime < 0 {
		errs = append(errs, fmt.Errorf("apikeys.max_lifetime must not be negative, got %s", c.MaxLifetime))
	}
	return errors.Join(errs...)
}

// Service creates, lists, rotates and revokes keys, and verifies the keys
// callers present. It is safe for concurrent use.
type Service struct {
	cfg    Config
	st     Store
	rev    Revocations
	pepper []byte
	log    *slog.Logger
	now    func() time.Time

	mu    sync.RWMutex
	cache map[string]cached
	uses  map[string]*pending
}

type cached struct {
	k    Key
	seen time.Time
}

type pending struct {
	n    int64
	last time.Time
}

// New returns a Service. pepper (at least 32 bytes) is the server's, the
// same client secrets are HMACed with; rev is the revocation store whose
// mirror every replica keeps. log nil discards; now nil is time.Now.
func New(cfg Config, st Store, rev Revocations, pepper []byte, log *slog.Logger, now func() time.Time) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || rev == nil || len(pepper) < 32 {
		return nil, errors.New("apikeys: a store, a revocation store and a 32-byte pepper are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{cfg: cfg.withDefaults(), st: st, rev: rev, pepper: slices.Clone(pepper), log: log, now: now,
		cache: map[string]cached{}, uses: map[string]*pending{}}, nil
}

func (s *Service) mac(key string) []byte {
	h := hmac.New(sha256.New, s.pepper)
	h.Write([]byte(key))
	return h.Sum(nil)
}

func (s *Service) clock() time.Time { return s.now().UTC().Round(0) }

// Spec is what a new key is made with.
type Spec struct {
	Name   string
	Scopes []string
	// ExpiresIn, when positive, makes the key expire that long from now.
	ExpiresIn time.Duration
	// ClientID, when set, is the OAuth client the key acts as.
	ClientID string
	// CreatedBy names who made it (an admin client, "cli").
	CreatedBy string
}

// Validate reports every problem with sp, joined, each wrapping ErrSpec.
func (sp Spec) validate(maxLife time.Duration) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrSpec}, a...)...))
	}
	if sp.Name == "" || utf8.RuneCountInString(sp.Name) > 100 || strings.ContainsAny(sp.Name, "\r\n\x00") {
		bad("name is required: 1 to 100 characters on one line")
	}
	if len(sp.Scopes) == 0 {
		bad("at least one scope is required")
	}
	for _, sc := range sp.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
			bad("scope %q is not a scope-token", sc)
		} else if err := authn.CheckScope(sc); err != nil {
			bad("%v", err)
		}
	}
	if sp.ExpiresIn < 0 {
		bad("expiry must be in the future")
	}
	if maxLife > 0 && (sp.ExpiresIn == 0 || sp.ExpiresIn > maxLife) {
		bad("keys must expire within %s (apikeys.max_lifetime)", maxLife)
	}
	return errors.Join(errs...)
}

// Create makes a key and returns its record and its text, shown this once
// (only an HMAC of it is kept).
func (s *Service) Create(ctx context.Context, sp Spec) (Key, string, error) {
	if err := sp.validate(s.cfg.MaxLifetime); err != nil {
		return Key{}, "", err
	}
	id, text := newKey()
	now := s.clock()
	k := Key{ID: id, Name: sp.Name, SecretHMAC: s.mac(text), Scopes: dedupe(sp.Scopes), ClientID: sp.ClientID,
		CreatedAt: now, CreatedBy: sp.CreatedBy}
	if sp.ExpiresIn > 0 {
		k.ExpiresAt = now.Add(sp.ExpiresIn)
	}
	if err := s.st.CreateAPIKey(ctx, k); err != nil {
		return Key{}, "", fmt.Errorf("apikeys: create: %w", err)
	}
	return k, text, nil
}

func dedupe(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Info is what listings show of a key: never a secret or its HMAC.
type Info struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Scopes     []string  `json:"scopes"`
	ClientID   string    `json:"client_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	RotatedAt  time.Time `json:"rotated_at,omitzero"`
	PrevUntil  time.Time `json:"previous_secret_until,omitzero"`
	State      string    `json:"state"`
	UseCount   int64     `json:"use_count"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// States of a key in listings.
const (
	StateActive  = "active"
	StateExpired = "expired"
	StateRevoked = "revoked"
)

func (s *Service) info(ctx context.Context, k Key) (Info, error) {
	u, err := s.st.APIKeyUse(ctx, k.ID)
	if err != nil {
		return Info{}, err
	}
	s.mu.RLock()
	if p := s.uses[k.ID]; p != nil {
		u.Count += p.n
		if p.last.After(u.LastUsedAt) {
			u.LastUsedAt = p.last
		}
	}
	s.mu.RUnlock()
	in := Info{ID: k.ID, Name: k.Name, Scopes: slices.Clone(k.Scopes), ClientID: k.ClientID, CreatedAt: k.CreatedAt,
		CreatedBy: k.CreatedBy, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, RotatedAt: k.RotatedAt,
		State: StateActive, UseCount: u.Count, LastUsedAt: u.LastUsedAt}
	if s.now().Before(k.PrevUntil) {
		in.PrevUntil = k.PrevUntil
	}
	switch {
	case !k.RevokedAt.IsZero():
		in.State = StateRevoked
	case !k.ExpiresAt.IsZero() && !s.now().Before(k.ExpiresAt):
		in.State = StateExpired
	}
	return in, nil
}

// List describes every key, by id, with its use.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	ks, err := s.st.ListAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ks))
	for _, k := range ks {
		in, err := s.info(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// Get describes one key; ErrNotFound if none.
func (s *Service) Get(ctx context.Context, id string) (Info, error) {
	k, err := s.st.APIKey(ctx, id)
	if err != nil {
		return Info{}, err
	}
	return s.info(ctx, k)
}

// Rotate gives key id a new secret and returns its text (shown once); the
// old secret keeps working for overlap (zero: apikeys.rotation_overlap;
// negative: not at all). A revoked key cannot be rotated (ErrInvalid).
func (s *Service) Rotate(ctx context.Context, id string, overlap time.Duration) (Key, string, error) {
	k, err := s.st.APIKey(ctx, id)
	if err != nil {
		return Key{}, "", err
	}
	if !k.RevokedAt.IsZero() {
		return Key{}, "", fmt.Errorf("%w: the key is revoked; create a new one", ErrInvalid)
	}
	if overlap == 0 {
		overlap = s.cfg.RotationOverlap
	}
	text := newSecretKey(id)
	now := s.clock()
	k.PrevHMAC, k.PrevUntil = k.SecretHMAC, time.Time{}
	if overlap > 0 {
		k.PrevUntil = now.Add(overlap)
	} else {
		k.PrevHMAC = nil
	}
	k.SecretHMAC, k.RotatedAt = s.mac(text), now
	if err := s.st.UpdateAPIKey(ctx, k); err != nil {
		return Key{}, "", fmt.Errorf("apikeys: rotate: %w", err)
	}
	s.forget(id)
	return k, text, nil
}

// Revoke ends key id at once on this replica and, through the revocation
// mirror, on every replica within its poll interval. Revoking twice is
// not an error.
func (s *Service) Revoke(ctx context.Context, id string) error {
	k, err := s.st.APIKey(ctx, id)
	if err != nil {
		return err
	}
	now := s.clock()
	if k.RevokedAt.IsZero() {
		k.RevokedAt = now
		if err := s.st.UpdateAPIKey(ctx, k); err != nil {
			return fmt.Errorf("apikeys: revoke: %w", err)
		}
	}
	// Recorded among revoked ids until the key would have expired on its
	// own (a key without expiry: for ten years).
	until := k.ExpiresAt
	if until.IsZero() || until.Before(now) {
		until = now.AddDate(10, 0, 0)
	}
	if err := s.rev.Revoke(ctx, RevokedID(id), until); err != nil {
		return fmt.Errorf("apikeys: revoke: %w", err)
	}
	s.forget(id)
	return nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// Forget drops every cached key record (a replica's repair after missed
// announcements).
func (s *Service) Forget() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}
