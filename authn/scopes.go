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

	// ScopeNamespace prefixes Verdict's own scopes.
	ScopeNamespace = "verdict:"
)

// KnownScopes lists Verdict's own scopes, in the order documents list them.
func KnownScopes() []string {
	return []string{ScopeDecide, ScopeBundlesRead, ScopeBundlesWrite, ScopeAdmin}
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
