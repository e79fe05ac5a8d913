package apikeys

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every key: "vk_" (Verdict key). A key is
// Prefix + id + "_" + secret + checksum, all lower-case base32:
//
//	vk_<16: id, 80 bits>_<52: secret, 256 bits><7: CRC-32 of everything before>
//
// A secret scanner matches it with `vk_[a-z2-7]{16}_[a-z2-7]{59}`.
const Prefix = "vk_"

const (
	idBytes     = 10 // 16 base32 characters
	secretBytes = 32 // 52 base32 characters
	idLen       = 16
	secretLen   = 52
	sumLen      = 7
	// KeyLen is the length of every key.
	KeyLen = len(Prefix) + idLen + 1 + secretLen + sumLen
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrMalformed means the text is not a key: wrong prefix, length or
// alphabet, or a checksum that does not match (a typo, or a made-up key).
// Nothing was looked up.
var ErrMalformed = errors.New("not an API key (malformed, or its checksum does not match)")

func encode(b []byte) string { return strings.ToLower(b32.EncodeToString(b)) }

func checksum(body string) string {
	var b [4]byte
	sum := crc32.ChecksumIEEE([]byte(body))
	b[0], b[1], b[2], b[3] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
	return encode(b[:])
}

// newKey returns a new key's id and its full text.
func newKey() (id, key string) {
	idRaw := make([]byte, idBytes)
	secret := make([]byte, secretBytes)
	_, _ = rand.Read(idRaw) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(secret)
	id = encode(idRaw)
	return id, withSecret(id, encode(secret))
}

// withSecret is the key of id with a new secret text.
func withSecret(id, secret string) string {
	body := Prefix + id + "_" + secret
	return body + checksum(body)
}

// newSecretKey returns a new key text for an existing id.
func newSecretKey(id string) string {
	secret := make([]byte, secretBytes)
	_, _ = rand.Read(secret)
	return withSecret(id, encode(secret))
}

// Parse checks a key's form and checksum and returns its id; the secret
// is the whole key (what is HMACed). ErrMalformed for anything else.
func Parse(key string) (id string, err error) {
	if len(key) != KeyLen || !strings.HasPrefix(key, Prefix) || key[len(Prefix)+idLen] != '_' {
		return "", ErrMalformed
	}
	for i := len(Prefix); i < len(key); i++ {
		c := key[i]
		if i == len(Prefix)+idLen {
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", ErrMalformed
		}
	}
	body, sum := key[:len(key)-sumLen], key[len(key)-sumLen:]
	if checksum(body) != sum {
		return "", ErrMalformed
	}
	// A copy: the id outlives the call (a cache and the use counts are
	// keyed by it), and key may be a view of a reused request buffer.
	return strings.Clone(key[len(Prefix) : len(Prefix)+idLen]), nil
}

// Looks reports whether s has the shape of a key (for telling an API key
// from a JWT in an Authorization header), without checking the checksum.
func Looks(s string) bool { return strings.HasPrefix(s, Prefix) }

// ParseDuration reads an expiry or overlap: Go's durations ("720h",
// "30m") and whole days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days (like 90d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration (like 90d, 720h or 30m)", s)
	}
	return v, nil
}
