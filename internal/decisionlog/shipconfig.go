package decisionlog

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/pemutil"
)

// HTTP is the decision_logs.http section: the receiver of sink http and
// how batches reach it.
type HTTP struct {
	// URL receives the batches (POST), such as https://collector/logs. An
	// http:// URL is allowed, but not with tls settings, nor with a bearer
	// token unless its host is a loopback address.
	URL string `yaml:"url"`
	// Timeout bounds one upload, and the last attempt at stop (default
	// 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MinDelay and MaxDelay bound the wait between uploads, chosen at
	// random between them so that replicas do not upload in step (defaults
	// 1s and 5s); a full batch goes at once. After a failed upload the
	// wait backs off from MinDelay, doubling up to MaxDelay.
	MinDelay time.Duration `yaml:"min_delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
	// BatchMaxBytes bounds the JSON array of one upload, before gzip
	// (default 1 MiB). A record larger than it goes alone.
	BatchMaxBytes int `yaml:"batch_max_bytes"`
	// BatchMaxRecords bounds the events of one upload (default 1000).
	BatchMaxRecords int `yaml:"batch_max_records"`
	// Buffer is how many encoded records wait to ship at most, beside the
	// batch being uploaded (default 10000); beyond it, or beyond
	// BufferMaxBytes, the oldest are dropped and counted.
	Buffer int `yaml:"buffer"`
	// BufferMaxBytes bounds the encoded records waiting to ship (default
	// 64 MiB).
	BufferMaxBytes int `yaml:"buffer_max_bytes"`
	// Headers are added to every upload (an API key, a tenant). They must
	// not set Content-Type, Content-Encoding, Content-Length or Host, nor
	// Authorization together with a bearer token.
	Headers map[string]string `yaml:"headers"`
	// BearerToken is sent as Authorization: Bearer; BearerTokenFile holds
	// it instead (read at start, surrounding space trimmed). At most one.
	BearerToken     string `yaml:"bearer_token"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	// TLS are the client's CA and certificate, for https URLs.
	TLS ClientTLS `yaml:"tls"`
	// Labels are added to every event's labels; id and version are
	// Verdict's and cannot be set.
	Labels map[string]string `yaml:"labels"`
}

// ClientTLS is the TLS of an https receiver: the roots its certificate is
// verified against, and a client certificate for mutual TLS.
type ClientTLS struct {
	// CAFile holds the PEM certificates of the receiver's CA ("" the system
	// roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the PEM client certificate and key sent to
	// a receiver that asks for one; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultHTTP returns the defaults of decision_logs.http: no URL, uploads
// every 1 to 5 s, batches of at most 1 MiB or 1,000 records, 10,000
// records (at most 64 MiB) waiting to ship.
func DefaultHTTP() HTTP {
	return HTTP{Timeout: 10 * time.Second, MinDelay: time.Second, MaxDelay: 5 * time.Second,
		BatchMaxBytes: 1 << 20, BatchMaxRecords: 1000, Buffer: 10000, BufferMaxBytes: 64 << 20}
}

// reservedHeaders are set by the shipper; decision_logs.http.headers may
// not.
var reservedHeaders = []string{"Content-Type", "Content-Encoding", "Content-Length", "Host"}

// validate checks h's bounds and shapes, whatever the sink: the defaults
// pass. It reads no file.
func (h HTTP) validate() error {
	var errs []error
	if h.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("decision_logs.http.timeout must be positive, got %s", h.Timeout))
	}
	if h.MinDelay <= 0 || h.MaxDelay < h.MinDelay {
		errs = append(errs, fmt.Errorf("decision_logs.http.min_delay must be positive and max_delay at least min_delay, got %s and %s", h.MinDelay, h.MaxDelay))
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"batch_max_bytes", h.BatchMaxBytes}, {"batch_max_records", h.BatchMaxRecords}, {"buffer", h.Buffer}, {"buffer_max_bytes", h.BufferMaxBytes}} {
		if n.v <= 0 {
			errs = append(errs, fmt.Errorf("decision_logs.http.%s must be positive, got %d", n.key, n.v))
		}
	}
	if h.BearerToken != "" && h.BearerTokenFile != "" {
		errs = append(errs, errors.New("decision_logs.http: set bearer_token or bearer_token_file, not both"))
	}
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		errs = append(errs, errors.New("decision_logs.http.tls: cert_file and key_file go together"))
	}
	for name, v := range h.Headers {
		switch {
		case !validHeaderName(name):
			errs = append(errs, fmt.Errorf("decision_logs.http.headers: %q is no header name", name))
		case !validHeaderValue(v):
			// The value may be a secret: never in an error.
			errs = append(errs, fmt.Errorf("decision_logs.http.headers: the value of %s is no header value", name))
		case containsFold(reservedHeaders, name):
			errs = append(errs, fmt.Errorf("decision_logs.http.headers: %s is set by Verdict", name))
		case strings.EqualFold(name, "Authorization") && h.bearer():
			errs = append(errs, errors.New("decision_logs.http.headers: Authorization and a bearer token: set one"))
		}
	}
	for k := range h.Labels {
		if k == "id" || k == "version" {
			errs = append(errs, fmt.Errorf("decision_logs.http.labels: %s is set by Verdict", k))
		}
	}
	return errors.Join(errs...)
}

