package rego

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/verdictpdp/verdict/engine"
)

// ruleRef is one rule (or else branch) of the entrypoint's package.
type ruleRef struct {
	info engine.RuleInfo
	key  ruleKey
}

// ruleKey identifies a rule by where it stands: the compiler keeps the
// locations of the rules it rewrites, so the rules a trace reports match
// the parsed ones by position.
type ruleKey struct {
	file     string
	row, col int
}

func keyOf(loc *ast.Location) (ruleKey, bool) {
	if loc == nil || loc.File == "" {
		return ruleKey{}, false
	}
	return ruleKey{loc.File, loc.Row, loc.Col}, true
}

// entrypointRules lists, in file and line order, the rules of the modules
// whose package holds the entrypoint (its package path is a prefix of it):
// every rule and function, each else branch on its own, but no default
// rule, which applies exactly when the others do not.
func entrypointRules(modules map[string]*ast.Module, entry ast.Ref) []ruleRef {
	var out []ruleRef
	for _, m := range modules {
		if m == nil || m.Package == nil || !entry.HasPrefix(m.Package.Path) {
			continue
		}
		for _, r := range m.Rules {
			if r.Default {
				continue
			}
			name := ruleName(r)
			for i, branch := 0, r; branch != nil; i, branch = i+1, branch.Else {
				k, ok := keyOf(branch.Location)
				if !ok {
					continue
				}
				n := name
				if i > 0 {
					n += " (else)"
				}
				out = append(out, ruleRef{
					info: engine.RuleInfo{Policy: "rego:" + entry.String(), Rule: n, File: k.file, Line: k.row, Col: k.col},
					key:  k,
				})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].key, out[j].key
		if a.file != b.file {
			return a.file < b.file
		}
		if a.row != b.row {
			return a.row < b.row
		}
		return a.col < b.col
	})
	return out
}

// ruleName is how a rule is named in coverage reports: its ref, the key of
// a multi-value rule ("allows contains \"owner\""), or a function with one _
// per argument ("cleared_for(_)": the compiler renames the arguments).
func ruleName(r *ast.Rule) string {
	h := r.Head
	name := h.Ref().String()
	switch {
	case len(h.Args) > 0:
		name += "(" + strings.TrimSuffix(strings.Repeat("_, ", len(h.Args)), ", ") + ")"
	case h.RuleKind() == ast.MultiValue && h.Key != nil:
		name += " contains " + h.Key.String()
	}
	return name
}

// Rules lists the rules of the entrypoint's package (each else branch on
// its own, default rules left out), in file and line order. It never fails.
func (p *Policy) Rules() []engine.RuleInfo {
	out := make([]engine.RuleInfo, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.info
	}
	return out
}

// EvaluateCovered is Evaluate (without explain) that also reports which of
// Rules() evaluated to true for in: their body succeeded at least once. It
// traces the evaluation with an OPA query tracer, which is slow: it is meant
// for bundle tests and lint, never for serving.
func (p *Policy) EvaluateCovered(ctx context.Context, in *engine.Input) (engine.Outcome, []engine.RuleInfo) {
	t := &exitTracer{hits: map[ruleKey]bool{}}
	out := p.evaluate(ctx, in, false, t)
	var hit []engine.RuleInfo
	for _, r := range p.rules {
		if t.hit(r.key) {
			hit = append(hit, r.info)
		}
	}
	return out, hit
}

// exitTracer records the rules whose evaluation exited successfully. Unlike
// OPA's cover package, which marks lines, it keeps rule positions, so that a
// one-line rule whose body was evaluated but failed does not count as hit.
type exitTracer struct {
	mu   sync.Mutex
	hits map[ruleKey]bool
}

var _ topdown.QueryTracer = (*exitTracer)(nil)

func (*exitTracer) Enabled() bool { return true }

func (*exitTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (t *exitTracer) TraceEvent(e topdown.Event) {
	if e.Op != topdown.ExitOp {
		return
	}
	r, ok := e.Node.(*ast.Rule)
	if !ok {
		return
	}
	if k, ok := keyOf(r.Location); ok {
		t.mu.Lock()
		t.hits[k] = true
		t.mu.Unlock()
	}
}

func (t *exitTracer) hit(k ruleKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hits[k]
}
