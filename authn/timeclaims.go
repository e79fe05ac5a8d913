package authn

import (
	"fmt"
	"time"
)

// checkTimes is the one check of a JWT's time claims, for access tokens
// and client assertions alike (RFC 7519 §4.1.4–4.1.6): exp present, a
// valid, non-zero NumericDate and not passed; nbf and iat, when present,
// valid and not in the future; each comparison with skew of leeway. what
// names the token in the message ("token", "assertion"). It returns exp
// and iat (zero when absent), or the problem, which the caller wraps in its
// own kind of error.
func checkTimes(c Claims, now time.Time, skew time.Duration, what string) (exp, iat time.Time, problem string) {
	exp, present, valid := numericDate(c, "exp")
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
		t, present, valid := numericDate(c, name)
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
