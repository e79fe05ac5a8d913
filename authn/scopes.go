package authn

import (
	"fmt"
	"strings"
)

// Scopes of Verdict's own routes. Every scope in the "verdict:" namespace
// is one of these; scopes outside it are the deployment's own (policies
// read them from a token's claims) and are not Verdict's to judge.
const (
	ScopeDecide       = "verdict:decide"
	ScopeBundlesRead  = "verdict:bundles:read"
	ScopeBundlesWrite = "verdict:bundles:write"
	ScopeAdmin        = "verdict:admin"
	// ScopeSCIM is the SCIM 2.0 provisioning routes' scope.
	ScopeSCIM = "verdict:scim"

	// ScopeNamespace prefixes Verdict's own scopes.
	ScopeNamespace = "verdict:"
)

// KnownScopes lists Verdict's own scopes, in the order documents list them.
func KnownScopes() []string {
	return []string{ScopeDecide, ScopeBundlesRead, ScopeBundlesWrite, ScopeSCIM, ScopeAdmin}
}

// implies is the scope hierarchy: a scope grants itself and what it
// implies, transitively. verdict:admin is total power over Verdict (it
// can register a client with any scope anyway), so it implies every other
// scope of Verdict's; verdict:bundles:write implies reading them.
var implies = map[string][]string{
	ScopeAdmin:        {ScopeBundlesWrite, ScopeDecide, ScopeSCIM},
	ScopeBundlesWrite: {ScopeBundlesRead},
}

// Implied returns the scopes s grants besides itself (transitively), in
// the order documents list them; none for a scope that implies nothing.
func Implied(s string) []string {
	var out []string
	for _, k := range KnownScopes() {
		if k != s && grants(s, k) {
			out = append(out, k)
		}
	}
	return out
}

// grants reports whether holding scope has grants need.
func grants(has, need string) bool {
	if has == need {
		return true
	}
	for _, next := range implies[has] {
		if grants(next, need) {
			return true
		}
	}
	return false
}

// HasScope reports whether the granted scopes (a token's or an API key's)
// grant need, directly or through the hierarchy. It is the one place
// routes check scopes.
func HasScope(granted []string, need string) bool {
	for _, g := range granted {
		if grants(g, need) {
			return true
		}
	}
	return false
}

// CheckScope refuses a scope in Verdict's namespace that none of its
// routes knows (a typo would otherwise grant nothing, silently), naming
// the known ones. Any other scope passes.
func CheckScope(s string) error {
	if !strings.HasPrefix(s, ScopeNamespace) {
		return nil
	}
	for _, k := range KnownScopes() {
		if s == k {
			return nil
		}
	}
	return fmt.Errorf("scope %q is not one of Verdict's (%s); scopes outside %q are free to use",
		s, strings.Join(KnownScopes(), ", "), ScopeNamespace)
}
