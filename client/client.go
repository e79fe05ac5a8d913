package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of a client made by New.
const (
	// DefaultTimeout bounds each call, retries and token fetch included,
	// when its context has no earlier deadline (WithTimeout).
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes is the largest answer read
	// (WithMaxResponseBytes).
	DefaultMaxResponseBytes = 8 << 20
	// DefaultScope is the scope a client-credentials token is asked for
	// when WithClientCredentials names none.
	DefaultScope = "verdict:decide"
)

const userAgent = "verdict-go-client"

// Client calls Verdict's AuthZEN Authorization API over HTTP. It is safe
// for concurrent use, and meant to be made once and shared: it keeps its
// connections and its access token between calls.
type Client struct {
	base    string
	hc      *http.Client
	ownHC   bool
	tokens  *tokenCache // nil without WithClientCredentials or WithTokenSource
	authz   string      // a static Authorization value (bearer token, API key)
	retry   RetryPolicy
	timeout time.Duration
	maxBody int64
	reasons bool
	signed  bool
}

// Option configures a Client made by New.
type Option func(*options)

type options struct {
	hc       *http.Client
	tokenURL string
	cc       *clientcredentials.Config
	ts       oauth2.TokenSource
	authz    string
	creds    int
	margin   time.Duration
	retry    RetryPolicy
	timeout  time.Duration
	maxBody  int64
	reasons  bool
	signed   bool
	errs     []error
}

// WithHTTPClient sends every request, token requests included, with hc
// instead of the client New makes (one transport with keep-alives and up
// to 64 idle connections to Verdict). Close then leaves hc's connections
// alone.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) {
		if hc == nil {
			o.errs = append(o.errs, errors.New("WithHTTPClient: nil client"))
		}
		o.hc = hc
	}
}

// WithClientCredentials authenticates with an access token from Verdict's
// token endpoint (OAuth 2.0 client credentials, client_secret_basic), for
// scopes (default verdict:decide). The token is fetched on first use,
// reused across calls, and replaced before it expires (see
// WithTokenRefreshMargin). When a decision route answers 401 to a cached
// token (revoked, or its signing key revoked), the token is dropped, a new
// one fetched, and the call sent once more. A refused secret is an *Error
// with status 401 and code invalid_client.
func WithClientCredentials(clientID, secret string, scopes ...string) Option {
	return func(o *options) {
		o.creds++
		if clientID == "" || secret == "" {
			o.errs = append(o.errs, errors.New("WithClientCredentials: client id and secret are required"))
		}
		if len(scopes) == 0 {
			scopes = []string{DefaultScope}
		}
		o.cc = &clientcredentials.Config{ClientID: clientID, ClientSecret: secret, Scopes: scopes, AuthStyle: oauth2.AuthStyleInHeader}
	}
}

// WithTokenURL is the token endpoint of WithClientCredentials; the default
// is the base URL's /oauth2/token.
func WithTokenURL(tokenURL string) Option {
	return func(o *options) { o.tokenURL = tokenURL }
}

// WithTokenRefreshMargin is how long before its expiry a token of
// WithClientCredentials or WithTokenSource is replaced: d (default
// DefaultRefreshMargin, 30s), but at most half the token's lifetime, so
// that a short-lived token is still reused. 0 replaces a token only once
// it has expired.
func WithTokenRefreshMargin(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("WithTokenRefreshMargin: %s is negative", d))
		}
		o.margin = d
	}
}

// WithTokenSource authenticates with the Bearer tokens of ts, cached as
// WithClientCredentials caches its own. ts.Token takes no context: a slow
// source is not bounded by the call's deadline.
func WithTokenSource(ts oauth2.TokenSource) Option {
	return func(o *options) {
		o.creds++
		if ts == nil {
			o.errs = append(o.errs, errors.New("WithTokenSource: nil source"))
		}
		o.ts = ts
	}
}

// WithBearerToken authenticates with a fixed access token; a 401 is
// returned as it is.
func WithBearerToken(token string) Option {
	return func(o *options) {
		o.creds++
		if token == "" {
			o.errs = append(o.errs, errors.New("WithBearerToken: empty token"))
		}
		o.authz = "Bearer " + token
	}
}

// WithAPIKey authenticates with a Verdict API key (vk_...), sent as
// Authorization: ApiKey <key>.
func WithAPIKey(key string) Option {
	return func(o *options) {
		o.creds++
		if key == "" {
			o.errs = append(o.errs, errors.New("WithAPIKey: empty key"))
		}
		o.authz = "ApiKey " + key
	}
}

// WithRetry replaces the default retry policy (3 attempts, 100ms doubling
// up to 2s); zero fields of p take those defaults, and
// RetryPolicy{MaxAttempts: 1} never retries.
func WithRetry(p RetryPolicy) Option {
	return func(o *options) { o.retry = p.withDefaults() }
}

// WithTimeout bounds each call, all its attempts and token fetch included,
// to d (default DefaultTimeout) when its context has no earlier deadline;
// 0 leaves calls to their context alone.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("WithTimeout: %s is negative", d))
		}
		o.timeout = d
	}
}

