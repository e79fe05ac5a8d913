package authn

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Claims are the claims of a verified token, as JSON decodes them: objects
// are map[string]any, arrays []any, strings string, booleans bool, and
// numbers int64 when written as an integer that fits, float64 otherwise
// (so exp, iat and nbf are normally int64). Claims returned by Verify may
// be shared with other callers (they come from a cache): do not modify
// them. A nil Claims has no claims.
type Claims map[string]any

// Issuer returns iss, or "" if absent.
func (c Claims) Issuer() string { s, _ := c["iss"].(string); return s }

// Subject returns sub, or "" if absent.
func (c Claims) Subject() string { s, _ := c["sub"].(string); return s }

// JTI returns jti, or "" if absent.
func (c Claims) JTI() string { s, _ := c["jti"].(string); return s }

// Audience returns aud as a list (a single string becomes one element);
// nil if absent. Non-string members are skipped.
func (c Claims) Audience() []string { return stringList(c["aud"], false) }

// Scopes returns the scopes from "scope" (space-separated string, RFC
// 9068) or, if absent, "scp" (array of strings, or a space-separated
// string); nil if neither. The slice is new on each call.
func (c Claims) Scopes() []string {
	if v, ok := c["scope"]; ok {
		return stringList(v, true)
	}
	return stringList(c["scp"], true)
}

// Expiry returns exp as a time; the zero time if absent (never for a
// verified token).
func (c Claims) Expiry() time.Time {
	t, ok, valid := c.NumericDate("exp")
	if !ok || !valid {
		return time.Time{}
	}
	return t
}

// stringList turns a string (split on spaces if split) or an array of
// strings into a list.
func stringList(v any, split bool) []string {
	switch v := v.(type) {
	case string:
		if split {
			return strings.Fields(v)
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// NumericDate reads the RFC 7519 NumericDate claim name. present reports
// whether the claim exists, valid whether it is a number in 0..year 9999.
func (c Claims) NumericDate(name string) (t time.Time, present, valid bool) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, false, false
	}
	switch n := v.(type) {
	case int64:
		if n < 0 || n > maxNumericDate {
			return time.Time{}, true, false
		}
		return time.Unix(n, 0), true, true
	case float64:
		if math.IsNaN(n) || n < 0 || n > maxNumericDate {
			return time.Time{}, true, false
		}
		sec, frac := math.Modf(n)
		return time.Unix(int64(sec), int64(frac*1e9)), true, true
	}
	return time.Time{}, true, false
}

// CheckTimes is the one check of a JWT's time claims, for access tokens
// and client assertions alike (RFC 7519 §4.1.4–4.1.6): exp present, a
// valid, non-zero NumericDate and not passed; nbf and iat, when present,
// valid and not in the future; each comparison with skew of leeway. what
// names the token in the message ("token", "assertion"). It returns exp
// and iat (zero when absent), or the problem, which the caller wraps in its
// own kind of error.
func (c Claims) CheckTimes(now time.Time, skew time.Duration, what string) (exp, iat time.Time, problem string) {
	exp, present, valid := c.NumericDate("exp")
	switch {
	case !present:
		return exp, iat, "exp claim missing"
	case !valid:
		return exp, iat, "exp claim is not a valid NumericDate"
	case exp.Unix() == 0 && exp.Nanosecond() == 0:
		return exp, iat, "exp claim is zero"
	case !now.Before(exp.Add(skew)):
		return exp, iat, what + " expired"
	}
	for _, name := range []string{"nbf", "iat"} {
		t, present, valid := c.NumericDate(name)
		if !present {
			continue
		}
		if !valid {
			return exp, iat, fmt.Sprintf("%s claim is not a valid NumericDate", name)
		}
		if t.After(now.Add(skew)) {
			return exp, iat, fmt.Sprintf("%s claim is in the future", name)
		}
		if name == "iat" {
			iat = t
		}
	}
	return exp, iat, ""
}
