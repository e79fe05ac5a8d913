package client_test

// The tests of this file talk to a FAKE server (net/http/httptest), not to
// Verdict: a real Verdict cannot be made to answer 503 on demand, to drop
// a connection before answering, or to stall. Every test here is named
// TestFakeServer…; everything else is tested against a real Verdict.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/client"
)

type answer func(w http.ResponseWriter, r *http.Request)

// fake answers every request with the next of its answers (the last one
// repeated) and notes when each came.
type fake struct {
	*httptest.Server
	answers []answer

	mu sync.Mutex
	at []time.Time
}

func newFake(t *testing.T, answers ...answer) *fake {
	f := &fake{answers: answers}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		i := min(len(f.at), len(f.answers)-1)
		f.at = append(f.at, time.Now())
		f.mu.Unlock()
		f.answers[i](w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.at)
}

// fakeClient is a client of f that retries quickly.
func fakeClient(t *testing.T, f *fake, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithRetry(client.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Second})}, opts...)
	c, err := client.New(f.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func refuse(status int, code, retryAfter string) answer {
	return func(w http.ResponseWriter, _ *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"fake %d"}}`, code, status)
	}
}

func allow(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Verdict-Decision-Id", "id-1")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"decision":true}`)
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// stall answers only once the client has gone (the server notices that
// only once the body is read).
func stall(_ http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

func raw(status int, body string) answer {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

var anyEval = client.Evaluation{Subject: client.Subject{Type: "user", ID: "u"}, Action: client.Action{Name: "a"}, Resource: client.Resource{Type: "r", ID: "1"}}

func TestFakeServerRetriesUntilAnswered(t *testing.T) {
	for name, first := range map[string]answer{
		"503":     refuse(503, "unavailable", ""),
		"503 now": refuse(503, "overloaded", "0"),
		"502":     raw(502, "<html>bad gateway</html>"),
		"429":     refuse(429, "rate_limited", ""),
		"hung up": hangUp,
		"504":     refuse(504, "", ""),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, first, refuse(503, "unavailable", ""), allow)
			d, err := fakeClient(t, f).Evaluation(context.Background(), anyEval)
			if err != nil || !d.Decision || d.ID != "id-1" {
				t.Fatalf("%+v %v", d, err)
			}
			if n := f.attempts(); n != 3 {
				t.Fatalf("%d attempts, want 3", n)
			}
		})
	}
}

func TestFakeServerRetriesSpent(t *testing.T) {
	f := newFake(t, refuse(503, "unavailable", ""))
	_, err := fakeClient(t, f).Evaluation(context.Background(), anyEval)
	e, ok := errors.AsType[*client.Error](err)
	if !ok || e.Status != 503 || e.Code != "unavailable" || e.Message != "fake 503" || !client.IsUnavailable(err) {
		t.Fatalf("%T %v", err, err)
	}
	if n := f.attempts(); n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts (3)", n)
	}
}

func TestFakeServerNotRetried(t *testing.T) {
	for name, a := range map[string]answer{
		"400": refuse(400, "invalid_input", ""),
		"500": refuse(500, "internal", ""),
		"401": refuse(401, "unauthorized", ""),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, a, allow)
			_, err := fakeClient(t, f, client.WithBearerToken("t")).Evaluation(context.Background(), anyEval)
			if _, ok := errors.AsType[*client.Error](err); !ok || f.attempts() != 1 {
				t.Fatalf("%d attempts: %v", f.attempts(), err)
			}
		})
	}
}

// TestFakeServerRetryAfter: the retry waits at least Retry-After (a lower
// bound, which slowness cannot break).
func TestFakeServerRetryAfter(t *testing.T) {
	f := newFake(t, refuse(503, "unavailable", "1"), allow)
	if _, err := fakeClient(t, f).Evaluation(context.Background(), anyEval); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.at) != 2 || f.at[1].Sub(f.at[0]) < time.Second {
		t.Fatalf("attempts at %v: the retry came before Retry-After", f.at)
	}
}

