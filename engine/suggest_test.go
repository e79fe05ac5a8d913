package engine

import (
	"strings"
	"testing"
)

func TestClosest(t *testing.T) {
	known := []string{"id", "description", "effect", "actions", "resources", "condition"}
	for name, want := range map[string]string{
		"conditon": "condition", "descripton": "description", "Effect": "effect", "action": "actions",
		"ID": "id", "resoruces": "resources", "owner": "", "x": "", "condition": "",
		strings.Repeat("a", 1<<20): "",
	} {
		if got, ok := Closest(name, known); got != want || ok != (want != "") {
			t.Errorf("Closest(%.20q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if got, _ := Closest("nwo", []string{"name", "input", "expect", "now"}); got != "now" {
		t.Errorf("a swap of two letters is one edit: got %q", got)
	}
}
