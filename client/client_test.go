package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/server"
)

var (
	editor = client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}}
	doc42  = client.Resource{Type: "document", ID: "42", Properties: map[string]any{"owner": "olga"}}
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// newClient is a client of s with its client credentials, sending through
// a counter.
func newClient(t *testing.T, s *verdictServer, opts ...client.Option) (*client.Client, *counter) {
	t.Helper()
	cnt, hc := newCounter(t)
	c, err := client.New(s.URL, append([]client.Option{client.WithHTTPClient(hc), client.WithClientCredentials(s.ClientID, s.Secret)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, cnt
}

// asError is err's *Error, failing t without one.
func asError(t *testing.T, err error) *client.Error {
	t.Helper()
	e, ok := errors.AsType[*client.Error](err)
	if !ok {
		t.Fatalf("want a *client.Error, got %T %v", err, err)
	}
	return e
}

func TestEvaluation(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	c, _ := newClient(t, s, client.WithReasons())
	d, err := c.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Decision || !slices.Equal(d.Reasons, []string{"editors-read-update"}) || d.Revision != "quickstart-1" || d.Error != "" || !uuidRE.MatchString(d.ID) {
		t.Fatalf("allow: %+v", d)
	}
	if d.Context["revision"] != "quickstart-1" {
		t.Fatalf("raw context: %v", d.Context)
	}
	deny, err := c.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "delete"}, Resource: doc42})
	if err != nil {
		t.Fatal(err)
	}
	if deny.Decision || !slices.Equal(deny.Reasons, []string{"verdict:no-matching-allow"}) || !uuidRE.MatchString(deny.ID) || deny.ID == d.ID {
		t.Fatalf("deny: %+v (allow's id %s)", deny, d.ID)
	}
	// Context reaches the policies' input; a suspended user is denied.
	suspended := editor
	suspended.Properties = map[string]any{"roles": []string{"editor"}, "suspended": true}
	d, err = c.Evaluation(ctx, client.Evaluation{Subject: suspended, Action: client.Action{Name: "read"}, Resource: doc42, Context: client.Context{"ip": "10.0.0.1"}})
	if err != nil || d.Decision || !slices.Equal(d.Reasons, []string{"suspended-users"}) {
		t.Fatalf("suspended: %+v %v", d, err)
	}

	// Without WithReasons the answer is the bare decision, its id in the
	// header.
	bare, _ := newClient(t, s)
	d, err = bare.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42})
	if err != nil || !d.Decision || d.Reasons != nil || d.Context != nil || !uuidRE.MatchString(d.ID) {
		t.Fatalf("bare: %+v %v", d, err)
	}
	for action, want := range map[string]bool{"read": true, "delete": false} {
		if ok, err := bare.Allowed(ctx, editor, client.Action{Name: action}, doc42); err != nil || ok != want {
			t.Errorf("Allowed %s: %v %v", action, ok, err)
		}
	}
}

func TestEvaluationsSemantics(t *testing.T) {
	s := sharedFor(t)
	c, cnt := newClient(t, s, client.WithReasons())
	// read: allow, delete: deny, update: allow.
	items := []client.Evaluation{{Action: client.Action{Name: "read"}}, {Action: client.Action{Name: "delete"}}, {Action: client.Action{Name: "update"}}}
	for _, tc := range []struct {
		semantic client.Semantic
		want     []bool
	}{
		{"", []bool{true, false, true}},
		{client.ExecuteAll, []bool{true, false, true}},
		{client.DenyOnFirstDeny, []bool{true, false}},
		{client.PermitOnFirstPermit, []bool{true}},
	} {
		t.Run(string(tc.semantic), func(t *testing.T) {
			ds, err := c.Evaluations(context.Background(), client.Evaluations{
				Subject: editor, Resource: doc42, Evaluations: items,
				Options: client.EvaluationsOptions{Semantic: tc.semantic},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]bool, len(ds))
			ids := map[string]bool{}
			for i, d := range ds {
				got[i] = d.Decision
				if !uuidRE.MatchString(d.ID) || ids[d.ID] {
					t.Errorf("item %d: id %q", i, d.ID)
				}
				ids[d.ID] = true
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("decisions %v, want %v", got, tc.want)
			}
			if tc.semantic == client.DenyOnFirstDeny || tc.semantic == client.PermitOnFirstPermit {
				last := ds[len(ds)-1].Context
				if last["code"] != "200" || last["reason"] != string(tc.semantic) {
					t.Fatalf("short-circuit marker: %v", last)
				}
			}
		})
	}
	if n := cnt.n("/oauth2/token"); n != 1 {
		t.Errorf("%d token requests for 4 batches, want 1", n)
	}
}

