package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/client"
)

// newGRPC is a gRPC client of s with its client credentials (tokens from
// the HTTP listener, through a counter).
func newGRPC(t *testing.T, s *verdictServer, opts ...client.Option) (*client.GRPC, *counter) {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cnt, hc := newCounter(t)
	g, err := client.NewGRPC(conn, append([]client.Option{client.WithHTTPClient(hc),
		client.WithClientCredentials(s.ClientID, s.Secret), client.WithTokenURL(s.URL + "/oauth2/token")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return g, cnt
}

// TestGRPCAnswersAsHTTP asks both transports the same questions and wants
// the same answers (decision ids aside: each decision has its own).
func TestGRPCAnswersAsHTTP(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	h, _ := newClient(t, s, client.WithReasons())
	g, cnt := newGRPC(t, s)
	same := func(what string, a, b client.Decision) {
		t.Helper()
		if a.Decision != b.Decision || !slices.Equal(a.Reasons, b.Reasons) || a.Revision != b.Revision || a.Error != b.Error {
			t.Errorf("%s: HTTP %+v, gRPC %+v", what, a, b)
		}
		if b.ID == "" || b.ID == a.ID {
			t.Errorf("%s: gRPC decision id %q", what, b.ID)
		}
	}
	suspended := client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}, "suspended": true}}
	for _, e := range []client.Evaluation{
		{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42},
		{Subject: editor, Action: client.Action{Name: "delete"}, Resource: doc42},
		{Subject: suspended, Action: client.Action{Name: "read"}, Resource: doc42, Context: client.Context{"ip": "10.0.0.1"}},
	} {
		a, err := h.Evaluation(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := g.Evaluation(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		same(e.Action.Name, a, b)
	}
	items := []client.Evaluation{{Action: client.Action{Name: "read"}}, {Action: client.Action{Name: "delete"}}, {Action: client.Action{Name: "update"}}}
	for _, sem := range []client.Semantic{"", client.ExecuteAll, client.DenyOnFirstDeny, client.PermitOnFirstPermit} {
		batch := client.Evaluations{Subject: editor, Resource: doc42, Evaluations: items, Options: client.EvaluationsOptions{Semantic: sem}}
		a, err := h.Evaluations(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		b, err := g.Evaluations(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) {
			t.Fatalf("%q: %d HTTP decisions, %d gRPC", sem, len(a), len(b))
		}
		for i := range a {
			same(fmt.Sprintf("%q item %d", sem, i), a[i], b[i])
			if a[i].Context["code"] != b[i].Context["code"] || a[i].Context["reason"] != b[i].Context["reason"] {
				t.Errorf("%q item %d: short-circuit marker HTTP %v, gRPC %v", sem, i, a[i].Context, b[i].Context)
			}
		}
	}
	q := client.SearchQuery{Subject: client.Subject{Type: "user"}, Action: client.Action{Name: "read"}, Resource: doc42, Page: client.Page{Limit: 2}}
	a, err := h.SearchSubject(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.SearchSubject(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Results, b.Results) || a.Page.Count != b.Page.Count || a.Page.Total != b.Page.Total || (a.Page.NextToken == "") != (b.Page.NextToken == "") {
		t.Errorf("subject search: HTTP %+v, gRPC %+v", a, b)
	}
	ra, err := h.SearchResource(ctx, client.SearchQuery{Subject: editor, Action: client.Action{Name: "update"}, Resource: client.Resource{Type: "document"}})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := g.SearchResource(ctx, client.SearchQuery{Subject: editor, Action: client.Action{Name: "update"}, Resource: client.Resource{Type: "document"}})
	if err != nil || !reflect.DeepEqual(ra.Results, rb.Results) {
		t.Errorf("resource search: HTTP %+v, gRPC %+v %v", ra, rb, err)
	}
	aa, err := h.SearchAction(ctx, client.SearchQuery{Subject: editor, Resource: doc42})
	if err != nil {
		t.Fatal(err)
	}
	ab, err := g.SearchAction(ctx, client.SearchQuery{Subject: editor, Resource: doc42})
	if err != nil || !reflect.DeepEqual(aa.Results, ab.Results) {
		t.Errorf("action search: HTTP %+v, gRPC %+v %v", aa, ab, err)
	}
	if n := cnt.n("/oauth2/token"); n != 1 {
		t.Errorf("%d token requests for every gRPC call, want 1", n)
	}
}

func TestGRPCErrors(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	g, _ := newGRPC(t, s)
	_, err := g.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}})
	if e := asError(t, err); e.Status != 400 || e.Code != "invalid_input" || e.Message != "resource: is required" {
		t.Errorf("a missing resource: %+v", e)
	}
	// A client whose token lacks verdict:decide.
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reader, err := client.NewGRPC(conn, client.WithClientCredentials(s.ReaderID, s.ReaderSecret, "verdict:bundles:read"), client.WithTokenURL(s.URL+"/oauth2/token"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = reader.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42})
	if e := asError(t, err); e.Status != 403 || e.Code != "insufficient_scope" || !client.IsForbidden(err) {
		t.Errorf("no decide scope: %+v", e)
	}
	anon, err := client.NewGRPC(conn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42})
	if !client.IsUnauthorized(err) || asError(t, err).Code != "unauthorized" {
		t.Errorf("no token: %v", err)
	}
	if _, err := client.NewGRPC(conn, client.WithClientCredentials("a", "b")); err == nil {
		t.Error("client credentials without a token URL were accepted")
	}
	if _, err := client.NewGRPC(nil); err == nil {
		t.Error("a nil connection was accepted")
	}
}

// TestGRPCRetriesUnavailable: a listener that is gone is UNAVAILABLE,
// retried with back-off until the attempts run out, and reported as a 503
// *Error, never as a decision.
func TestGRPCRetriesUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g, err := client.NewGRPC(conn, client.WithBearerToken("t"),
		client.WithRetry(client.RetryPolicy{MaxAttempts: 3, InitialInterval: 50 * time.Millisecond, MaxInterval: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := g.Evaluation(context.Background(), client.Evaluation{Subject: editor, Action: client.Action{Name: "read"}, Resource: doc42})
	if !client.IsUnavailable(err) || d.Decision {
		t.Fatalf("%+v %v", d, err)
	}
	// Two waits of at least half the back-off each (jitter) passed.
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %v: not retried", took)
	}
}

func ExampleNewGRPC() {
	s, err := sharedServer()
	if err != nil {
		log.Fatal(err)
	}
	// The gRPC listener (server.grpc_addr); tokens come from the HTTP one.
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c, err := client.NewGRPC(conn, client.WithClientCredentials(s.ClientID, s.Secret), client.WithTokenURL(s.URL+"/oauth2/token"))
	if err != nil {
		log.Fatal(err)
	}
	d, err := c.Evaluation(context.Background(), client.Evaluation{
		Subject:  client.Subject{Type: "user", ID: "ed", Properties: map[string]any{"roles": []string{"editor"}}},
		Action:   client.Action{Name: "update"},
		Resource: client.Resource{Type: "document", ID: "42"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("decision:", d.Decision, "reasons:", d.Reasons)
	// Output: decision: true reasons: [editors-read-update]
}
