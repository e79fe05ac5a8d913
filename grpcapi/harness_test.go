package grpcapi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/grpcapi"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/oauth/oauthtest"
	"github.com/verdictpdp/verdict/server"
)

// noRevocations revokes nothing.
type noRevocations struct{}

func (noRevocations) Revoked(context.Context, string) (bool, error) { return false, nil }

// harness is a Verdict HTTP server and the gRPC server on top of it, both
// on real loopback listeners, sharing one decision service.
type harness struct {
	t        *testing.T
	srv      *server.Server
	issuer   *oauth.TokenIssuer
	verifier *authn.Verifier
	httpURL  string
	grpcAddr string
	conn     *grpc.ClientConn
	client   *http.Client
}

type harnessOpts struct {
	cfg     server.Config
	forward forward.Config
	files   map[string]string
	open    bool
	// clientTLS dials gRPC with TLS when not nil.
	clientTLS *tls.Config
	// grpcClientCert requires client certificates on gRPC.
	grpcClientCert bool
	// tp traces both servers when set.
	tp trace.TracerProvider
	// sign lets the server sign decisions (and serve its JWKS).
	sign bool
}

func start(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.cfg.Addr == "" {
		o.cfg = server.DefaultConfig()
	}
	if o.forward.EnvoyPrefix == "" {
		o.forward = forward.DefaultConfig()
	}
	iss, v, ring := oauthtest.TokensAndKeys(t, noRevocations{})
	mgr := bundles.NewManager(bundles.DefaultConfig(), nil)
	if o.files != nil {
		fs := map[string][]byte{}
		for k, v := range o.files {
			fs[k] = []byte(v)
		}
		b, err := bundles.FromFiles(fs, bundles.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		a, err := mgr.Prepare(context.Background(), []*bundles.Bundle{b})
		if err != nil {
			t.Fatal(err)
		}
		mgr.Activate(a)
	}
	fa, err := forward.New(o.forward)
	if err != nil {
		t.Fatal(err)
	}
	opts := []server.Option{server.WithAuth(v, o.open), server.WithForwardAuth(fa), server.WithTracerProvider(o.tp)}
	if o.sign {
		opts = append(opts, server.WithJWKS(ring), server.WithDecisionSigner(ring, oauthtest.Issuer))
	}
	srv, err := server.New(o.cfg, mgr, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := grpcapi.New(srv, grpcapi.Config{Forward: fa, Refusal: server.Refusal, TLS: srv.GRPCTLS(o.grpcClientCert),
		MaxMessageBytes: o.cfg.BodyLimit, ShutdownTimeout: time.Second, Registry: srv.Registry(), TracerProvider: o.tp})
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
	creds := insecure.NewCredentials()
	if o.clientTLS != nil {
		creds = credentials.NewTLS(o.clientTLS)
	}
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-grpcDone; err != nil {
			t.Errorf("grpc serve: %v", err)
		}
		<-httpDone
		srv.Close()
	})
	scheme := "http://"
	if o.cfg.TLS.Enabled() {
		scheme = "https://"
	}
	client := http.DefaultClient
	if o.clientTLS != nil {
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: o.clientTLS}}
	}
	return &harness{t: t, srv: srv, issuer: iss, verifier: v, httpURL: scheme + hl.Addr().String(), grpcAddr: gl.Addr().String(), conn: conn, client: client}
}

// token issues an access token for sub with scopes.
func (h *harness) token(sub string, scopes ...string) string {
	h.t.Helper()
	at, err := h.issuer.Issue(sub, sub, scopes, map[string]any{"roles": []any{"member"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return at.Token
}

// httpDo sends a request to the HTTP server and returns its status,
// headers and body.
func (h *harness) httpDo(method, path, body string, hdr map[string]string) (int, http.Header, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.httpURL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