// WithMaxResponseBytes is the largest answer read (default
// DefaultMaxResponseBytes); a larger one fails the call.
func WithMaxResponseBytes(n int64) Option {
	return func(o *options) {
		if n <= 0 {
			o.errs = append(o.errs, fmt.Errorf("WithMaxResponseBytes: %d is not positive", n))
		}
		o.maxBody = n
	}
}

// WithReasons asks for every decision's context (X-Verdict-Reasons: true),
// so that Decision.Reasons and Revision are set. Without it they are set
// only on a decision that carries an error (and when the server sets
// server.authzen_reasons).
func WithReasons() Option {
	return func(o *options) { o.reasons = true }
}

// WithSignedDecisions asks for every decision of the client signed
// ("options": {"signed": true} over HTTP, signed over gRPC), so that
// Decision.Signature holds a compact JWS of it, verifiable against the
// server's /.well-known/jwks.json. A signed answer carries its context
// without WithReasons. A server without signing keys refuses every
// decision call with an *Error (400, code invalid_input); one that cannot
// sign now, with 503 signing_unavailable (retried as any 503): no decision
// is then answered unsigned.
func WithSignedDecisions() Option {
	return func(o *options) { o.signed = true }
}

// New returns a client of the Verdict at baseURL (http or https, with an
// optional path prefix, no query or user info). Without a credential
// option it sends none (a server in --dev mode on loopback). It fails on
// an invalid URL, an invalid option, or more than one credential option;
// it sends nothing.
func New(baseURL string, opts ...Option) (*Client, error) {
	base, err := checkURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	o := options{margin: DefaultRefreshMargin, retry: RetryPolicy{}.withDefaults(), timeout: DefaultTimeout, maxBody: DefaultMaxResponseBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.creds > 1 {
		o.errs = append(o.errs, errors.New("use one of WithClientCredentials, WithTokenSource, WithBearerToken and WithAPIKey"))
	}
	if o.tokenURL != "" && o.cc == nil {
		o.errs = append(o.errs, errors.New("WithTokenURL needs WithClientCredentials"))
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{base: base, hc: o.hc, authz: o.authz, retry: o.retry, timeout: o.timeout, maxBody: o.maxBody, reasons: o.reasons, signed: o.signed}
	if c.hc == nil {
		c.hc, c.ownHC = &http.Client{Transport: newTransport()}, true
	}
	switch {
	case o.cc != nil:
		o.cc.TokenURL = base + "/oauth2/token"
		if o.tokenURL != "" {
			if o.cc.TokenURL, err = checkURL(o.tokenURL); err != nil {
				return nil, fmt.Errorf("client: token URL: %w", err)
			}
		}
		cc, hc := o.cc, c.hc
		c.tokens = newTokenCache(func(ctx context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
		}, o.margin)
	case o.ts != nil:
		ts := o.ts
		c.tokens = newTokenCache(func(context.Context) (*oauth2.Token, error) { return ts.Token() }, o.margin)
	}
	return c, nil
}

// newTransport is the transport of a client New makes: the default
// transport's dialer, proxy and TLS settings, with room for many idle
// connections to the one host a client talks to.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 100
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// checkURL accepts an absolute http(s) URL without user info, query or
// fragment, and returns it without a trailing slash.
func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q is not an http or https URL", raw)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return "", errors.New("the URL must not hold user info: use a credential option")
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "?#"):
		return "", fmt.Errorf("%q must have no query or fragment", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Close closes the idle connections of the transport New made (none of a
// WithHTTPClient client's). It never fails; the client stays usable, and a
// later call opens a new connection.
func (c *Client) Close() error {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// post sends v as JSON to path and returns the 200 answer's header and
// body, under the client's timeout and retry policy.
func (c *Client) post(ctx context.Context, path string, v any) (http.Header, []byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("verdict: encode the request: %w", err)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var h http.Header
	var body []byte
	err = c.retry.run(ctx, c.tokens, "POST "+path, func(ctx context.Context) (tok string, err error) {
		h, body, tok, err = c.once(ctx, path, payload)
		return tok, err
	})
	return h, body, err
}

// once sends one request. tok is the cached access token it presented, ""
// for none.
func (c *Client) once(ctx context.Context, path string, payload []byte) (h http.Header, body []byte, tok string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(payload))
	if err != nil {
		return nil, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if c.reasons {
		req.Header.Set("X-Verdict-Reasons", "true")
	}
	switch {
	case c.tokens != nil:
		t, err := c.tokens.token(ctx)
		if err != nil {
			return nil, nil, "", err
		}
		tok = t.AccessToken
		req.Header.Set("Authorization", "Bearer "+tok)
	case c.authz != "":
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, tok, err
	}
	defer closeBody(resp.Body)
	body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, nil, tok, fmt.Errorf("verdict: POST %s: reading the answer: %w", path, err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, nil, tok, fmt.Errorf("verdict: POST %s: the answer is over %d bytes (WithMaxResponseBytes)", path, c.maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, tok, newError(resp.StatusCode, resp.Header, body)
	}
	return resp.Header, body, tok, nil
}

// closeBody reads what is left of a body (a little: enough for the
// connection to be reused, not so much that a huge answer is read to the
// end) and closes it.
func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	_ = b.Close()
}
