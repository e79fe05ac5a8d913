package pdp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// TestCanonicalInput pins the canonical JSON the input hash is taken over
// (docs/api.md, Signed decisions): members sorted, properties and context
// {} when absent, JCS strings and numbers, integers exact.
func TestCanonicalInput(t *testing.T) {
	in := &engine.Input{
		Subject: engine.Entity{Type: "user", ID: "alice", Properties: map[string]any{
			"roles": []any{"editor", "a\"b\\c\n\u0001é<>&"}, "age": int64(42), "score": 1.5, "big": int64(9007199254740993),
			"tiny": 1e-7, "huge": 1e21, "plain": 1e20, "neg": -0.0, "none": nil, "ok": true,
		}},
		Action:   engine.Action{Name: "read"},
		Resource: engine.Entity{Type: "document", ID: "42"},
		Token:    map[string]any{"sub": "not hashed"},
	}
	want := `{"action":{"name":"read","properties":{}},"context":{},` +
		`"resource":{"id":"42","properties":{},"type":"document"},` +
		`"subject":{"id":"alice","properties":{"age":42,"big":9007199254740993,"huge":1e+21,"neg":0,"none":null,"ok":true,"plain":100000000000000000000,` +
		`"roles":["editor","a\"b\\c\n\u0001é<>&"],"score":1.5,"tiny":1e-7},"type":"user"}}`
	if got := string(CanonicalInput(in)); got != want {
		t.Fatalf("canonical input\n got %s\nwant %s", got, want)
	}
	sum := sha256.Sum256([]byte(want))
	if InputHash(in) != hex.EncodeToString(sum[:]) {
		t.Fatalf("InputHash is not the SHA-256 of the canonical JSON")
	}
	// The canonical form is valid JSON that reads back as the input.
	var back map[string]any
	if err := json.Unmarshal([]byte(want), &back); err != nil {
		t.Fatal(err)
	}
}

func TestJCSNumbersAndOrder(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1.5: "-1.5", 0.000001: "0.000001", 1e-7: "1e-7", 123456789012345680000: "123456789012345680000",
		1e21: "1e+21", 5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308", 0.1: "0.1", 1e-6 * 1.5: "0.0000015",
	} {
		if got := string(jcsNumber(nil, f)); got != want {
			t.Errorf("jcsNumber(%g) = %s, want %s", f, got, want)
		}
	}
	// RFC 8785 §3.2.3: by UTF-16 code units, where U+1F600 (D83D DE00)
	// comes before U+E000 although its UTF-8 is greater.
	if compareUTF16("\U0001F600", "\ue000") >= 0 || compareUTF16("a", "ab") >= 0 || compareUTF16("b", "a") <= 0 || compareUTF16("x", "x") != 0 {
		t.Fatal("compareUTF16 does not order by UTF-16 code units")
	}
	got := string(jcsObject(nil, map[string]any{"\ue000": 1, "\U0001F600": 2, "b": 3, "a": 4}))
	if want := `{"a":4,"b":3,"` + "\U0001F600" + `":2,"` + "\ue000" + `":1}`; got != want {
		t.Fatalf("member order %s, want %s", got, want)
	}
}

// TestInputHashChangesWithTheInput: any change to what the policy sees
// changes the hash; spelling the same input differently does not.
func TestInputHashChangesWithTheInput(t *testing.T) {
	parse := func(body string) string {
		t.Helper()
		req, err := Parse(context.Background(), []byte(body), Limits{MaxDepth: 64, MaxBatch: 10}, ParseOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return InputHash(req.Inputs[0])
	}
	base := parse(`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.1"}}`)
	same := []string{
		`{"context":{"ip":"10.0.0.1"},"resource":{"properties":{"n":1,"owner":"a"},"id":"1","type":"doc"},"action":{"name":"read","properties":{}},"subject":{"id":"a","type":"user","properties":{}}}`,
		`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1.0}},"context":{"ip":"10.0.0.1"},"options":{"signed":true}}`,
	}
	for _, b := range same {
		if h := parse(b); h != base {
			t.Errorf("the same input, spelt otherwise, hashes otherwise: %s", b)
		}
	}
	for _, b := range []string{
		`{"subject":{"type":"user","id":"b"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.1"}}`,
		`{"subject":{"type":"user","id":"a"},"action":{"name":"write"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.1"}}`,
		`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"2","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.1"}}`,
		`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":"1"}},"context":{"ip":"10.0.0.1"}}`,
		`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.2"}}`,
		`{"subject":{"type":"user","id":"a","properties":{"x":null}},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a","n":1}},"context":{"ip":"10.0.0.1"}}`,
	} {
		if h := parse(b); h == base {
			t.Errorf("a different input hashes the same: %s", b)
		}
	}
}

// fakeSigner records what it signs; fail makes it fail.
type fakeSigner struct {
	mu       sync.Mutex
	fail     bool
	typ      string
	payloads []DecisionClaims
}

func (f *fakeSigner) Sign(typ string, payload []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return "", errors.New("no key may sign")
	}
	var c DecisionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", err
	}
	f.typ = typ
	f.payloads = append(f.payloads, c)
	return "sig." + c.DecisionID, nil
}

