// Package untrusted words values that came from outside (a token's kid or
// typ, a client id, an algorithm name) for an error message or a log line:
// quoted, so that control characters and quotes cannot forge a line, and
// truncated, so that a hostile value cannot flood a log.
package untrusted

import "strconv"

// MaxLen is how many bytes of a value Quote keeps.
const MaxLen = 64

// Quote returns s as a Go-quoted string, cut to MaxLen bytes with "..."
// appended when it was longer.
func Quote(s string) string {
	if len(s) > MaxLen {
		s = s[:MaxLen] + "..."
	}
	return strconv.Quote(s)
}