func TestEvaluationsDefaultsAndItemErrors(t *testing.T) {
	s := sharedFor(t)
	c, _ := newClient(t, s)
	ctx := context.Background()
	// An item's resource without type takes the default's (AuthZEN
	// §3.2.7); an item that is no valid input is a deny with Error, not an
	// error of the call.
	ds, err := c.Evaluations(ctx, client.Evaluations{
		Subject: editor, Action: client.Action{Name: "read"}, Resource: client.Resource{Type: "document"},
		Evaluations: []client.Evaluation{{Resource: client.Resource{ID: "42"}}, {Subject: client.Subject{Type: "user"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || !ds[0].Decision || ds[1].Decision || !strings.Contains(ds[1].Error, "evaluations[1]") ||
		!slices.Equal(ds[1].Reasons, []string{"verdict:invalid-input"}) {
		t.Fatalf("decisions: %+v", ds)
	}
	// Without items the defaults are one evaluation.
	ds, err = c.Evaluations(ctx, client.Evaluations{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42})
	if err != nil || len(ds) != 1 || !ds[0].Decision || ds[0].ID == "" {
		t.Fatalf("no items: %+v %v", ds, err)
	}
	// A subject_token belongs to the request, never to an item.
	_, err = c.Evaluations(ctx, client.Evaluations{Subject: editor, Evaluations: []client.Evaluation{{SubjectToken: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "subject_token") {
		t.Fatalf("an item's subject token: %v", err)
	}
}

func TestSearch(t *testing.T) {
	s := sharedFor(t)
	c, _ := newClient(t, s)
	ctx := context.Background()
	update := client.Action{Name: "update"}

	// Who may update document 42 (owned by olga)? ed (editor), olga
	// (owner), root (admin); not vera (viewer).
	q := client.SearchQuery{Subject: client.Subject{Type: "user"}, Action: update, Resource: doc42}
	all, err := c.SearchSubject(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Subject{{Type: "user", ID: "ed"}, {Type: "user", ID: "olga"}, {Type: "user", ID: "root"}}
	if !slices.EqualFunc(all.Results, want, sameSubject) || all.Page.Total != 3 || all.Page.Count != 3 || all.Page.NextToken != "" {
		t.Fatalf("subjects: %+v", all)
	}
	// The same, two at a time.
	q.Page = client.Page{Limit: 2}
	var paged []client.Subject
	pages := 0
	for {
		r, err := c.SearchSubject(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		paged = append(paged, r.Results...)
		if r.Page.NextToken == "" {
			break
		}
		q.Page.Token = r.Page.NextToken
	}
	if pages != 2 || !slices.EqualFunc(paged, want, sameSubject) {
		t.Fatalf("%d pages: %+v", pages, paged)
	}
	// A page token of another query is refused.
	_, err = c.SearchSubject(ctx, client.SearchQuery{Subject: client.Subject{Type: "user"}, Action: client.Action{Name: "read"}, Resource: doc42, Page: q.Page})
	if e := asError(t, err); e.Status != http.StatusBadRequest || e.Code != "invalid_page_token" {
		t.Fatalf("another query's token: %+v", e)
	}

	// Which documents may ed delete? Only 44: 42 is olga's, 43 is locked.
	res, err := c.SearchResource(ctx, client.SearchQuery{Subject: editor, Action: client.Action{Name: "delete"}, Resource: client.Resource{Type: "document"}})
	if err != nil || len(res.Results) != 1 || res.Results[0].Type != "document" || res.Results[0].ID != "44" {
		t.Fatalf("resources: %+v %v", res, err)
	}
	// What may ed do with document 42?
	acts, err := c.SearchAction(ctx, client.SearchQuery{Subject: editor, Resource: doc42})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range acts.Results {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"read", "update"}) || acts.Page.Total != 2 {
		t.Fatalf("actions: %+v", acts)
	}
}

func sameSubject(a, b client.Subject) bool { return a.Type == b.Type && a.ID == b.ID }

func TestErrors(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	valid := client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42}

	// An invalid request is a 400, sent once.
	c, cnt := newClient(t, s)
	_, err := c.Evaluation(ctx, client.Evaluation{Action: client.Action{Name: "read"}, Resource: doc42})
	if e := asError(t, err); e.Status != 400 || e.Code != "invalid_input" || !strings.Contains(e.Message, "subject") {
		t.Fatalf("no subject: %+v", e)
	}
	if n := cnt.n("/access/v1/evaluation"); n != 1 {
		t.Fatalf("a 400 was sent %d times", n)
	}

	// A wrong secret: the token endpoint's 401, not retried, and no
	// decision request.
	cnt, hc := newCounter(t)
	bad, _ := client.New(s.URL, client.WithHTTPClient(hc), client.WithClientCredentials(s.ClientID, "wrong"))
	_, err = bad.Evaluation(ctx, valid)
	if e := asError(t, err); e.Status != 401 || e.Code != "invalid_client" || !client.IsUnauthorized(err) {
		t.Fatalf("wrong secret: %+v", e)
	}
	if got := cnt.snapshot(); got["/oauth2/token"] != 1 || len(got) != 1 {
		t.Fatalf("requests for a wrong secret: %v", got)
	}

	// A token without verdict:decide: 403.
	_, hc = newCounter(t)
	reader, _ := client.New(s.URL, client.WithHTTPClient(hc), client.WithClientCredentials(s.ReaderID, s.ReaderSecret, "verdict:bundles:read"))
	_, err = reader.Evaluation(ctx, valid)
	if e := asError(t, err); e.Status != 403 || e.Code != "insufficient_scope" || !client.IsForbidden(err) {
		t.Fatalf("without the scope: %+v", e)
	}

	// A fixed token the server refuses: 401 as it is, sent once; no
	// credentials at all: 401.
	for name, opt := range map[string]client.Option{"bearer": client.WithBearerToken("not-a-token"), "none": client.WithTimeout(time.Minute)} {
		cnt, hc := newCounter(t)
		c, _ := client.New(s.URL, client.WithHTTPClient(hc), opt)
		ok, err := c.Allowed(ctx, editor, client.Action{Name: "read"}, doc42)
		if e := asError(t, err); ok || e.Status != 401 || e.Code != "unauthorized" {
			t.Fatalf("%s: %v %+v", name, ok, e)
		}
		if n := cnt.n("/access/v1/evaluation"); n != 1 {
			t.Fatalf("%s: sent %d times", name, n)
		}
	}
}

func TestTokenReusedAndRefreshedBeforeExpiry(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	c, cnt := newClient(t, s)
	var ahead atomic.Int64 // how far the client's clock is ahead of the real one
	client.SetClock(c, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	eval := client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42}

	// Concurrent first calls share one token request.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := c.Evaluation(ctx, eval); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := c.Evaluation(ctx, eval); err != nil {
			t.Fatal(err)
		}
	}
	if tok, ev := cnt.n("/oauth2/token"), cnt.n("/access/v1/evaluation"); tok != 1 || ev != 12 {
		t.Fatalf("%d token requests for %d evaluations, want 1 for 12", tok, ev)
	}
	first := cnt.auth()
	// Verdict's tokens live 5 minutes; 4 minutes on, the token is still
	// reused ...
	ahead.Store(int64(4 * time.Minute))
	if _, err := c.Evaluation(ctx, eval); err != nil || cnt.n("/oauth2/token") != 1 {
		t.Fatalf("4m on: %d token requests, %v", cnt.n("/oauth2/token"), err)
	}
	// ... and within the 30s refresh margin of its expiry it is replaced
	// before use, by one that the server takes.
	ahead.Store(int64(5*time.Minute - 15*time.Second))
	if _, err := c.Evaluation(ctx, eval); err != nil || cnt.n("/oauth2/token") != 2 {
		t.Fatalf("in the margin: %d token requests, %v", cnt.n("/oauth2/token"), err)
	}
	if cnt.auth() == first {
		t.Fatal("the refreshed call sent the old token")
	}
}

func TestRevokedTokenIsRefetchedOnce(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	c, cnt := newClient(t, s)
	eval := client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42}
	if _, err := c.Evaluation(ctx, eval); err != nil {
		t.Fatal(err)
	}
	revoke(t, s, strings.TrimPrefix(cnt.auth(), "Bearer "))
	// The cached token is refused (401): the client fetches another and
	// sends the call again.
	d, err := c.Evaluation(ctx, eval)
	if err != nil || !d.Decision {
		t.Fatalf("after revocation: %+v %v", d, err)
	}
	if tok, ev := cnt.n("/oauth2/token"), cnt.n("/access/v1/evaluation"); tok != 2 || ev != 3 {
		t.Fatalf("%d token requests and %d evaluations, want 2 and 3", tok, ev)
	}
}

// revoke revokes token at s as its client (RFC 7009).
func revoke(t *testing.T, s *verdictServer, token string) {
	t.Helper()
	_, hc := newCounter(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.ClientID, s.Secret)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

func TestContextDeadline(t *testing.T) {
	s := sharedFor(t)
	c, cnt := newClient(t, s)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a past deadline: %v", err)
	}
	if got := cnt.snapshot(); len(got) != 0 {
		t.Fatalf("requests sent past the deadline: %v", got)
	}
}

// TestConnectionReuse: the transport New makes keeps one connection for a
// run of sequential calls, refusals included (every body is read and
// closed), and Close closes it.
func TestConnectionReuse(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	c, err := client.New(s.URL, client.WithClientCredentials(s.ClientID, s.Secret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dials := &dialCounter{}
	client.Transport(c).DialContext = dials.DialContext
	for range 10 {
		if _, err := c.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Evaluation(ctx, client.Evaluation{Action: client.Action{Name: "read"}}); asError(t, err).Status != 400 {
		t.Fatalf("an invalid request: %v", err)
	}
	if _, err := c.Evaluations(ctx, client.Evaluations{Subject: editor, Resource: doc42, Evaluations: []client.Evaluation{{Action: client.Action{Name: "read"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SearchAction(ctx, client.SearchQuery{Subject: editor, Resource: doc42}); err != nil {
		t.Fatal(err)
	}
	if n := dials.count(); n != 1 {
		t.Fatalf("%d connections for 14 sequential requests, want 1", n)
	}
	c.Close()
	if _, err := c.Allowed(ctx, editor, client.Action{Name: "read"}, doc42); err != nil {
		t.Fatal(err)
	}
	if n := dials.count(); n != 2 {
		t.Fatalf("after Close: %d connections, want a new one (2)", n)
	}
}

// TestRateLimitedNotWaited: a 429 whose Retry-After is longer than the
// retry policy's MaxInterval (2s by default) fails at once, with the wait
// the server asked for.
func TestRateLimitedNotWaited(t *testing.T) {
	s := newServer(t, func(cfg *app.Config) {
		cfg.Server.RateLimits.AuthZEN = server.Limit{PerClient: 1, Window: time.Hour}
	})
	c, cnt := newClient(t, s)
	ctx := context.Background()
	eval := client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42}
	if _, err := c.Evaluation(ctx, eval); err != nil {
		t.Fatal(err)
	}
	_, err := c.Evaluation(ctx, eval)
	e := asError(t, err)
	if e.Status != 429 || e.Code != "rate_limited" || !client.IsRateLimited(err) || e.RetryAfter <= 2*time.Second {
		t.Fatalf("over the limit: %+v", e)
	}
	if n := cnt.n("/access/v1/evaluation"); n != 2 {
		t.Fatalf("%d evaluations sent, want 2 (no retry)", n)
	}
}

func TestNew(t *testing.T) {
	for name, tc := range map[string]struct {
		url  string
		opts []client.Option
		want string
	}{
		"relative":        {"localhost:8700", nil, "http or https"},
		"ftp":             {"ftp://verdict", nil, "http or https"},
		"no host":         {"http://", nil, "no host"},
		"user info":       {"https://u:p@verdict", nil, "user info"},
		"query":           {"https://verdict?x=1", nil, "query"},
		"two credentials": {"https://verdict", []client.Option{client.WithAPIKey("vk_x"), client.WithBearerToken("t")}, "one of"},
		"no secret":       {"https://verdict", []client.Option{client.WithClientCredentials("id", "")}, "secret"},
		"token url alone": {"https://verdict", []client.Option{client.WithTokenURL("https://idp/token")}, "WithTokenURL"},
		"bad token url":   {"https://verdict", []client.Option{client.WithClientCredentials("id", "s"), client.WithTokenURL("idp/token")}, "token URL"},
		"negative":        {"https://verdict", []client.Option{client.WithTimeout(-1)}, "negative"},
		"nil http client": {"https://verdict", []client.Option{client.WithHTTPClient(nil)}, "nil"},
	} {
		if _, err := client.New(tc.url, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	c, err := client.New("https://verdict.example/pdp/", client.WithAPIKey("vk_x"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
