package engine

import (
	"strings"
	"testing"
)

func TestParseInputNamesUnknownMembers(t *testing.T) {
	act := map[string]any{"name": "read"}
	res := map[string]any{"type": "doc", "id": "1"}
	long := strings.Repeat("u", 100)
	for _, tc := range []struct {
		doc  map[string]any
		want string
	}{
		{map[string]any{"user": map[string]any{"type": "user", "id": "a"}, "action": act, "resource": res},
			`input.subject: is required; unknown member "input.user" (did you mean "input.subject"?)`},
		{map[string]any{long: map[string]any{}, "action": act, "resource": res},
			`input.subject: is required; unknown member "input.` + strings.Repeat("u", 64) + `…" (did you mean "input.subject"?)`},
		{map[string]any{"subject": map[string]any{"type": "user", "id": "a"}, "action": map[string]any{"nmae": "read"}, "resource": res},
			`input.action.name: is required; unknown member "input.action.nmae" (did you mean "input.action.name"?)`},
		{map[string]any{"expect": false, "action": act, "resource": res},
			`input.subject: is required; unknown member "input.expect"`},
		{map[string]any{"subject": map[string]any{"type": "user", "id": 1}, "action": act, "resource": res, "x": 1},
			`input.subject.id: must be a string, got a number`},
	} {
		_, err := ParseInput(tc.doc, "input.")
		if err == nil || err.Error() != tc.want {
			t.Errorf("got  %v\nwant %s", err, tc.want)
		}
	}
}
