package cel

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"gopkg.in/yaml.v3"

	"github.com/verdictpdp/verdict/engine"
)

// Check ids of the CEL lint checks.
const (
	CheckDuplicateID       = "duplicate-id"
	CheckEmptyList         = "empty-list"
	CheckUnreachableRule   = "unreachable-rule"
	CheckShadowedRule      = "shadowed-rule"
	CheckConstantFalse     = "constant-false"
	CheckConstantTrue      = "constant-true"
	CheckIncompatibleTypes = "incompatible-types"
)

// lintRule is what the checks need to know of one rule.
type lintRule struct {
	*rule
	// cond is the condition as CEL prints it back (so that spacing and
	// quoting do not matter), "" when the rule has none.
	cond               string
	always, never      bool // the condition folds to true / false
	actions, resources map[string]bool
}

// Lint reports the rules of the policy file at path that can never decide
// and the conditions whose value is known before any request comes: a rule
// after one that always matches under first-applicable, an empty actions or
// resources list (which matches everything, not nothing), a duplicate id, a
// rule that repeats an earlier one, a condition that is always false or
// always true after CEL's constant folding (with the variables it uses
// inlined), and an equality between types that can never be equal. A file
// that does not parse or type-check gives no findings for what is broken:
// Compile reports that. Lint never fails otherwise.
func (c *Compiler) Lint(path string, src []byte) []engine.Finding {
	f, _ := parseFile(path, src)
	if f == nil {
		return nil
	}
	lines := splitLines(src)
	var out []engine.Finding
	var id string // the rule being checked
	add := func(line, col int, sev engine.Severity, check, format string, args ...any) {
		out = append(out, engine.Finding{File: path, Rule: id, Line: line, Col: col, Severity: sev, Check: check, Message: fmt.Sprintf(format, args...)})
	}
	env, inline := c.env, []*cel.InlineVariable(nil)
	if f.Variables.Kind == yaml.MappingNode {
		cont := f.Variables.Content
		for i := 0; i+1 < len(cont); i += 2 {
			name, node := cont[i].Value, cont[i+1]
			typ := cel.DynType
			if a, iss := env.Compile(node.Value); iss.Err() == nil {
				typ = a.OutputType()
				// Later variables may use earlier ones: inline them first.
				inline = append([]*cel.InlineVariable{cel.NewInlineVariable(varNamespace+name, a)}, inline...)
			}
			var err error
			if env, err = env.Extend(cel.Variable(varNamespace+name, typ)); err != nil {
				return out
			}
		}
	}
	folder, err := cel.NewConstantFoldingOptimizer()
	if err != nil {
		return out
	}
	opt, err := cel.NewStaticOptimizer(cel.NewInliningOptimizer(inline...), folder)
	if err != nil {
		return out
	}

	rules := make([]lintRule, len(f.Rules))
	firstID := map[string]int{}
	for i := range f.Rules {
		r := &f.Rules[i]
		id = r.ID
		lr := lintRule{rule: r, actions: set(r.Actions), resources: set(r.Resources), always: true}
		rules[i] = lr
		if line, dup := firstID[r.ID]; dup && r.ID != "" {
			add(r.line, r.col, engine.Error, CheckDuplicateID, "rule id %q is used twice (first at line %d): reasons could not tell the rules apart", r.ID, line)
		} else {
			firstID[r.ID] = r.line
		}
		if r.Actions != nil && len(r.Actions) == 0 {
			add(r.line, r.col, engine.Error, CheckEmptyList, "rule %q: actions: [] matches every action, not none; list the actions, or remove the key to mean any", r.ID)
		}
		if r.Resources != nil && len(r.Resources) == 0 {
			add(r.line, r.col, engine.Error, CheckEmptyList, "rule %q: resources: [] matches every resource type, not none; list the types, or remove the key to mean any", r.ID)
		}
		if r.Condition.Kind != yaml.ScalarNode || strings.TrimSpace(r.Condition.Value) == "" {
			continue
		}
		checked, iss := env.Compile(r.Condition.Value)
		if iss.Err() != nil {
			rules[i].always = false
			rules[i].cond = "\x00invalid" + r.Condition.Value
			continue // Compile reports it
		}
		rules[i].cond, _ = cel.AstToString(checked)
		for _, m := range mismatches(checked) {
			line, col := position(&r.Condition, lines, m.line, m.col)
			if m.op == operators.Equals {
				add(line, col, engine.Error, CheckIncompatibleTypes, "rule %q: %s and %s are never equal, so this comparison is always false", r.ID, m.left, m.right)
			} else {
				add(line, col, engine.Warning, CheckIncompatibleTypes, "rule %q: %s and %s are never equal, so this comparison is always true", r.ID, m.left, m.right)
			}
		}
		rules[i].always = false
		folded, iss := opt.Optimize(env, checked)
		if iss.Err() != nil {
			continue
		}
		if e := folded.NativeRep().Expr(); e.Kind() == celast.LiteralKind {
			if b, ok := e.AsLiteral().(types.Bool); ok {
				if b {
					rules[i].always = true
					add(r.Condition.Line, r.Condition.Column, engine.Warning, CheckConstantTrue, "rule %q: the condition is always true; remove it (a rule without a condition always matches)", r.ID)
				} else {
					rules[i].never = true
					add(r.Condition.Line, r.Condition.Column, engine.Error, CheckConstantFalse, "rule %q: the condition is always false, so the rule never matches", r.ID)
				}
			}
		}
	}
	for i := range rules {
		out = append(out, reachability(f.Combining, rules, i)...)
	}
	for i := range out {
		if out[i].File == "" {
			out[i].File = path
		}
	}
	return out
}

