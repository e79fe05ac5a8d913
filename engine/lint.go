package engine

import (
	"encoding/json"
	"fmt"
)

// Severity ranks a lint finding.
type Severity int

const (
	// Warning is a finding that does not fail a lint run unless asked
	// (verdict bundle lint --strict).
	Warning Severity = iota
	// Error is a finding that fails a lint run: the policy is wrong or
	// cannot be loaded.
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Finding is one problem a linter found in a policy source, located at
// File:Line:Col (1-based; 0 when unknown). Check is the stable id of the
// check that produced it, such as "unreachable-rule"; Rule, when not empty,
// is the id of the rule it is about.
type Finding struct {
	File     string   `json:"file"`
	Rule     string   `json:"rule,omitempty"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Message  string   `json:"message"`
}

// String formats the finding as "file:line:col: severity: message [check]",
// leaving out the parts of the position that are unknown.
func (f Finding) String() string {
	return fmt.Sprintf("%s%s: %s [%s]", located(f.File, f.Line, f.Col), f.Severity, f.Message, f.Check)
}

// RuleInfo locates one rule of a policy module, for test coverage and lint.
// Rule is the rule's id in a CEL file, or its head in Rego
// ("allows contains \"owner\"", "decision").
type RuleInfo struct {
	Policy string `json:"policy"`
	Rule   string `json:"rule"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Col    int    `json:"col"`
}
