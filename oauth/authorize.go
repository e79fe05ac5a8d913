package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/users"
)

// OAuth 2.0 and OpenID Connect error codes of the authorization endpoint.
const (
	OAuthAccessDenied            = "access_denied"
	OAuthUnsupportedResponseType = "unsupported_response_type"
	OAuthLoginRequired           = "login_required"
	OAuthConsentRequired         = "consent_required"
	OAuthServerError             = "server_error"
	OAuthRequestNotSupported     = "request_not_supported"
	OAuthRequestURINotSupported  = "request_uri_not_supported"
)

// Scopes of OpenID Connect.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
)

// codeTTL is how long an authorization code can be redeemed.
const codeTTL = 60 * time.Second

// maxParam bounds each authorization parameter (state, nonce, ...).
const maxParam = 512

// CheckRedirectURI checks a redirect URI a client registers: absolute,
// https (http only for a loopback host: localhost, 127.0.0.1, [::1]) or a
// private-use scheme with a dot in it (RFC 8252 §7.1), no fragment, no
// user info, no "*".
func CheckRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || raw == "" || len(raw) > 2048:
		return fmt.Errorf("%q is not a URL", raw)
	case !u.IsAbs():
		return fmt.Errorf("%q is not absolute", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%q has a fragment", raw)
	case strings.Contains(raw, "*"):
		return fmt.Errorf("%q has a wildcard; register each URI exactly", raw)
	case u.User != nil:
		return fmt.Errorf("%q has user info", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: http is allowed only for localhost, 127.0.0.1 and [::1]; use https", raw)
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("%q: a native app's scheme must be a reversed domain name such as com.example.app", raw)
		}
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// AuthorizeRequest is the query of GET /oauth2/authorize.
type AuthorizeRequest struct {
	ResponseType        string
	ClientID            string
	RedirectURI         string
	Scope               string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	// Prompt is OpenID Connect's: "", "none", "login" or "consent".
	Prompt string
	// MaxAge is OpenID Connect's max_age in seconds, "" for none.
	MaxAge       string
	ResponseMode string
	Request      string
	RequestURI   string
}

// Authorization is a checked authorization request.
type Authorization struct {
	Client        Client
	RedirectURI   string
	Scopes        []string
	State         string
	Nonce         string
	CodeChallenge string
	Prompt        string
	// MaxAge is max_age; negative when none was given.
	MaxAge time.Duration
}

// OpenID reports whether the request is an OpenID Connect one.
func (a Authorization) OpenID() bool { return slices.Contains(a.Scopes, ScopeOpenID) }

// AuthorizeError is a refused authorization request. When Redirect is
// false the client or redirect URI could not be trusted: the user sees the
// error and is never sent anywhere (no open redirect). Otherwise the error
// goes back to the client's redirect URI (Location).
type AuthorizeError struct {
	Code        string
	Description string
	Redirect    bool
	RedirectURI string
	State       string
}

// Error returns "code: description".
func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

// Location is the redirect URI with error, error_description, state and
// iss (RFC 9207) in its query.
func (e *AuthorizeError) Location(issuer string) string {
	q := url.Values{"error": {e.Code}, "error_description": {e.Description}, "iss": {issuer}}
	if e.State != "" {
		q.Set("state", e.State)
	}
	return withQuery(e.RedirectURI, q)
}

// withQuery adds q to the query of raw (a registered redirect URI, so it
// parses).
func withQuery(raw string, q url.Values) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	all := u.Query()
	for k, v := range q {
		all[k] = v
	}
	u.RawQuery = all.Encode()
	return u.String()
}

// CodeStore keeps authorization codes (see package store's AuthCodes; the
// wiring maps its not-found error to ErrUnknownCode).
type CodeStore interface {
	CreateCode(ctx context.Context, c AuthCode) error
	RedeemCode(ctx context.Context, hash, family, accessJTI string) (AuthCode, bool, error)
}

// ErrUnknownCode means no live code has that hash.
var ErrUnknownCode = errors.New("unknown or expired authorization code")

// AuthCode mirrors store.AuthCode field for field.
type AuthCode struct {
	Hash                string
	ClientID            string
	RedirectURI         string
	CodeChallenge       string
	CodeChallengeMethod string
	UserID              string
	SessionID           string
	Scopes              []string
	Nonce               string
	AuthTime            time.Time
	AMR                 []string
	ExpiresAt           time.Time
	Redeemed            bool
	Family              string
	AccessJTI           string
}