// reachability reports whether rule i can ever decide given the rules above
// it: under first-applicable, not after a rule that always matches every
// request it applies to; under any combining, not as a copy of an earlier
// rule.
func reachability(combining string, rules []lintRule, i int) []engine.Finding {
	r := rules[i]
	at := func(sev engine.Severity, check, format string, args ...any) []engine.Finding {
		return []engine.Finding{{Rule: r.ID, Line: r.line, Col: r.col, Severity: sev, Check: check, Message: fmt.Sprintf(format, args...)}}
	}
	for j := range i {
		e := rules[j]
		if combining == FirstApplicable && e.always && covers(e.actions, r.actions) && covers(e.resources, r.resources) {
			return at(engine.Error, CheckUnreachableRule, "rule %q is never reached: rule %q (line %d) above it matches every request it applies to, and combining is first-applicable", r.ID, e.ID, e.line)
		}
		if e.cond != r.cond || !sameSet(e.actions, r.actions) || !sameSet(e.resources, r.resources) {
			continue
		}
		switch {
		case combining == FirstApplicable:
			return at(engine.Error, CheckUnreachableRule, "rule %q is never reached: rule %q (line %d) above it has the same actions, resources and condition, and combining is first-applicable", r.ID, e.ID, e.line)
		case e.Effect == r.Effect:
			return at(engine.Warning, CheckShadowedRule, "rule %q repeats rule %q (line %d): same effect, actions, resources and condition, so it never changes a decision", r.ID, e.ID, e.line)
		case combining == DenyOverrides && r.Effect == "allow":
			return at(engine.Warning, CheckShadowedRule, "rule %q never allows: deny rule %q (line %d) matches exactly the same requests, and combining is deny-overrides", r.ID, e.ID, e.line)
		case combining == PermitOverrides && r.Effect == "deny":
			return at(engine.Warning, CheckShadowedRule, "rule %q never denies: allow rule %q (line %d) matches exactly the same requests, and combining is permit-overrides", r.ID, e.ID, e.line)
		}
	}
	return nil
}

// covers reports whether the scope a (nil: any) includes all of b.
func covers(a, b map[string]bool) bool {
	if a == nil {
		return true
	}
	if b == nil {
		return false
	}
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

func sameSet(a, b map[string]bool) bool { return covers(a, b) && covers(b, a) }

// mismatch is an equality between operands whose types the checker knows
// and that can never be equal.
type mismatch struct {
	op          string
	left, right string
	line, col   int
}

// mismatches finds the == and != of a checked expression whose operands
// have known, different types (timestamp and null, say): the checker lets
// some through, and they never compare equal. Numbers are left out, as
// cross-type numeric comparisons are on.
func mismatches(a *cel.Ast) []mismatch {
	native := a.NativeRep()
	var out []mismatch
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		if fn := call.FunctionName(); (fn != operators.Equals && fn != operators.NotEquals) || len(call.Args()) != 2 {
			return
		}
		l, r := native.GetType(call.Args()[0].ID()), native.GetType(call.Args()[1].ID())
		if !known(l) || !known(r) || l.Kind() == r.Kind() || (numeric(l) && numeric(r)) {
			return
		}
		loc := native.SourceInfo().GetStartLocation(e.ID())
		out = append(out, mismatch{op: call.FunctionName(), left: checker.FormatCELType(l), right: checker.FormatCELType(r), line: loc.Line(), col: loc.Column()})
	}))
	return out
}

func known(t *types.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind, types.ErrorKind, types.UnspecifiedKind:
		return false
	}
	return true
}

func numeric(t *types.Type) bool {
	switch t.Kind() {
	case types.IntKind, types.UintKind, types.DoubleKind:
		return true
	}
	return false
}
