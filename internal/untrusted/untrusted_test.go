package untrusted

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"kid-1", `"kid-1"`},
		{"a\"b\nc", `"a\"b\nc"`},
		{strings.Repeat("x", MaxLen), `"` + strings.Repeat("x", MaxLen) + `"`},
		{strings.Repeat("y", MaxLen+1), `"` + strings.Repeat("y", MaxLen) + `..."`},
	}
	for _, c := range cases {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
