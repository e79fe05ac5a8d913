package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// tlsIssuer is an external issuer served over HTTPS on 127.0.0.1 by
// httptest's self-signed certificate: an OpenID discovery document and
// the JWKS it names, each counting its requests.
type tlsIssuer struct {
	srv                    *httptest.Server
	discoHits, jwksHits    atomic.Int64
	discoveryURL, certFile string // the certificate as PEM, for ca_file
	key                    jwk.Key
}

func newTLSIssuer(t *testing.T) *tlsIssuer {
	t.Helper()
	x := &tlsIssuer{key: jwttest.GenKey(t, "ES256", "tls-k", true)}
	pub, err := x.key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		x.discoHits.Add(1)
		_, _ = w.Write(jwttest.MustJSON(t, map[string]any{"issuer": x.srv.URL, "jwks_uri": x.srv.URL + "/jwks"}))
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		x.jwksHits.Add(1)
		_, _ = w.Write(jwttest.MustJSON(t, map[string]any{"keys": []jwk.Key{pub}}))
	})
	x.srv = httptest.NewUnstartedServer(mux)
	x.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	x.srv.StartTLS()
	t.Cleanup(x.srv.Close)
	x.discoveryURL = x.srv.URL + "/.well-known/openid-configuration"
	x.certFile = writePEM(t, "issuer.pem", x.srv.Certificate().Raw)
	return x
}

func (x *tlsIssuer) config(caFile string) TrustedIssuer {
	return TrustedIssuer{Issuer: x.srv.URL, Audiences: []string{jwttest.Audience}, DiscoveryURL: x.discoveryURL, CAFile: caFile}
}

func (x *tlsIssuer) token(t *testing.T, now time.Time) string {
	t.Helper()
	h := map[string]any{"alg": "ES256", "kid": "tls-k", "typ": "JWT"}
	c := map[string]any{"iss": x.srv.URL, "sub": "erin", "aud": jwttest.Audience, "exp": now.Unix() + 300, "iat": now.Unix()}
	return jwttest.SignCompact(t, x.key, "ES256", jwttest.MustJSON(t, h), jwttest.MustJSON(t, c))
}

// writePEM writes der as a PEM CERTIFICATE to a file in a temporary
// directory and returns its path.
func writePEM(t *testing.T, name string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// otherCA writes the certificate of a CA unrelated to httptest's.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, "other-ca.pem", der)
}

// wantUnknownAuthority checks that err is ErrUnavailable caused by an
// x509 "unknown authority" failure of the TLS handshake.
func wantUnknownAuthority(t *testing.T, err error) {
	t.Helper()
	var ua x509.UnknownAuthorityError
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) || !errors.As(err, &ua) {
		t.Fatalf("err = %v, want ErrUnavailable caused by an unknown authority", err)
	}
}

// TestVerifyExternalCAFile: an issuer on HTTPS with a certificate no
// system root vouches for is refused without ca_file, trusted with its
// certificate as ca_file, and refused with some other CA as ca_file (the
// file replaces the system roots). Issuers without ca_file keep the
// Verifier's default client.
func TestVerifyExternalCAFile(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()

	t.Run("system roots", func(t *testing.T) {
		x := newTLSIssuer(t)
		e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{x.config("")} })
		_, err := e.v.Verify(ctx, x.token(t, e.clk.Now()))
		wantUnknownAuthority(t, err)
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("err = %v, want the x509 error", err)
		}
		if x.discoHits.Load() != 0 || x.jwksHits.Load() != 0 {
			t.Fatalf("the server answered %d discovery and %d JWKS requests through a failed handshake", x.discoHits.Load(), x.jwksHits.Load())
		}
	})

	t.Run("ca_file with the issuer's certificate", func(t *testing.T) {
		x := newTLSIssuer(t)
		plain := jwttest.NewIssuer(t) // http on loopback, the default client
		k := jwttest.GenKey(t, "ES256", "k", true)
		plain.Publish(t, k)
		e := newEnv(t, AlgES256, func(c *VerifierConfig) {
			c.External = []TrustedIssuer{x.config(x.certFile), jwksIssuer(plain)}
		})
		if c := mustVerify(t, e.v, x.token(t, e.clk.Now())); c.Subject() != "erin" {
			t.Fatalf("claims %v", c)
		}
		if x.discoHits.Load() != 1 || x.jwksHits.Load() != 1 {
			t.Fatalf("discovery fetched %d, JWKS %d times; want 1, 1", x.discoHits.Load(), x.jwksHits.Load())
		}
		mustVerify(t, e.v, plain.Token(t, e.clk.Now(), k, "ES256", nil))
		if tr := e.v.issuers[x.srv.URL].remote.httpc; tr == e.v.httpc {
			t.Fatal("the issuer with a ca_file shares the default client")
		}
		if tr := e.v.issuers[plain.URL()].remote.httpc; tr != e.v.httpc {
			t.Fatal("the issuer without a ca_file has a client of its own")
		}
	})

	t.Run("ca_file with another CA", func(t *testing.T) {
		x := newTLSIssuer(t)
		e := newEnv(t, AlgES256, func(c *VerifierConfig) { c.External = []TrustedIssuer{x.config(otherCA(t))} })
		_, err := e.v.Verify(ctx, x.token(t, e.clk.Now()))
		wantUnknownAuthority(t, err)
	})
}

func TestVerifierConfigCAFile(t *testing.T) {
	dir := t.TempDir()
	noCert := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(noCert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable.pem")
	if err := os.WriteFile(unreadable, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	good := otherCA(t)
	cfg := func(self, ext string) VerifierConfig {
		return VerifierConfig{
			Self: TrustedIssuer{Issuer: selfIss, Audiences: []string{selfAud}, CAFile: self},
			External: []TrustedIssuer{
				{Issuer: "https://idp.test", Audiences: []string{"a"}, JWKSURL: "https://idp.test/jwks"},
				{Issuer: "https://corp.test", Audiences: []string{"a"}, JWKSURL: "https://corp.test/jwks", CAFile: ext},
			},
		}
	}
	if err := cfg("", good).Validate(); err != nil {
		t.Fatalf("valid ca_file: %v", err)
	}
	tests := []struct {
		name, self, ext, want string
	}{
		{"missing", "", filepath.Join(dir, "nope.pem"), "tokens.trusted_issuers[1].ca_file: open "},
		{"no certificate", "", noCert, "tokens.trusted_issuers[1].ca_file: " + noCert + " holds no PEM CERTIFICATE"},
		{"a directory", "", dir, "tokens.trusted_issuers[1].ca_file: "},
		{"self", good, "", "self issuer ca_file must be empty"},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct{ name, self, ext, want string }{"unreadable", "", unreadable, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(tt.self, tt.ext)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			if _, err := NewVerifier(c, &Keyring{}, &fakeRevocations{}, nil); err == nil {
				t.Fatal("NewVerifier accepted an invalid config")
			}
		})
	}
}
