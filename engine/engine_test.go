package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fixed is an Evaluator with a fixed outcome, for combining tests.
type fixed struct {
	name   string
	effect Effect
	rules  []string
	err    error
	td     bool
	block  bool // wait for the deadline
	calls  *int
}

func (f fixed) Name() string        { return f.name }
func (f fixed) TimeDependent() bool { return f.td }
func (f fixed) Evaluate(ctx context.Context, _ *Input, explain bool) Outcome {
	if f.calls != nil {
		*f.calls++
	}
	if f.block {
		<-ctx.Done()
		return Outcome{Policy: f.name, Err: ModuleError(f.name, ErrTimeout)}
	}
	o := Outcome{Policy: f.name, Effect: f.effect, Rules: f.rules, Err: f.err}
	if explain {
		o.Trace = []RuleTrace{{Policy: f.name, Rule: strings.Join(f.rules, "+"), Effect: f.effect.String(), Matched: f.effect != NotApplicable}}
	}
	return o
}

func TestDenyOverridesAcrossModules(t *testing.T) {
	allow := fixed{name: "a", effect: Allow, rules: []string{"r-allow"}}
	deny := fixed{name: "d", effect: Deny, rules: []string{"r-deny"}}
	na := fixed{name: "n", effect: NotApplicable}
	broken := fixed{name: "b", err: errors.New("boom")}
	cases := []struct {
		name    string
		mods    []Evaluator
		allow   bool
		reasons string
	}{
		{"allow alone", []Evaluator{allow}, true, "r-allow"},
		{"deny wins over allow", []Evaluator{allow, deny}, false, "r-deny"},
		{"deny wins in any order", []Evaluator{deny, allow}, false, "r-deny"},
		{"nothing applicable", []Evaluator{na}, false, ReasonNoMatch},
		{"allow with a not-applicable", []Evaluator{na, allow}, true, "r-allow"},
		{"error denies despite allow", []Evaluator{allow, broken}, false, ReasonError},
		{"two allows", []Evaluator{allow, fixed{name: "a2", effect: Allow, rules: []string{"x"}}}, true, "r-allow,x"},
		{"the same allow rule id twice", []Evaluator{allow, fixed{name: "a2", effect: Allow, rules: []string{"x", "r-allow"}}}, true, "r-allow,x"},
		{"the same deny rule id twice", []Evaluator{deny, allow, deny, fixed{name: "d2", effect: Deny, rules: []string{"r-deny", "y"}}}, false, "r-deny,y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(tc.mods, SnapshotOptions{Revision: "r1"})
			d := s.Decide(context.Background(), &Input{}, false)
			if d.Allow != tc.allow || strings.Join(d.Reasons, ",") != tc.reasons {
				t.Fatalf("got %v %v, want %v %s", d.Allow, d.Reasons, tc.allow, tc.reasons)
			}
			if d.Revision != "r1" {
				t.Fatalf("revision %q", d.Revision)
			}
		})
	}
}

func TestNoPolicyDenies(t *testing.T) {
	for _, s := range []*Snapshot{nil, NewSnapshot(nil, SnapshotOptions{})} {
		d := s.Decide(context.Background(), &Input{}, false)
		if d.Allow || !errors.Is(d.Err, ErrNoPolicy) || d.Reasons[0] != ReasonNoPolicy {
			t.Fatalf("got %+v", d)
		}
	}
}

func TestTimeoutDenies(t *testing.T) {
	s := NewSnapshot([]Evaluator{fixed{name: "slow", block: true}}, SnapshotOptions{Limits: Limits{Timeout: time.Millisecond}})
	d := s.Decide(context.Background(), &Input{}, false)
	if d.Allow || !errors.Is(d.Err, ErrTimeout) || d.Reasons[0] != ReasonTimeout {
		t.Fatalf("got %+v", d)
	}
}

func TestEveryModuleIsEvaluated(t *testing.T) {
	calls := 0
	broken := fixed{name: "b", err: errors.New("boom"), calls: &calls}
	mods := []Evaluator{fixed{name: "d", effect: Deny, rules: []string{"x"}}, fixed{name: "d2", effect: Deny, rules: []string{"y"}}, broken}
	s := NewSnapshot(mods, SnapshotOptions{})
	for _, explain := range []bool{false, true} {
		d := s.Decide(context.Background(), &Input{}, explain)
		if d.Allow || d.Err == nil || d.Reasons[0] != ReasonError {
			t.Fatalf("explain=%v: a failing module after a deny must still be reported: %+v", explain, d)
		}
	}
	if calls != 2 {
		t.Fatalf("the module after the denies ran %d times, want 2", calls)
	}
	d := NewSnapshot(mods[:2], SnapshotOptions{}).Decide(context.Background(), &Input{}, false)
	if strings.Join(d.Reasons, ",") != "x,y" {
		t.Fatalf("reasons must list every matching deny: %v", d.Reasons)
	}
}

