package client_test

// Signed decisions and cache hints, over both transports, against a
// server.Server and the gRPC server on top of it (as grpcapi's tests start
// them): with the token ring signing decisions or without any signer, and
// the quickstart policy under a manifest that allows a 60-second hint.

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/client"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/oauth/oauthtest"
	"github.com/verdictpdp/verdict/pdp"
	"github.com/verdictpdp/verdict/server"
)

// hintManifest lets every decision of the bundle be kept 60 seconds.
const hintManifest = `{"revision":"r1","metadata":{"verdict":{"max_cache_ttl":60}}}`

// signingServer is a Verdict HTTP server and its gRPC server, on loopback.
type signingServer struct {
	URL, GRPCAddr string
	// Token is an access token of client "gw" with verdict:decide.
	Token string
}

type noRevocations struct{}

func (noRevocations) Revoked(context.Context, string) (bool, error) { return false, nil }

// startSigning serves the quickstart policy under hintManifest, signing
// decisions (and serving the JWKS) when sign is true.
func startSigning(t *testing.T, sign bool) *signingServer {
	t.Helper()
	files := map[string][]byte{".manifest": []byte(hintManifest)}
	for _, f := range []string{"documents.verdict.yaml", "data.json"} {
		b, err := os.ReadFile(filepath.Join("..", "policies", "quickstart", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	b, err := bundles.FromFiles(files, bundles.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	a, err := mgr.Prepare(context.Background(), []*bundles.Bundle{b})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Activate(a)
	iss, v, ring := oauthtest.TokensAndKeys(t, noRevocations{})
	fa, err := forward.New(forward.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	opts := []server.Option{server.WithAuth(v, false), server.WithForwardAuth(fa)}
	if sign {
		opts = append(opts, server.WithJWKS(ring), server.WithDecisionSigner(ring, oauthtest.Issuer))
	}
	cfg := server.DefaultConfig()
	srv, err := server.New(cfg, mgr, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := grpcapi.New(srv, grpcapi.Config{Forward: fa, Refusal: server.Refusal, TLS: srv.GRPCTLS(false),
		MaxMessageBytes: cfg.BodyLimit, ShutdownTimeout: time.Second, Registry: srv.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	httpDone, grpcDone := make(chan error, 1), make(chan error, 1)
	go func() { httpDone <- srv.Serve(ctx, hl) }()
	go func() { grpcDone <- g.Serve(ctx, gl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-grpcDone; err != nil {
			t.Errorf("grpc serve: %v", err)
		}
		<-httpDone
		srv.Close()
	})
	at, err := iss.Issue("gw", "gw", []string{server.ScopeDecide}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &signingServer{URL: "http://" + hl.Addr().String(), GRPCAddr: gl.Addr().String(), Token: at.Token}
}

// transports are a client of s over HTTP and one over gRPC, with the
// token and opts, closed when t ends (before s stops).
func (s *signingServer) transports(t *testing.T, opts ...client.Option) map[string]client.Decider {
	t.Helper()
	opts = append([]client.Option{client.WithBearerToken(s.Token)}, opts...)
	h, err := client.New(s.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g, err := client.NewGRPC(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]client.Decider{"HTTP": h, "gRPC": g}
}

// verifySignature verifies d.Signature with go-jose against the JWKS of
// the server at baseURL and returns its claims, failing t unless they
// name d (its decision, its id and revision) and the header's typ is a
// signed decision's.
func verifySignature(t *testing.T, baseURL string, d client.Decision) map[string]any {
	t.Helper()
	if d.Signature == "" {
		t.Fatalf("no signature: %+v", d)
	}
	typ, claims := testutil.VerifyJWS(t, baseURL+"/.well-known/jwks.json", d.Signature)
	if typ != pdp.DecisionJWTType {
		t.Errorf("typ %v, want %s", typ, pdp.DecisionJWTType)
	}
	if d.ID == "" || claims["decision_id"] != d.ID || claims["decision"] != d.Decision || claims["revision"] != d.Revision {
		t.Errorf("claims %v for decision %+v", claims, d)
	}
	if d.Context["signature"] != d.Signature {
		t.Errorf("context.signature %v, Signature %q", d.Context["signature"], d.Signature)
	}
	return claims
}

// TestSignedDecisionsAndTTL: without WithSignedDecisions a decision has no
// signature; with it each decision, single or batch item, carries one
// that verifies against the server's JWKS and names that decision; every
// decision carries the bundle's 60-second hint, on both transports.
func TestSignedDecisionsAndTTL(t *testing.T) {
	s := startSigning(t, true)
	ctx := context.Background()
	update := client.Evaluation{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42}
	del := client.Evaluation{Subject: editor, Action: client.Action{Name: "delete"}, Resource: doc42}
	items := []client.Evaluation{{Action: client.Action{Name: "read"}}, {Action: client.Action{Name: "delete"}}, {Action: client.Action{Name: "update"}}}
	hinted := func(what string, d client.Decision) {
		t.Helper()
		if d.TTL != 60*time.Second || d.Revision != "r1" || d.Context["ttl"] != float64(60) {
			t.Errorf("%s: TTL %s, revision %q, context %v", what, d.TTL, d.Revision, d.Context)
		}
	}

	plain := s.transports(t)
	signed := s.transports(t, client.WithSignedDecisions())
	for _, name := range []string{"HTTP", "gRPC"} {
		t.Run(name, func(t *testing.T) {
			// Not asked for: no signature, but the hint all the same.
			d, err := plain[name].Evaluation(ctx, update)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Decision || d.Signature != "" || d.Context["signature"] != nil {
				t.Errorf("unasked: %+v", d)
			}
			hinted("unasked", d)
			ds, err := plain[name].Evaluations(ctx, client.Evaluations{Subject: editor, Resource: doc42, Evaluations: items})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range ds {
				if d.Signature != "" {
					t.Errorf("unasked item %d: %+v", i, d)
				}
				hinted("unasked item", d)
			}

			// Asked for: an allow and a deny, each signed for itself.
			for _, e := range []struct {
				ev    client.Evaluation
				allow bool
			}{{update, true}, {del, false}} {
				d, err := signed[name].Evaluation(ctx, e.ev)
				if err != nil {
					t.Fatal(err)
				}
				if d.Decision != e.allow {
					t.Fatalf("%s: %+v", e.ev.Action.Name, d)
				}
				c := verifySignature(t, s.URL, d)
				if c["iss"] != oauthtest.Issuer || c["caller"] != "gw" || c["input_sha256"] == "" {
					t.Errorf("%s: claims %v", e.ev.Action.Name, c)
				}
				hinted(e.ev.Action.Name, d)
			}

			// A batch: every item signed with its own decision id; under a
			// short-circuit semantic the semantic still applies.
			for _, tc := range []struct {
				sem  client.Semantic
				want []bool
			}{{client.ExecuteAll, []bool{true, false, true}}, {client.DenyOnFirstDeny, []bool{true, false}}} {
				ds, err := signed[name].Evaluations(ctx, client.Evaluations{Subject: editor, Resource: doc42, Evaluations: items,
					Options: client.EvaluationsOptions{Semantic: tc.sem}})
				if err != nil {
					t.Fatal(err)
				}
				if len(ds) != len(tc.want) {
					t.Fatalf("%s: %d decisions, want %d", tc.sem, len(ds), len(tc.want))
				}
				seen := map[string]bool{}
				for i, d := range ds {
					if d.Decision != tc.want[i] || seen[d.ID] {
						t.Errorf("%s item %d: %+v", tc.sem, i, d)
					}
					seen[d.ID] = true
					verifySignature(t, s.URL, d)
					hinted("batch item", d)
				}
			}
		})
	}
}

// TestSignedDecisionsUnavailable: a server without signing keys refuses a
// request for a signature with 400 invalid_input on both transports, and
// answers the same client's decisions without the option.
func TestSignedDecisionsUnavailable(t *testing.T) {
	s := startSigning(t, false)
	ctx := context.Background()
	update := client.Evaluation{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42}
	plain := s.transports(t)
	signed := s.transports(t, client.WithSignedDecisions())
	for _, name := range []string{"HTTP", "gRPC"} {
		t.Run(name, func(t *testing.T) {
			d, err := signed[name].Evaluation(ctx, update)
			if e := asError(t, err); e.Status != http.StatusBadRequest || e.Code != "invalid_input" || d.Decision {
				t.Errorf("single: %+v, %v", d, e)
			}
			ds, err := signed[name].Evaluations(ctx, client.Evaluations{Subject: editor, Resource: doc42,
				Evaluations: []client.Evaluation{{Action: client.Action{Name: "read"}}}})
			if e := asError(t, err); e.Status != http.StatusBadRequest || e.Code != "invalid_input" || ds != nil {
				t.Errorf("batch: %v, %v", ds, e)
			}
			d, err = plain[name].Evaluation(ctx, update)
			if err != nil || !d.Decision || d.Signature != "" || d.TTL != 60*time.Second {
				t.Errorf("unsigned: %+v, %v", d, err)
			}
		})
	}
}

// TestSignedDecisionsFromApp: the full server (internal/app) signs with
// its token keys, which its JWKS publishes; the quickstart bundle sets no
// max_cache_ttl, so there is no hint: TTL 0.
func TestSignedDecisionsFromApp(t *testing.T) {
	s := sharedFor(t)
	ctx := context.Background()
	h, _ := newClient(t, s, client.WithSignedDecisions())
	g, _ := newGRPC(t, s, client.WithSignedDecisions())
	for name, c := range map[string]client.Decider{"HTTP": h, "gRPC": g} {
		d, err := c.Evaluation(ctx, client.Evaluation{Subject: editor, Action: client.Action{Name: "update"}, Resource: doc42})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if claims := verifySignature(t, s.URL, d); claims["caller"] != s.ClientID || !d.Decision || d.TTL != 0 {
			t.Errorf("%s: %+v, claims %v", name, d, claims)
		}
		if _, ok := d.Context["ttl"]; ok {
			t.Errorf("%s: context %v", name, d.Context)
		}
	}
}
