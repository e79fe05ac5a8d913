package rego

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/verdictpdp/verdict/engine"
)

var _ engine.Evaluator = (*Policy)(nil)

// Policy is the prepared query on a bundle's entrypoint. It is immutable after
// Compile and safe for concurrent use; the zero value is not usable (its
// Evaluate reports an error, which denies).
type Policy struct {
	name          string
	entrypoint    string
	query         oparego.PreparedEvalQuery
	timeout       time.Duration
	timeDependent bool
	// rules are the rules of the entrypoint's package, for test coverage.
	rules []ruleRef
	// plans holds what query plans need (plan.go).
	plans planner
}

// Name returns "rego:" followed by the entrypoint, e.g.
// "rego:data.verdict.decision". It cannot fail.
func (p *Policy) Name() string { return p.name }

// Entrypoint returns the entrypoint in its normalized "data.verdict.decision"
// form. It cannot fail.
func (p *Policy) Entrypoint() string { return p.entrypoint }

// TimeDependent reports whether the policy may read the evaluation time
// (input.now, time.now_ns, io.jwt.decode_verify's expiry check) or call
// another nondeterministic built-in, so that its decisions must not be
// cached. It is computed once by Compile and errs on the side of true.
func (p *Policy) TimeDependent() bool { return p.timeDependent }

// Evaluate decides for in within the earlier of ctx's deadline and
// Limits.Timeout. An undefined entrypoint (ErrUndefined), a value of the wrong
// shape, a built-in or conflict error, a passed deadline or a cancelled ctx
// (ErrTimeout) is reported in Outcome.Err, wrapped with the policy's name;
// Evaluate never panics. time.now_ns() returns in.Now, so that it agrees with
// input.now.
func (p *Policy) Evaluate(ctx context.Context, in *engine.Input, explain bool) engine.Outcome {
	return p.evaluate(ctx, in, explain, nil)
}

// evaluate is Evaluate with an optional query tracer (test coverage only:
// tracing slows evaluation down).
func (p *Policy) evaluate(ctx context.Context, in *engine.Input, explain bool, tracer topdown.QueryTracer) (out engine.Outcome) {
	out.Policy = p.name
	defer func() {
		if r := recover(); r != nil {
			out = p.fail(fmt.Errorf("rego: evaluation panicked: %v", r), explain)
		}
	}()
	if in == nil {
		return p.fail(errors.New("rego: nil input"), explain)
	}
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return p.fail(timeoutErr(err), explain)
	}

	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	input, err := inputValue(in, now)
	if err != nil {
		return p.fail(fmt.Errorf("rego: input: %w", err), explain)
	}

	// Cancel through context.AfterFunc rather than letting OPA start a
	// goroutine per evaluation to watch ctx.
	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()

	opts := []oparego.EvalOption{
		oparego.EvalParsedInput(input),
		oparego.EvalTime(now),
		oparego.EvalExternalCancel(c),
	}
	if tracer != nil {
		opts = append(opts, oparego.EvalQueryTracer(tracer))
	}
	rs, err := p.query.Eval(ctx, opts...)
	if err != nil {
		if isCancel(err) || ctx.Err() != nil {
			cause := ctx.Err()
			if cause == nil {
				cause = err
			}
			return p.fail(timeoutErr(cause), explain)
		}
		return p.fail(err, explain)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return p.fail(engine.ErrUndefined, explain)
	}
	effect, rules, err := p.interpret(rs[0].Expressions[0].Value)
	if err != nil {
		return p.fail(err, explain)
	}
	out.Effect, out.Rules = effect, rules
	if explain {
		out.Trace = make([]engine.RuleTrace, len(rules))
		for i, r := range rules {
			out.Trace[i] = engine.RuleTrace{Policy: p.name, Rule: r, Effect: effect.String(), Matched: true}
		}
	}
	return out
}

// fail builds the outcome of a failed evaluation; the snapshot denies on it.
func (p *Policy) fail(err error, explain bool) engine.Outcome {
	out := engine.Outcome{Policy: p.name, Effect: engine.Deny, Err: engine.ModuleError(p.name, err)}
	if explain {
		out.Trace = []engine.RuleTrace{{
			Policy: p.name,
			Rule:   p.entrypoint,
			Effect: engine.Deny.String(),
			Error:  out.Err.Error(),
		}}
	}
	return out
}

