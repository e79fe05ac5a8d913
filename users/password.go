package users

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // SHA-1 is the format of the breached-password lists, not a protection.
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/crypto/argon2"
)

// ErrWeakPassword is wrapped by every refusal of a new password; the
// message says what to change and never repeats the password.
var ErrWeakPassword = errors.New("password refused")

const (
	saltLen = 16
	keyLen  = 32
	// maxPasswordBytes bounds what is hashed: Argon2 would take any length,
	// and a megabyte "password" is only a way to burn CPU.
	maxPasswordBytes = 1024
)

// Hash returns the Argon2id hash of password with the given cost, in the
// PHC string format ($argon2id$v=19$m=..,t=..,p=..$salt$hash).
func Hash(password string, p Argon2) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("users: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Parallelism, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a decoded PHC string.
type phc struct {
	params    Argon2
	salt, key []byte
}

func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return phc{}, errors.New("users: not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return phc{}, errors.New("users: unsupported argon2 version")
	}
	var h phc
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.params.MemoryKiB, &h.params.Time, &h.params.Parallelism); err != nil {
		return phc{}, fmt.Errorf("users: argon2 parameters: %w", err)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return phc{}, fmt.Errorf("users: argon2 salt: %w", err)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) == 0 {
		return phc{}, errors.New("users: argon2 hash is malformed")
	}
	if h.params.MemoryKiB == 0 || h.params.Time == 0 || h.params.Parallelism == 0 {
		return phc{}, errors.New("users: argon2 parameters are zero")
	}
	return h, nil
}

// Verify reports whether password matches the PHC hash encoded, in time
// that does not depend on where they differ; false for a malformed hash.
func Verify(password, encoded string) bool {
	h, err := parsePHC(encoded)
	if err != nil || len(password) > maxPasswordBytes {
		return false
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.MemoryKiB, h.params.Parallelism, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// NeedsRehash reports whether encoded was made with a lower cost than p in
// any parameter (or cannot be read).
func NeedsRehash(encoded string, p Argon2) bool {
	h, err := parsePHC(encoded)
	if err != nil {
		return true
	}
	return h.params.MemoryKiB < p.MemoryKiB || h.params.Time < p.Time || h.params.Parallelism < p.Parallelism
}

// Breached tells whether a password is known to have leaked. An error
// means the answer is unknown, and the password is refused.
type Breached interface {
	Breached(ctx context.Context, password string) (bool, error)
}

// BreachedList is a Breached over a list loaded in memory: plain
// passwords and upper-case SHA-1 hashes of passwords.
type BreachedList struct {
	plain map[string]struct{}
	sha1  map[[sha1.Size]byte]struct{}
}

var _ Breached = (*BreachedList)(nil)

// LoadBreached reads the file at path, one entry per line: a 40-digit
// SHA-1 hex (any case, a ":count" suffix ignored, as Have I Been Pwned
// publishes it) or a plain password. Blank lines and lines starting with
// "#" are skipped. A read error names the file and line.
func LoadBreached(path string) (*BreachedList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users.passwords.breached_file: %w", err)
	}
	defer f.Close()
	l := &BreachedList{plain: map[string]struct{}{}, sha1: map[[sha1.Size]byte]struct{}{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		hexPart, _, _ := strings.Cut(s, ":")
		if len(hexPart) == 2*sha1.Size {
			if raw, err := hex.DecodeString(hexPart); err == nil {
				l.sha1[[sha1.Size]byte(raw)] = struct{}{}
				continue
			}
		}
		l.plain[s] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users.passwords.breached_file %s: %w", path, err)
	}
	return l, nil
}

// Breached reports whether the password is on the list.
func (l *BreachedList) Breached(_ context.Context, password string) (bool, error) {
	if _, ok := l.plain[password]; ok {
		return true, nil
	}
	_, ok := l.sha1[sha1.Sum([]byte(password))] //nolint:gosec // list format
	return ok, nil
}

// Len is how many entries the list holds.
func (l *BreachedList) Len() int { return len(l.plain) + len(l.sha1) }

// CheckPassword refuses a password that is too short or long, too easy to
// guess (zxcvbn, with the person's email and name as known words), or
// breached; the error wraps ErrWeakPassword and says why.
func CheckPassword(ctx context.Context, rules Passwords, breached Breached, password string, personal ...string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid UTF-8", ErrWeakPassword)
	case n < rules.MinLength:
		return fmt.Errorf("%w: use at least %d characters (this one has %d)", ErrWeakPassword, rules.MinLength, n)
	case len(password) > maxPasswordBytes:
		return fmt.Errorf("%w: use at most %d bytes", ErrWeakPassword, maxPasswordBytes)
	}
	if r := zxcvbn.PasswordStrength(password, personal); r.Score < rules.MinScore {
		return fmt.Errorf("%w: too easy to guess (strength %d of 4, %d needed); use a longer phrase of unrelated words", ErrWeakPassword, r.Score, rules.MinScore)
	}
	if breached != nil {
		hit, err := breached.Breached(ctx, password)
		if err != nil {
			return fmt.Errorf("users: breached-password check: %w", err)
		}
		if hit {
			return fmt.Errorf("%w: this password appears in a list of leaked passwords; choose another", ErrWeakPassword)
		}
	}
	return nil
}