func (h HTTP) bearer() bool { return h.BearerToken != "" || h.BearerTokenFile != "" }

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s holds no control character but tab
// (no CR or LF to split a request with).
func validHeaderValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// validateTarget checks what sink http needs: a URL it can post to, TLS
// settings that apply, and files that load.
func (h HTTP) validateTarget() error {
	var errs []error
	u, err := url.Parse(h.URL)
	switch {
	case strings.TrimSpace(h.URL) == "":
		return errors.New("decision_logs.http.url is required with sink http")
	case err != nil:
		// Not err itself: it quotes the URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("decision_logs.http.url does not parse: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("decision_logs.http.url must be an http:// or https:// URL, got scheme %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("decision_logs.http.url has no host"))
	case u.User != nil:
		errs = append(errs, errors.New("decision_logs.http.url must not hold credentials: use bearer_token_file or headers"))
	case u.Scheme == "http" && h.TLS != (ClientTLS{}):
		errs = append(errs, errors.New("decision_logs.http.tls: the url is http://, so no TLS is used: drop one or the other"))
	case u.Scheme == "http" && h.bearer() && !loopback(u.Hostname()):
		errs = append(errs, errors.New("decision_logs.http: a bearer token goes over https only (or to a loopback address)"))
	}
	if _, err := h.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	if _, err := h.token(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// token is the bearer token, read from BearerTokenFile if set ("" for
// none).
func (h HTTP) token() (string, error) {
	if h.BearerTokenFile == "" {
		return h.BearerToken, nil
	}
	raw, err := os.ReadFile(h.BearerTokenFile)
	if err != nil {
		return "", fmt.Errorf("decision_logs.http.bearer_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" || !validHeaderValue(tok) {
		return "", errors.New("decision_logs.http.bearer_token_file: the file holds no token that fits a header")
	}
	return tok, nil
}

// tlsConfig is the client TLS of h.TLS; nil without settings (the system
// roots, no client certificate).
func (h HTTP) tlsConfig() (*tls.Config, error) {
	if h.TLS == (ClientTLS{}) {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	var errs []error
	if h.TLS.CAFile != "" {
		roots, err := pemutil.LoadCAs(h.TLS.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("decision_logs.http.tls.ca_file: %w", err))
		}
		c.RootCAs = roots
	}
	if h.TLS.CertFile != "" && h.TLS.KeyFile != "" {
		pair, err := tls.LoadX509KeyPair(h.TLS.CertFile, h.TLS.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("decision_logs.http.tls: the client certificate: %w", err))
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, errors.Join(errs...)
}

// client is the HTTP client of h: its own transport (h's TLS, the
// environment's proxy), and redirects not followed, so that a token never
// goes to another address; a 3xx is a rejected batch.
func (h HTTP) client() (*http.Client, error) {
	tc, err := h.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}