// interpret reads the entrypoint's value: true or false, or
// {"decision": bool, "reasons": [string]}.
func (p *Policy) interpret(v any) (engine.Effect, []string, error) {
	switch v := v.(type) {
	case bool:
		return effectOf(v), []string{p.entrypoint}, nil
	case map[string]any:
		d, ok := v["decision"]
		if !ok {
			return 0, nil, fmt.Errorf("rego: %s has no \"decision\" field", p.entrypoint)
		}
		decision, ok := d.(bool)
		if !ok {
			return 0, nil, fmt.Errorf("rego: %s.decision must be a boolean, got %s", p.entrypoint, typeName(d))
		}
		rules := []string{p.entrypoint}
		if r, ok := v["reasons"]; ok {
			list, ok := r.([]any)
			if !ok {
				return 0, nil, fmt.Errorf("rego: %s.reasons must be a list of strings, got %s", p.entrypoint, typeName(r))
			}
			if len(list) > 0 {
				rules = make([]string, len(list))
				for i, x := range list {
					s, ok := x.(string)
					if !ok {
						return 0, nil, fmt.Errorf("rego: %s.reasons[%d] must be a string, got %s", p.entrypoint, i, typeName(x))
					}
					rules[i] = s
				}
			}
		}
		return effectOf(decision), rules, nil
	default:
		return 0, nil, fmt.Errorf("rego: entrypoint must be a boolean or {decision, reasons}, %s is %s", p.entrypoint, typeName(v))
	}
}

func effectOf(allow bool) engine.Effect {
	if allow {
		return engine.Allow
	}
	return engine.Deny
}

// typeName names the JSON type of a result value for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}

// inputValue builds the input document as an AST value, once per
// evaluation: the document every consumer of engine.Input sees (Doc), built
// straight into terms rather than through Doc's maps
// (TestInputValueIsTheDoc holds the two equal).
func inputValue(in *engine.Input, now time.Time) (ast.Value, error) {
	subject, err := entityValue(in.Subject.Type, in.Subject.ID, in.Subject.Properties)
	if err != nil {
		return nil, err
	}
	resource, err := entityValue(in.Resource.Type, in.Resource.ID, in.Resource.Properties)
	if err != nil {
		return nil, err
	}
	action, err := objectValue(in.Action.Properties)
	if err != nil {
		return nil, err
	}
	ctx, err := objectValue(in.Context)
	if err != nil {
		return nil, err
	}
	token := ast.NullTerm()
	if in.Token != nil {
		v, err := ast.InterfaceToValue(in.Token)
		if err != nil {
			return nil, err
		}
		token = ast.NewTerm(v)
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("subject"), ast.NewTerm(subject)),
		ast.Item(ast.InternedTerm("action"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("name"), ast.StringTerm(in.Action.Name)),
			ast.Item(ast.InternedTerm("properties"), ast.NewTerm(action)))),
		ast.Item(ast.InternedTerm("resource"), ast.NewTerm(resource)),
		ast.Item(ast.InternedTerm("context"), ast.NewTerm(ctx)),
		ast.Item(ast.InternedTerm("token"), token),
		ast.Item(ast.InternedTerm("now"), ast.StringTerm(now.UTC().Format(time.RFC3339Nano))),
	), nil
}

// entityValue is engine.EntityDoc as an AST object.
func entityValue(typ, id string, props map[string]any) (ast.Value, error) {
	p, err := objectValue(props)
	if err != nil {
		return nil, err
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("type"), ast.StringTerm(typ)),
		ast.Item(ast.InternedTerm("id"), ast.StringTerm(id)),
		ast.Item(ast.InternedTerm("properties"), ast.NewTerm(p)),
	), nil
}

// objectValue is a JSON object as an AST object; nil is the empty object.
func objectValue(m map[string]any) (ast.Value, error) {
	if m == nil {
		return ast.NewObject(), nil
	}
	return ast.InterfaceToValue(m)
}

// isCancel reports whether err is OPA's report of a cancelled evaluation.
func isCancel(err error) bool {
	var te *topdown.Error
	return errors.As(err, &te) && te.Code == topdown.CancelErr
}

// timeoutErr wraps cause so that errors.Is finds both ErrTimeout and cause.
func timeoutErr(cause error) error {
	return fmt.Errorf("%w: %w", engine.ErrTimeout, cause)
}