// People is what the authorization server needs of the users service.
type People interface {
	Get(ctx context.Context, id string) (users.User, error)
	SessionLive(ctx context.Context, id string) (bool, error)
	RecordFamily(ctx context.Context, userID string, f users.UserFamily) error
}

var _ People = (*users.Service)(nil)

// Authorizer checks authorization requests, issues authorization codes
// and redeems them (the authorization_code grant). It is safe for
// concurrent use.
type Authorizer struct {
	issuer    string
	clients   *Clients
	codes     CodeStore
	people    People
	refresher *Refresher
	ids       *IDTokenIssuer
	now       func() time.Time
}

// NewAuthorizer returns an Authorizer; every dependency is required.
func NewAuthorizer(issuer string, clients *Clients, codes CodeStore, people People, refresher *Refresher, ids *IDTokenIssuer, now func() time.Time) (*Authorizer, error) {
	if clients == nil || codes == nil || people == nil || refresher == nil || ids == nil {
		return nil, errors.New("authorize: every dependency is required")
	}
	if now == nil {
		now = time.Now
	}
	return &Authorizer{issuer: issuer, clients: clients, codes: codes, people: people, refresher: refresher, ids: ids, now: now}, nil
}

// Client returns a registered client (for RP-initiated logout); an error
// wrapping ErrUnknownClient if none.
func (a *Authorizer) Client(ctx context.Context, id string) (Client, error) {
	return a.clients.Lookup(ctx, id)
}

// Issuer is the iss the authorizer's answers carry.
func (a *Authorizer) Issuer() string { return a.issuer }

// Check validates an authorization request. The client and redirect URI
// are checked first: an unknown client, one without the
// authorization_code grant, or a redirect URI that is not exactly one of
// the client's gives an *AuthorizeError that must not redirect. Every
// later problem (response type, PKCE, scope, prompt) redirects back to
// the client. A store failure is returned as it is.
func (a *Authorizer) Check(ctx context.Context, r AuthorizeRequest) (Authorization, error) {
	local := func(desc string) error { return &AuthorizeError{Code: OAuthInvalidRequest, Description: desc} }
	if r.ClientID == "" {
		return Authorization{}, local("client_id is required")
	}
	cl, err := a.clients.Lookup(ctx, r.ClientID)
	if errors.Is(err, ErrUnknownClient) {
		return Authorization{}, local("unknown client_id")
	}
	if err != nil {
		return Authorization{}, err
	}
	if !slices.Contains(cl.Grants, GrantAuthorizationCode) {
		return Authorization{}, local("this client may not use the authorization code flow")
	}
	if r.RedirectURI == "" {
		return Authorization{}, local("redirect_uri is required")
	}
	if !slices.Contains(cl.RedirectURIs, r.RedirectURI) {
		return Authorization{}, local("redirect_uri is not registered for this client (it must match exactly)")
	}
	if len(r.State) > maxParam {
		return Authorization{}, local("state is too long")
	}
	back := func(code, desc string) error {
		return &AuthorizeError{Code: code, Description: desc, Redirect: true, RedirectURI: r.RedirectURI, State: r.State}
	}
	switch {
	case r.Request != "":
		return Authorization{}, back(OAuthRequestNotSupported, "request objects are not supported")
	case r.RequestURI != "":
		return Authorization{}, back(OAuthRequestURINotSupported, "request_uri is not supported")
	case r.ResponseType == "":
		return Authorization{}, back(OAuthInvalidRequest, "response_type is required")
	case r.ResponseType != "code":
		return Authorization{}, back(OAuthUnsupportedResponseType, "only response_type=code is supported (OAuth 2.1: no implicit flow)")
	case r.ResponseMode != "" && r.ResponseMode != "query":
		return Authorization{}, back(OAuthInvalidRequest, "only response_mode=query is supported")
	case r.CodeChallenge == "":
		return Authorization{}, back(OAuthInvalidRequest, "code_challenge is required (PKCE with S256)")
	case r.CodeChallengeMethod != "S256":
		return Authorization{}, back(OAuthInvalidRequest, "code_challenge_method must be S256")
	case !validChallenge(r.CodeChallenge):
		return Authorization{}, back(OAuthInvalidRequest, "code_challenge must be the 43-character base64url SHA-256 of the verifier")
	case len(r.Nonce) > maxParam:
		return Authorization{}, back(OAuthInvalidRequest, "nonce is too long")
	}
	scopes := dedupe(strings.Fields(r.Scope))
	if len(scopes) == 0 {
		return Authorization{}, back(OAuthInvalidScope, "scope is required")
	}
	if err := a.clients.Allowed(cl, GrantAuthorizationCode, scopes); err != nil {
		return Authorization{}, back(OAuthInvalidScope, "this client may not ask for some of these scopes: "+r.Scope)
	}
	openID := slices.Contains(scopes, ScopeOpenID)
	if openID && r.Nonce == "" {
		return Authorization{}, back(OAuthInvalidRequest, "nonce is required with scope openid")
	}
	az := Authorization{
		Client: cl, RedirectURI: r.RedirectURI, Scopes: scopes, State: r.State, Nonce: r.Nonce,
		CodeChallenge: r.CodeChallenge, MaxAge: -1,
	}
	for _, p := range strings.Fields(r.Prompt) {
		switch p {
		case "none", "login", "consent":
			if az.Prompt != "" {
				return Authorization{}, back(OAuthInvalidRequest, "prompt takes one value")
			}
			az.Prompt = p
		default:
			return Authorization{}, back(OAuthInvalidRequest, "prompt must be none, login or consent")
		}
	}
	if r.MaxAge != "" {
		n, err := strconv.Atoi(r.MaxAge)
		if err != nil || n < 0 {
			return Authorization{}, back(OAuthInvalidRequest, "max_age must be a number of seconds")
		}
		az.MaxAge = time.Duration(n) * time.Second
	}
	return az, nil
}