// TestSigning: a decision is signed when its request asks, or every one
// under SignAll; never for a transport that cannot carry it; batch items
// each; a failure refuses the request, never answering unsigned.
func TestSigning(t *testing.T) {
	ctx := context.Background()
	const body = `{"subject":{"type":"user","id":"ed","properties":{"roles":["editor"]}},"action":{"name":"update"},"resource":{"type":"document","id":"42","properties":{"owner":"olga"}}`
	signedBody := body + `,"options":{"signed":true}}`
	sig := &fakeSigner{}
	svc := open(t, DefaultConfig(), WithSigner(sig, "https://pdp.example"))
	m := Meta{Endpoint: EndpointDecide, Caller: "gw", CallerIssuer: "https://pdp.example"}

	res, err := svc.DecideBody(ctx, []byte(body+"}"), ParseOptions{}, m)
	if err != nil || res.Evaluations[0].Context.Signature != "" {
		t.Fatalf("unasked: signed %q (%v)", res.Evaluations[0].Context.Signature, err)
	}
	// Twice: a miss, then a hit of the body cache.
	for i := 0; i < 2; i++ {
		svc.WaitCache()
		res, err = svc.DecideBody(ctx, []byte(signedBody), ParseOptions{}, m)
		ev := res.Evaluations[0]
		if err != nil || ev.Context.Signature != "sig."+ev.Context.DecisionID {
			t.Fatalf("asked (%d): %+v (%v)", i, ev.Context, err)
		}
		c := sig.payloads[len(sig.payloads)-1]
		req, _ := svc.Parse(ctx, []byte(signedBody), ParseOptions{})
		if sig.typ != DecisionJWTType || c.Issuer != "https://pdp.example" || !c.Decision || c.DecisionID != ev.Context.DecisionID ||
			c.Revision != "quickstart-1" || c.InputSHA256 != InputHash(req.Inputs[0]) || c.Caller != "gw" || c.CallerIssuer != "https://pdp.example" || c.IssuedAt == 0 {
			t.Fatalf("claims (%d) %+v", i, c)
		}
	}

	batch := `{"subject":{"type":"user","id":"ed"},"action":{"name":"read"},"evaluations":[` +
		`{"resource":{"type":"document","id":"1"}},{"resource":{"type":"document","id":"2"}},{"resource":{"type":"document"}}],"options":{"signed":true}}`
	n := len(sig.payloads)
	res, err = svc.DecideBody(ctx, []byte(batch), ParseOptions{ItemErrors: true}, Meta{})
	if err != nil || len(res.Evaluations) != 3 || len(sig.payloads) != n+3 {
		t.Fatalf("batch: %v %d signatures", err, len(sig.payloads)-n)
	}
	for i, ev := range res.Evaluations {
		c := sig.payloads[n+i]
		if ev.Context.Signature != "sig."+ev.Context.DecisionID || c.DecisionID != ev.Context.DecisionID || c.Caller != "" || c.CallerIssuer != "" {
			t.Errorf("item %d: %+v %+v", i, ev.Context, c)
		}
	}
	if sig.payloads[n].InputSHA256 == sig.payloads[n+1].InputSHA256 || sig.payloads[n+2].InputSHA256 != "" {
		t.Errorf("batch input hashes %q %q %q", sig.payloads[n].InputSHA256, sig.payloads[n+1].InputSHA256, sig.payloads[n+2].InputSHA256)
	}

	sig.fail = true
	for _, b := range []string{signedBody, batch} {
		_, err = svc.DecideBody(ctx, []byte(b), ParseOptions{ItemErrors: true}, m)
		if pe, ok := errors.AsType[*Error](err); !ok || pe.Code != CodeSigningUnavailable {
			t.Fatalf("a failed signature: %v, want %s", err, CodeSigningUnavailable)
		}
	}

	// SignAll: every decision, asked for or not; it needs a signer.
	cfg := DefaultConfig()
	cfg.SignAll = true
	all := &fakeSigner{}
	res, err = open(t, cfg, WithSigner(all, "https://pdp.example")).DecideJSON(ctx, []byte(body+"}"))
	if err != nil || res.Evaluations[0].Context.Signature == "" || len(all.payloads) != 1 {
		t.Fatalf("sign_decisions: %+v (%v)", res.Evaluations[0].Context, err)
	}
	if _, err := Open(ctx, cfg, bundles.DefaultConfig(), []string{"../policies/quickstart"}); err == nil {
		t.Fatal("SignAll without a signer was accepted")
	}
	// Without a signer a request for a signature is refused, not
	// answered unsigned; a non-boolean signed is refused too.
	plain := open(t, DefaultConfig())
	for _, b := range []string{signedBody, body + `,"options":{"signed":"yes"}}`} {
		if _, err := plain.DecideJSON(ctx, []byte(b)); err == nil || !strings.Contains(err.Error(), "options.signed") {
			t.Errorf("%s: %v", b, err)
		}
	}
	// The AuthZEN single evaluation reads options.signed too (and ignores
	// the rest of options, as before).
	res, err = svc.DecideBody(ctx, []byte(body+`,"options":{"evaluations_semantic":"nonsense","signed":false}}`), ParseOptions{Single: true}, m)
	if err != nil || res.Evaluations[0].Context.Signature != "" {
		t.Fatalf("single evaluation: %v", err)
	}
	sig.fail = false
	res, err = svc.DecideBody(ctx, []byte(body+`,"options":{"signed":true}}`), ParseOptions{Single: true}, m)
	if err != nil || res.Evaluations[0].Context.Signature == "" {
		t.Fatalf("single evaluation, signed: %v", err)
	}
}