func TestCacheability(t *testing.T) {
	if !NewSnapshot([]Evaluator{fixed{}}, SnapshotOptions{}).Cacheable() {
		t.Error("a time-independent snapshot must be cacheable")
	}
	if NewSnapshot([]Evaluator{fixed{}, fixed{td: true}}, SnapshotOptions{}).Cacheable() {
		t.Error("a module reading now must make the snapshot uncacheable")
	}
	if !NewSnapshot([]Evaluator{fixed{td: true}}, SnapshotOptions{CacheTimeDependent: true}).Cacheable() {
		t.Error("CacheTimeDependent must allow caching")
	}
}

func TestNormalizeJSON(t *testing.T) {
	var v any
	dec := json.NewDecoder(strings.NewReader(`{"i":3,"f":3.5,"e":1e3,"big":123456789012345678901234567890,"neg":-7,"l":[1,{"x":2.0}]}`))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	m := NormalizeJSON(v).(map[string]any)
	if m["i"] != int64(3) || m["f"] != 3.5 || m["e"] != 1000.0 || m["neg"] != int64(-7) {
		t.Fatalf("numbers: %#v", m)
	}
	if _, ok := m["big"].(float64); !ok {
		t.Fatalf("an integer beyond int64 must become a float: %#v", m["big"])
	}
	l := m["l"].([]any)
	if l[0] != int64(1) || l[1].(map[string]any)["x"] != 2.0 {
		t.Fatalf("nested: %#v", l)
	}
}

func TestParseInput(t *testing.T) {
	good := map[string]any{
		"subject":  map[string]any{"type": "user", "id": "alice", "properties": map[string]any{"r": 1}},
		"action":   map[string]any{"name": "read"},
		"resource": map[string]any{"type": "doc", "id": "1"},
		"context":  map[string]any{"ip": "1.2.3.4"},
		"token":    map[string]any{"sub": "alice"},
	}
	in, err := ParseInput(good, "")
	if err != nil {
		t.Fatal(err)
	}
	if in.Subject.ID != "alice" || in.Action.Name != "read" || in.Resource.Type != "doc" || in.Context["ip"] != "1.2.3.4" || in.Token["sub"] != "alice" {
		t.Fatalf("parsed %+v", in)
	}
	bad := []struct {
		mut   func(m map[string]any)
		field string
	}{
		{func(m map[string]any) { delete(m, "subject") }, "p.subject"},
		{func(m map[string]any) { m["subject"] = "alice" }, "p.subject"},
		{func(m map[string]any) { m["subject"].(map[string]any)["id"] = "" }, "p.subject.id"},
		{func(m map[string]any) { m["resource"].(map[string]any)["type"] = 1.0 }, "p.resource.type"},
		{func(m map[string]any) { m["action"] = map[string]any{"name": true} }, "p.action.name"},
		{func(m map[string]any) { m["action"] = map[string]any{"name": "x", "properties": "y"} }, "p.action.properties"},
		{func(m map[string]any) { m["context"] = []any{} }, "p.context"},
		{func(m map[string]any) { m["token"] = "jwt" }, "p.token"},
	}
	for _, tc := range bad {
		m := clone(good)
		tc.mut(m)
		_, err := ParseInput(m, "p.")
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
}

func clone(m map[string]any) map[string]any {
	raw, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func TestInputDoc(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	doc := (&Input{Subject: Entity{Type: "user", ID: "a"}, Action: Action{Name: "r"}, Now: now}).Doc()
	if doc["token"] != nil || doc["now"] != "2026-01-02T03:04:05.000000006Z" {
		t.Fatalf("doc: %#v", doc)
	}
	if len(doc["context"].(map[string]any)) != 0 || doc["subject"].(map[string]any)["properties"] == nil {
		t.Fatalf("absent objects must be empty objects: %#v", doc)
	}
}

func TestCompileErrorFormat(t *testing.T) {
	es := CompileErrors{{File: "a.rego", Line: 3, Col: 7, Message: "bad"}, {File: "b.yaml", Message: "worse"}, {Message: "no file"}}
	want := "a.rego:3:7: bad\nb.yaml: worse\nno file"
	if es.Error() != want {
		t.Fatalf("%q", es.Error())
	}
}
