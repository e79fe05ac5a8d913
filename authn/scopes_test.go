package authn

import (
	"strings"
	"testing"
)

// TestScopeHierarchy: verdict:admin grants every scope of Verdict's,
// verdict:bundles:write grants reading them, nothing grants upwards, and
// scopes outside Verdict's namespace grant only themselves.
func TestScopeHierarchy(t *testing.T) {
	for _, c := range []struct {
		granted []string
		need    string
		want    bool
	}{
		{[]string{ScopeAdmin}, ScopeDecide, true},
		{[]string{ScopeAdmin}, ScopeBundlesRead, true},
		{[]string{ScopeAdmin}, ScopeSCIM, true},
		{[]string{ScopeBundlesWrite}, ScopeBundlesRead, true},
		{[]string{ScopeBundlesWrite}, ScopeDecide, false},
		{[]string{ScopeBundlesRead}, ScopeBundlesWrite, false},
		{[]string{ScopeDecide}, ScopeAdmin, false},
		{[]string{ScopeSCIM}, ScopeAdmin, false},
		{[]string{"read", "write"}, "read", true},
		{[]string{"admin"}, ScopeAdmin, false},
		{nil, ScopeDecide, false},
	} {
		if got := HasScope(c.granted, c.need); got != c.want {
			t.Errorf("%v grants %s: %v, want %v", c.granted, c.need, got, c.want)
		}
	}
	if got := strings.Join(Implied(ScopeAdmin), " "); got != "verdict:decide verdict:bundles:read verdict:bundles:write verdict:scim" {
		t.Fatalf("admin implies %q", got)
	}
	if len(Implied(ScopeDecide)) != 0 {
		t.Fatal("decide implies something")
	}
}