// hintBundle writes a one-policy bundle whose manifest sets
// max_cache_ttl to ttl (none when ttl is ""), with a policy reading now
// when timed.
func hintBundle(t *testing.T, ttl string, timed bool) string {
	t.Helper()
	dir := t.TempDir()
	cond := `resource.properties.owner == subject.id`
	if timed {
		cond += ` && now > timestamp("2000-01-01T00:00:00Z")`
	}
	files := map[string]string{"p.verdict.yaml": "apiVersion: verdict.dev/v1\nkind: Policy\nname: p\nrules:\n  - id: owners\n    effect: allow\n    condition: " + cond + "\n" +
		"  - id: broken\n    effect: deny\n    condition: resource.type == 'broken' && int(resource.id) > 0\n"}
	if ttl != "" {
		files[".manifest"] = `{"revision":"h1","metadata":{"verdict":{"max_cache_ttl":` + ttl + `}}}`
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCacheHints: context.ttl is the bundle's max_cache_ttl for a decision
// that depends on its input alone, and absent for a time-dependent
// policy, a time in the context, a subject token, an error and an
// explanation; a batch's MaxAge is its least ttl.
func TestCacheHints(t *testing.T) {
	ctx := context.Background()
	decide := func(dir, body string) (Result, error) {
		t.Helper()
		svc, err := Open(ctx, DefaultConfig(), bundles.DefaultConfig(), []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		return svc.DecideJSON(ctx, []byte(body))
	}
	const owner = `{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a"}}`
	for _, c := range []struct {
		name, ttl string
		timed     bool
		body      string
		want      []int
	}{
		{"allow", "60", false, owner + "}", []int{60}},
		{"deny", "60", false, `{"subject":{"type":"user","id":"b"},"action":{"name":"read"},"resource":{"type":"doc","id":"1","properties":{"owner":"a"}}}`, []int{60}},
		{"no maximum", "", false, owner + "}", []int{0}},
		{"zero maximum", "0", false, owner + "}", []int{0}},
		{"time-dependent policy", "60", true, owner + "}", []int{0}},
		{"time in the context", "60", false, owner + `,"context":{"now":"2026-01-01T00:00:00Z"}}`, []int{0}},
		{"explain", "60", false, owner + `,"explain":true}`, []int{0}},
		{"error", "60", false, `{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"resource":{"type":"broken","id":"x"}}`, []int{0}},
		{"batch", "60", false, `{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"evaluations":[` +
			`{"resource":{"type":"doc","id":"1","properties":{"owner":"a"}}},{"resource":{"type":"doc","id":"1","properties":{"owner":"a"}},"context":{"time":1}}]}`, []int{60, 0}},
	} {
		res, err := decide(hintBundle(t, c.ttl, c.timed), c.body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []int
		for _, ev := range res.Evaluations {
			got = append(got, ev.Context.TTL)
		}
		wantAge := c.want[0]
		for _, w := range c.want {
			wantAge = min(wantAge, w)
		}
		if len(got) != len(c.want) || got[0] != c.want[0] || got[len(got)-1] != c.want[len(c.want)-1] || res.MaxAge() != wantAge {
			t.Errorf("%s: ttl %v (max-age %d), want %v", c.name, got, res.MaxAge(), c.want)
		}
		if b, _ := res.AppendJSON(nil); !res.Batch && (wantAge > 0) != strings.Contains(string(b), `"ttl":60`) {
			t.Errorf("%s: answer %s", c.name, b)
		}
	}
	for _, bad := range []string{`"60"`, `-1`, `1.5`, `86401`} {
		if _, err := Open(ctx, DefaultConfig(), bundles.DefaultConfig(), []string{hintBundle(t, bad, false)}); err == nil || !strings.Contains(err.Error(), "max_cache_ttl") {
			t.Errorf("max_cache_ttl %s: %v", bad, err)
		}
	}
}