// validChallenge reports whether c is a base64url SHA-256 (43 characters).
func validChallenge(c string) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil && len(raw) == sha256.Size
}

// UserScopes returns the scopes a user may be granted of those asked:
// Verdict's own scopes (verdict:...) other than verdict:decide only when
// the user holds a role of the same name, so that a client with
// verdict:admin cannot make every user an administrator. The others are
// left out (the token carries what was granted).
func UserScopes(u users.User, asked []string) []string {
	out := make([]string, 0, len(asked))
	for _, s := range asked {
		if strings.HasPrefix(s, authn.ScopeNamespace) && s != authn.ScopeDecide && !slices.Contains(u.Roles, s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// SignIn is the signed-in user an authorization request is answered
// for.
type SignIn struct {
	User      users.User
	SessionID string
	AuthTime  time.Time
	AMR       []string
}

// IssueCode makes an authorization code for the signed-in user, bound to the
// client, the redirect URI and the PKCE challenge, redeemable once within
// 60 seconds, and returns the redirect URI to send the user to (code,
// state and iss in its query).
func (a *Authorizer) IssueCode(ctx context.Context, az Authorization, g SignIn) (string, error) {
	raw, err := randomID()
	if err != nil {
		return "", err
	}
	code := "vc_" + raw
	err = a.codes.CreateCode(ctx, AuthCode{
		Hash: codeHash(code), ClientID: az.Client.ID, RedirectURI: az.RedirectURI,
		CodeChallenge: az.CodeChallenge, CodeChallengeMethod: "S256",
		UserID: g.User.ID, SessionID: g.SessionID, Scopes: UserScopes(g.User, az.Scopes), Nonce: az.Nonce,
		AuthTime: g.AuthTime.UTC(), AMR: slices.Clone(g.AMR), ExpiresAt: a.now().UTC().Add(codeTTL),
	})
	if err != nil {
		return "", fmt.Errorf("authorize: store code: %w", err)
	}
	q := url.Values{"code": {code}, "iss": {a.issuer}}
	if az.State != "" {
		q.Set("state", az.State)
	}
	return withQuery(az.RedirectURI, q), nil
}

func codeHash(code string) string {
	h := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// checkVerifier checks a PKCE code_verifier (RFC 7636 §4.1: 43 to 128
// unreserved characters) against the stored S256 challenge.
func checkVerifier(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, r := range verifier {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}