// TestFakeServerNoWaitPastDeadline: a wait that would end past the
// deadline, or last longer than MaxInterval, is not begun: the call fails
// at once with the server's answer, not with the context's error.
func TestFakeServerNoWaitPastDeadline(t *testing.T) {
	for name, tc := range map[string]struct {
		answer   answer
		deadline time.Duration
		after    time.Duration
	}{
		"past the deadline":    {refuse(503, "unavailable", "1"), 500 * time.Millisecond, time.Second},
		"over MaxInterval":     {refuse(429, "rate_limited", "30"), time.Minute, 30 * time.Second},
		"over MaxInterval 503": {refuse(503, "unavailable", "3600"), 0, time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, tc.answer, allow)
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			_, err := fakeClient(t, f).Evaluation(ctx, anyEval)
			e, ok := errors.AsType[*client.Error](err)
			if !ok || e.RetryAfter != tc.after || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%T %v", err, err)
			}
			if n := f.attempts(); n != 1 {
				t.Fatalf("%d attempts, want 1", n)
			}
		})
	}
}

func TestFakeServerDeadlineDuringAnswer(t *testing.T) {
	f := newFake(t, stall)
	// WithTimeout bounds a call whose context has no deadline ...
	_, err := fakeClient(t, f, client.WithTimeout(50*time.Millisecond)).Evaluation(context.Background(), anyEval)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WithTimeout: %v", err)
	}
	// ... and the context's deadline bounds it too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = fakeClient(t, f, client.WithTimeout(0)).Evaluation(ctx, anyEval)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context deadline: %v", err)
	}
	if n := f.attempts(); n != 2 {
		t.Fatalf("%d attempts: a call was retried after its deadline", n)
	}
}

// TestFakeServerAnswerIsNotADecision: a 200 that is no decision is an
// error, never a deny or an allow.
func TestFakeServerAnswerIsNotADecision(t *testing.T) {
	for name, a := range map[string]answer{
		"no decision":  raw(200, `{"allowed":true}`),
		"html":         raw(200, `<html>login</html>`),
		"string":       raw(200, `{"decision":"true"}`),
		"over the cap": raw(200, `{"decision":true,"context":{"reasons":["`+strings.Repeat("x", 2000)+`"]}}`),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, a)
			c := fakeClient(t, f, client.WithMaxResponseBytes(1000))
			d, err := c.Evaluation(context.Background(), anyEval)
			if err == nil || d.Decision {
				t.Fatalf("%+v %v", d, err)
			}
			if ok, err := c.Allowed(context.Background(), anyEval.Subject, anyEval.Action, anyEval.Resource); ok || err == nil {
				t.Fatalf("Allowed: %v %v", ok, err)
			}
		})
	}
	// A batch answer with more decisions than items, or fewer under
	// execute_all, is refused too.
	f := newFake(t, raw(200, `{"evaluations":[{"decision":true},{"decision":false}]}`))
	c := fakeClient(t, f)
	for _, n := range []int{1, 3} {
		items := make([]client.Evaluation, n)
		if ds, err := c.Evaluations(context.Background(), client.Evaluations{Subject: anyEval.Subject, Evaluations: items}); err == nil {
			t.Fatalf("%d items: %+v", n, ds)
		}
	}
}

// TestFakeServerTokenEndpointRetried: a token request that meets a 503 is
// retried like a decision.
func TestFakeServerTokenEndpointRetried(t *testing.T) {
	tokenAnswers := newFake(t, refuse(503, "", ""), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":300}`)
	})
	auth := make(chan string, 1)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { auth <- r.Header.Get("Authorization"); allow(w, r) })
	c := fakeClient(t, f, client.WithClientCredentials("id", "secret"), client.WithTokenURL(tokenAnswers.URL+"/token"))
	if _, err := c.Evaluation(context.Background(), anyEval); err != nil {
		t.Fatal(err)
	}
	if got := <-auth; tokenAnswers.attempts() != 2 || got != "Bearer tok-1" {
		t.Fatalf("%d token requests, sent %q", tokenAnswers.attempts(), got)
	}
}
