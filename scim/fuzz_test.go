package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// memStore is a Store in memory, for the parser tests.
type memStore struct {
	mu sync.Mutex
	m  map[string]Entry
}

func (s *memStore) CreateEntry(_ context.Context, e Entry) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.m {
		if o.Type == e.Type && (o.ID == e.ID || o.Key == e.Key) {
			return Entry{}, ErrConflict
		}
	}
	e.Version = 1
	s.m[e.Type+"/"+e.ID] = e
	return e, nil
}

func (s *memStore) ReplaceEntry(_ context.Context, e Entry, v int64) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[e.Type+"/"+e.ID]
	if !ok {
		return Entry{}, ErrNotFound
	}
	if v != 0 && v != cur.Version {
		return Entry{}, ErrConflict
	}
	e.Version = cur.Version + 1
	s.m[e.Type+"/"+e.ID] = e
	return e, nil
}

func (s *memStore) Entry(_ context.Context, typ, id string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[typ+"/"+id]
	if !ok {
		return Entry{}, ErrNotFound
	}
	return e, nil
}

func (s *memStore) Entries(_ context.Context, typ string) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, e := range s.m {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *memStore) DeleteEntry(_ context.Context, typ, id string, _ int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[typ+"/"+id]; !ok {
		return ErrNotFound
	}
	delete(s.m, typ+"/"+id)
	return nil
}

func fuzzHandler(t testing.TB) http.Handler {
	st := &memStore{m: map[string]Entry{}}
	attrs, _ := json.Marshal(map[string]any{"userName": "alice", "emails": []any{map[string]any{"value": "a@x", "type": "work"}}})
	st.m["User/u1"] = Entry{Type: TypeUser, ID: "u1", Key: "alice", Attributes: attrs, Version: 1}
	h, err := New(st, "http://verdict.test/scim/v2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzFilter: whatever a filter holds, the answer is a SCIM answer (never
// a 5xx, never a panic), and filters past the bounds are refused.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{`userName eq "alice"`, `emails[type eq "work" and value co "@"]`, `not (userName pr)`,
		`userName eq "a" or (displayName sw "b" and active eq true)`, `meta.lastModified gt "2011-05-13T04:42:34Z"`,
		strings.Repeat("(", 20) + `userName pr` + strings.Repeat(")", 20), `userName eq "\"`, `[[[[`, `userName eq`} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, filter string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/Users?filter="+url.QueryEscape(filter), nil))
		if rec.Code >= 500 {
			t.Fatalf("filter %q: %d %s", filter, rec.Code, rec.Body.String())
		}
		if (len(filter) > MaxFilterLength || filterDepth(filter) > MaxFilterDepth) && rec.Code != 400 {
			t.Fatalf("filter past the bounds: %d", rec.Code)
		}
	})
}

// FuzzPatch: whatever PATCH operations hold, the answer is never a 5xx.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{`{"op":"replace","value":{"active":false}}`, `{"op":"Add","path":"emails[type eq \"work\"].value","value":"x"}`,
		`{"op":"remove","path":"emails[value eq \"a@x\"]"}`, `{"op":"add","path":"name.givenName","value":"A"}`, `{"op":"remove","path":"userName"}`} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, op string) {
		rec := httptest.NewRecorder()
		body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + op + `]}`
		req := httptest.NewRequest("PATCH", "/Users/u1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/scim+json")
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("op %s: %d %s", op, rec.Code, rec.Body.String())
		}
	})
}

// TestFilterOnAComplexAttribute: a value comparison of a complex attribute
// (emails eq "x", in any case) makes the filter library panic; it is
// answered 400 invalidFilter, and the value-path form filters.
func TestFilterOnAComplexAttribute(t *testing.T) {
	h := fuzzHandler(t)
	for filter, want := range map[string]int{`emails eq ""`: 400, `emAils eq "a@x"`: 400, `emails[value eq "a@x"]`: 200, `emails pr`: 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/Users?filter="+url.QueryEscape(filter), nil))
		if rec.Code != want || (want == 400 && !strings.Contains(rec.Body.String(), "invalidFilter")) {
			t.Errorf("filter %q: %d %s, want %d", filter, rec.Code, rec.Body.String(), want)
		}
		if want == 200 && !strings.Contains(rec.Body.String(), `"totalResults":1`) {
			t.Errorf("filter %q: %s, want alice", filter, rec.Body.String())
		}
	}
}
