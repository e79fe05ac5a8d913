package pdp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/engine"
)

// The input hash of a signed decision (claim input_sha256) is the SHA-256,
// in lowercase hex, of the canonical JSON of the evaluated input:
//
//	{"action":{"name":…,"properties":{…}},
//	 "context":{…},
//	 "resource":{"id":…,"properties":{…},"type":…},
//	 "subject":{"id":…,"properties":{…},"type":…}}
//
// written as RFC 8785 (JSON Canonicalization Scheme) writes it: no
// whitespace, members sorted by their names' UTF-16 code units, strings
// with only the escapes JCS makes, numbers as ECMAScript writes a double,
// except that an integer is written exactly in decimal (JCS would round
// one beyond 2^53 to a double). Absent properties and context are {}, as
// the engine sees them; the token's claims and the time are not part of
// it. docs/api.md ("Signed decisions") has a worked example.

// InputHash is the input_sha256 of in: the lowercase hex SHA-256 of its
// canonical JSON (see above). It never fails: an input holds JSON values
// only (a value of any other Go type is written as its %#v, which no JSON
// document can produce).
func InputHash(in *engine.Input) string {
	sum := sha256.Sum256(CanonicalInput(in))
	return hex.EncodeToString(sum[:])
}

// CanonicalInput is the canonical JSON of in whose SHA-256 is InputHash.
func CanonicalInput(in *engine.Input) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"action":{"name":`...)
	b = jcsString(b, in.Action.Name)
	b = append(b, `,"properties":`...)
	b = jcsObject(b, in.Action.Properties)
	b = append(b, `},"context":`...)
	b = jcsObject(b, in.Context)
	b = append(b, `,"resource":`...)
	b = jcsEntity(b, in.Resource)
	b = append(b, `,"subject":`...)
	b = jcsEntity(b, in.Subject)
	return append(b, '}')
}

func jcsEntity(b []byte, e engine.Entity) []byte {
	b = append(b, `{"id":`...)
	b = jcsString(b, e.ID)
	b = append(b, `,"properties":`...)
	b = jcsObject(b, e.Properties)
	b = append(b, `,"type":`...)
	b = jcsString(b, e.Type)
	return append(b, '}')
}

// jcsObject writes m, {} when nil.
func jcsObject(b []byte, m map[string]any) []byte {
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jcsString(b, k)
		b = append(b, ':')
		b = jcsValue(b, m[k])
	}
	return append(b, '}')
}

func jcsValue(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, t)
	case string:
		return jcsString(b, t)
	case int64:
		return strconv.AppendInt(b, t, 10)
	case int:
		return strconv.AppendInt(b, int64(t), 10)
	case float64:
		return jcsNumber(b, t)
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = jcsValue(b, e)
		}
		return append(b, ']')
	case map[string]any:
		if t == nil {
			return append(b, "null"...)
		}
		return jcsObject(b, t)
	default:
		// Only JSON-shaped values reach here; anything else is written so
		// that it can never stand for a JSON value.
		return jcsString(b, fmt.Sprintf("\x00%T %#v", t, t))
	}
}

// jcsNumber writes f as ECMAScript's Number.prototype.toString does (RFC
// 8785 §3.2.2.3): the shortest digits that read back as f, in plain
// notation from 1e-6 up to 1e21 and in exponent notation (1e+21, 1e-7)
// outside. JSON has no NaN or infinity; they are written as null.
func jcsNumber(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return append(b, "null"...)
	case f == 0:
		return append(b, '0') // -0 too
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	if f >= 1e-6 && f < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go writes e+07 and e-07 where ECMAScript writes e+7 and e-7.
	mant, exp, _ := strings.Cut(s, "e")
	sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
	b = append(b, mant...)
	b = append(b, 'e')
	b = append(b, sign...)
	return append(b, digits...)
}

// jcsString writes s as RFC 8785 §3.2.2.2 does: " and \ escaped, the
// control characters as \b \t \n \f \r or \u00xx (lowercase hex), every
// other character as it is (input strings are valid UTF-8: I-JSON).
func jcsString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20:
			b = append(b, c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(b, '"')
}

// compareUTF16 orders member names by their UTF-16 code units, as RFC 8785
// §3.2.3 sorts them. It differs from Go's byte order only where a
// character above U+FFFF meets one from U+E000 to U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return slices.Compare(utf16.Encode([]rune{ra}), utf16.Encode([]rune{rb}))
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}
