package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/verdictpdp/verdict/authn"
)

// Grant types a client may be allowed to use.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantAuthorizationCode is the code flow that signs people in
	// (RFC 6749 §4.1 with PKCE, OAuth 2.1).
	GrantAuthorizationCode = "authorization_code"
)

// grantTokenExchangeShort is the short name of GrantTokenExchange that the
// CLI and admin routes accept; it is stored as the URN.
const grantTokenExchangeShort = "token-exchange"

// Limits on client registrations.
const (
	maxClientIDLen = 128
	// pepperLen is the least (and generated) pepper size: the HMAC-SHA256
	// block gains nothing from more, and less weakens the pepper.
	pepperLen = 32
	// secretLen is the number of random bytes in a client secret (256 bits).
	secretLen = 32
	// maxSecretLen bounds the secret Authenticate hashes, so that a huge
	// form field costs nothing. It does not depend on the client id.
	maxSecretLen = 512
	// maxJWKSLen bounds a registered JWKS.
	maxJWKSLen = 64 << 10
)

// Errors callers branch on.
var (
	// ErrUnknownClient means no client has that id.
	ErrUnknownClient = errors.New("unknown client")
	// ErrClientExists means a client with that id is already registered.
	ErrClientExists = errors.New("client already exists")
	// ErrInvalidClient means client authentication failed: unknown id,
	// wrong or empty secret, or a client that has no secret. The token
	// endpoint answers invalid_client; it never says which.
	ErrInvalidClient = errors.New("invalid client")
	// ErrUnauthorizedClient means the client may not use the grant type it
	// asked for (OAuth unauthorized_client).
	ErrUnauthorizedClient = errors.New("grant type not allowed for client")
	// ErrInvalidScope means the client asked for a scope it does not have
	// (OAuth invalid_scope).
	ErrInvalidScope = errors.New("scope not allowed for client")
)

// Client is one registered OAuth client. It mirrors store.Client field for
// field so that the wiring can convert between the two.
type Client struct {
	// ID is the client_id.
	ID string
	// SecretHMAC is HMAC-SHA256(pepper, secret); empty for a client that
	// authenticates with private_key_jwt only. The secret itself is never
	// stored.
	SecretHMAC []byte
	// JWKS is the client's public keys for private_key_jwt, as a JSON JWK
	// set; empty if it has none.
	JWKS []byte
	// Scopes are the scopes the client may ask for.
	Scopes []string
	// Grants are the grant types the client may use, as their OAuth names
	// (token exchange as its URN).
	Grants []string
	// CreatedAt is when the client was registered.
	CreatedAt time.Time
	// UpdatedAt is when the record last changed (secret rotation).
	UpdatedAt time.Time
	// RedirectURIs are the exact redirect URIs of the authorization-code
	// flow; PostLogoutRedirectURIs those of RP-initiated logout.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// FirstParty clients are the deployment's own: their users are not
	// asked for consent.
	FirstParty bool
	// Public clients (a browser or mobile app) have no secret: they
	// identify themselves by client_id alone, and may use only the
	// authorization-code flow (PKCE binds the code to them) and refresh.
	Public bool
	// Name is shown to users on the consent page.
	Name string
}

// ClientStore is the durable storage of clients. The wiring adapts the
// store package to it, mapping its not-found error to ErrUnknownClient and
// its conflict error to ErrClientExists.
type ClientStore interface {
	// CreateClient adds c; an error wrapping ErrClientExists if the id is
	// taken.
	CreateClient(ctx context.Context, c Client) error
	// UpdateClient replaces an existing client; an error wrapping
	// ErrUnknownClient if there is none.
	UpdateClient(ctx context.Context, c Client) error
	// Client returns one client; an error wrapping ErrUnknownClient if
	// there is none.
	Client(ctx context.Context, id string) (Client, error)
	// ListClients lists every client.
	ListClients(ctx context.Context) ([]Client, error)
	// DeleteClient removes a client; an error wrapping ErrUnknownClient if
	// there is none.
	DeleteClient(ctx context.Context, id string) error
}

// ClientSpec is what `verdict client add` and the admin route register.
type ClientSpec struct {
	// ID is the client_id: 1 to 128 characters of A-Z a-z 0-9 . _ : -
	ID string `json:"id"`
	// Scopes are the scopes the client may ask for, at least one, each an
	// RFC 6749 scope-token. Duplicates are dropped.
	Scopes []string `json:"scopes"`
	// Grants are the grant types allowed: client_credentials,
	// refresh_token, token-exchange (or its URN). Empty means
	// [client_credentials]. Duplicates are dropped.
	Grants []string `json:"grants,omitempty"`
	// JWKS, when set, is a JSON JWK set ({"keys":[...]}) of public keys,
	// each with a kid, for private_key_jwt.
	JWKS []byte `json:"jwks,omitempty"`
	// NoSecret registers a client that authenticates with private_key_jwt
	// only: no secret is made and JWKS is required. Otherwise a secret is
	// always made, with or without a JWKS.
	NoSecret bool `json:"no_secret,omitempty"`
	// RedirectURIs are required with the authorization_code grant: each
	// an absolute https URL (http only for loopback hosts), or a private-use
	// scheme of a native app ("com.example.app:/cb"); no fragment, no
	// wildcard. They are matched exactly.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// PostLogoutRedirectURIs are where RP-initiated logout may return, by
	// the same rules.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// FirstParty skips the consent page.
	FirstParty bool `json:"first_party,omitempty"`
	// Public registers a client without any credential (a single-page or
	// native app): only authorization_code and refresh_token grants.
	Public bool `json:"public,omitempty"`
	// Name is shown on the consent page (default: the id).
	Name string `json:"name,omitempty"`
}

// Validate reports every problem in s, joined with errors.Join; nil if s
// can be registered. The error never quotes key material.
func (s ClientSpec) Validate() error {
	var errs []error
	if err := validClientID(s.ID); err != nil {
		errs = append(errs, err)
	}
	if len(s.Scopes) == 0 {
		errs = append(errs, errors.New("clients: at least one scope is required"))
	}
	for _, sc := range s.Scopes {
		if !validScope(sc) {
			errs = append(errs, fmt.Errorf("clients: scope %q is not an RFC 6749 scope-token", sc))
		} else if err := authn.CheckScope(sc); err != nil {
			errs = append(errs, fmt.Errorf("clients: %w", err))
		}
	}
	for _, g := range s.Grants {
		if _, ok := normalizeGrant(g); !ok {
			errs = append(errs, fmt.Errorf("clients: grant %q is not one of %s, %s, %s, %s",
				g, GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken, grantTokenExchangeShort))
		}
	}
	if len(s.JWKS) > 0 {
		if err := validJWKS(s.JWKS); err != nil {
			errs = append(errs, err)
		}
	} else if s.NoSecret {
		errs = append(errs, errors.New("clients: a client without a secret needs a jwks"))
	}
	errs = append(errs, s.validateCodeFlow()...)
	return errors.Join(errs...)
}

// validateCodeFlow checks the settings of the authorization-code flow.
func (s ClientSpec) validateCodeFlow() []error {
	var errs []error
	code := false
	for _, g := range s.Grants {
		n, _ := normalizeGrant(g)
		code = code || n == GrantAuthorizationCode
		if s.Public && n != GrantAuthorizationCode && n != GrantRefreshToken && n != "" {
			errs = append(errs, fmt.Errorf("clients: a public client may use only %s and %s, not %s", GrantAuthorizationCode, GrantRefreshToken, g))
		}
	}
	if code && len(s.RedirectURIs) == 0 {
		errs = append(errs, errors.New("clients: the authorization_code grant needs at least one redirect uri (--redirect-uri)"))
	}
	if !code && (len(s.RedirectURIs) > 0 || len(s.PostLogoutRedirectURIs) > 0 || s.FirstParty) {
		errs = append(errs, errors.New("clients: redirect uris and first_party are for the authorization_code grant; add it to the grants"))
	}
	if s.Public && (len(s.JWKS) > 0 || s.NoSecret) {
		errs = append(errs, errors.New("clients: a public client has no credentials: no jwks, no secret"))
	}
	if s.Public && !code {
		errs = append(errs, fmt.Errorf("clients: a public client needs the %s grant", GrantAuthorizationCode))
	}
	for _, u := range s.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			errs = append(errs, fmt.Errorf("clients: redirect uri: %w", err))
		}
	}
	for _, u := range s.PostLogoutRedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			errs = append(errs, fmt.Errorf("clients: post-logout redirect uri: %w", err))
		}
	}
	if len(s.Name) > 100 || strings.ContainsAny(s.Name, "\r\n\x00") {
		errs = append(errs, errors.New("clients: name must be at most 100 characters on one line"))
	}
	return errs
}

// normalized returns s with grants as their OAuth names, the default grant
// if none, and duplicates dropped (first occurrence kept). s must be valid.
func (s ClientSpec) normalized() ClientSpec {
	grants := s.Grants
	if len(grants) == 0 {
		grants = []string{GrantClientCredentials}
	}
	out := make([]string, 0, len(grants))
	for _, g := range grants {
		n, _ := normalizeGrant(g)
		out = append(out, n)
	}
	s.Grants = dedupe(out)
	s.Scopes = dedupe(s.Scopes)
	s.JWKS = slices.Clone(s.JWKS)
	s.RedirectURIs = dedupe(s.RedirectURIs)
	s.PostLogoutRedirectURIs = dedupe(s.PostLogoutRedirectURIs)
	return s
}

// ClientInfo describes one client without its secret HMAC or keys, as
// `verdict client list` and the admin routes show it.
type ClientInfo struct {
	ID                     string    `json:"id"`
	Name                   string    `json:"name,omitempty"`
	Scopes                 []string  `json:"scopes"`
	Grants                 []string  `json:"grants"`
	HasSecret              bool      `json:"has_secret"`
	HasJWKS                bool      `json:"has_jwks"`
	Public                 bool      `json:"public,omitempty"`
	FirstParty             bool      `json:"first_party,omitempty"`
	RedirectURIs           []string  `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris,omitempty"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// Clients is the registry of OAuth clients: registration, secret rotation
// and client authentication. It keeps no state of its own besides the
// pepper; the store is the source of truth, shared by every replica. It is
// safe for concurrent use. The zero Clients is not usable: use NewClients.
type Clients struct {
	st     ClientStore
	pepper []byte
	now    func() time.Time
	// dummy is compared against when there is no stored HMAC, so that an
	// unknown id or a client without a secret costs the same HMAC and
	// comparison as a wrong secret.
	dummy []byte
	mu    sync.Mutex // serialises this replica's read-modify-write updates
}

// NewClients returns a registry over st. pepper is the server secret the
// client secrets are HMACed with (at least 32 bytes; it is copied); if it
// changes, every client secret stops working. now is the clock (nil means
// time.Now). It fails if st is nil or pepper is too short.
func NewClients(st ClientStore, pepper []byte, now func() time.Time) (*Clients, error) {
	if st == nil {
		return nil, errors.New("clients: nil client store")
	}
	if len(pepper) < pepperLen {
		return nil, fmt.Errorf("clients: pepper is %d bytes, at least %d needed", len(pepper), pepperLen)
	}
	if now == nil {
		now = time.Now
	}
	return &Clients{st: st, pepper: slices.Clone(pepper), now: now, dummy: make([]byte, sha256.Size)}, nil
}

// NewPepper returns 32 random bytes for use as the client secret pepper.
// It fails only if the system's random source does.
func NewPepper() ([]byte, error) {
	p := make([]byte, pepperLen)
	if _, err := rand.Read(p); err != nil {
		return nil, fmt.Errorf("clients: generate pepper: %w", err)
	}
	return p, nil
}

// clock returns now as stored: UTC, without the monotonic reading.
func (c *Clients) clock() time.Time { return c.now().UTC().Round(0) }

// Add registers a client. Unless spec.NoSecret is set it makes a secret
// and returns it (base64url, 256 bits): the only time it is ever shown.
// For a NoSecret client the secret is "". It returns the stored record. An
// invalid spec gives Validate's error; a taken id an error wrapping
// ErrClientExists; on any error nothing is registered.
func (c *Clients) Add(ctx context.Context, spec ClientSpec) (Client, string, error) {
	if err := spec.Validate(); err != nil {
		return Client{}, "", err
	}
	spec = spec.normalized()
	now := c.clock()
	cl := Client{
		ID: spec.ID, JWKS: spec.JWKS, Scopes: spec.Scopes, Grants: spec.Grants,
		CreatedAt: now, UpdatedAt: now,
		RedirectURIs: spec.RedirectURIs, PostLogoutRedirectURIs: spec.PostLogoutRedirectURIs,
		FirstParty: spec.FirstParty, Public: spec.Public, Name: spec.Name,
	}
	var secret string
	if !spec.NoSecret && !spec.Public {
		var err error
		if secret, err = newSecret(); err != nil {
			return Client{}, "", err
		}
		cl.SecretHMAC = c.mac(secret)
	}
	if err := c.st.CreateClient(ctx, cl); err != nil {
		return Client{}, "", fmt.Errorf("clients: add %q: %w", spec.ID, err)
	}
	return cl, secret, nil
}

// RotateSecret gives client id a new secret and returns it (shown once);
// the old secret stops working at once. A private_key_jwt-only client
// gains a secret this way. An unknown id gives an error wrapping
// ErrUnknownClient; on error the old secret stays. Rotations on one
// replica are serialised; across replicas sharing a store the last write
// wins, and only the secret it returned works.
func (c *Clients) RotateSecret(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, err := c.st.Client(ctx, id)
	if err != nil {
		return "", fmt.Errorf("clients: rotate secret of %q: %w", id, err)
	}
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	cl.SecretHMAC = c.mac(secret)
	cl.UpdatedAt = c.clock()
	if err := c.st.UpdateClient(ctx, cl); err != nil {
		return "", fmt.Errorf("clients: rotate secret of %q: %w", id, err)
	}
	return secret, nil
}

// Remove deletes client id. Tokens already issued to it stay valid until
// they expire or are revoked. An unknown id gives an error wrapping
// ErrUnknownClient.
func (c *Clients) Remove(ctx context.Context, id string) error {
	if err := c.st.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("clients: remove %q: %w", id, err)
	}
	return nil
}

// List describes every client, by id. It fails only if the store does.
func (c *Clients) List(ctx context.Context) ([]ClientInfo, error) {
	cls, err := c.st.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("clients: list: %w", err)
	}
	out := make([]ClientInfo, 0, len(cls))
	for _, cl := range cls {
		out = append(out, info(cl))
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Get describes client id. An unknown id gives an error wrapping
// ErrUnknownClient.
func (c *Clients) Get(ctx context.Context, id string) (ClientInfo, error) {
	cl, err := c.st.Client(ctx, id)
	if err != nil {
		return ClientInfo{}, fmt.Errorf("clients: get %q: %w", id, err)
	}
	return info(cl), nil
}

// Lookup returns the full record of client id, for private_key_jwt
// authentication (the caller verifies the assertion against its JWKS). It
// gives no timing protection. An unknown id gives an error wrapping
// ErrUnknownClient.
func (c *Clients) Lookup(ctx context.Context, id string) (Client, error) {
	cl, err := c.st.Client(ctx, id)
	if err != nil {
		return Client{}, fmt.Errorf("clients: lookup %q: %w", id, err)
	}
	return cl, nil
}

// Authenticate checks a client_id and client_secret and returns the
// client. Any authentication failure (unknown id, wrong or empty secret, a
// client without a secret) gives an error wrapping ErrInvalidClient that
// does not say which; the HMAC and its constant-time comparison are done
// in every case, so the time taken does not tell which ids exist. Other
// store errors are returned wrapped as they are, not as ErrInvalidClient,
// so that an outage is a server error and not a client's fault.
func (c *Clients) Authenticate(ctx context.Context, id, secret string) (Client, error) {
	if secret == "" || len(secret) > maxSecretLen {
		return Client{}, fmt.Errorf("clients: authenticate: %w", ErrInvalidClient)
	}
	cl, err := c.st.Client(ctx, id)
	known := err == nil
	if err != nil && !errors.Is(err, ErrUnknownClient) {
		return Client{}, fmt.Errorf("clients: authenticate %q: %w", id, err)
	}
	want := c.dummy
	if known && len(cl.SecretHMAC) > 0 {
		want = cl.SecretHMAC
	}
	ok := hmac.Equal(c.mac(secret), want)
	if !known || len(cl.SecretHMAC) == 0 || !ok {
		return Client{}, fmt.Errorf("clients: authenticate: %w", ErrInvalidClient)
	}
	return cl, nil
}

// Allowed reports whether cl may use grant (its OAuth name, or
// "token-exchange") for the requested scopes: nil if so; an error wrapping
// ErrUnauthorizedClient if the grant is not among the client's; otherwise
// an error wrapping ErrInvalidScope naming every requested scope the
// client does not have. No requested scopes is allowed (the caller picks
// the defaults). The token endpoint rejects grant types it does not
// support before asking.
func (c *Clients) Allowed(cl Client, grant string, scopes []string) error {
	if g, ok := normalizeGrant(grant); ok {
		grant = g
	}
	if !slices.Contains(cl.Grants, grant) {
		return fmt.Errorf("clients: %q may not use grant %q: %w", cl.ID, grant, ErrUnauthorizedClient)
	}
	var missing []string
	for _, s := range scopes {
		if !slices.Contains(cl.Scopes, s) && !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("clients: %q may not ask for scope %q: %w", cl.ID, strings.Join(missing, " "), ErrInvalidScope)
	}
	return nil
}

// mac is HMAC-SHA256(pepper, secret).
func (c *Clients) mac(secret string) []byte {
	h := hmac.New(sha256.New, c.pepper)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// newSecret returns 256 random bits, base64url without padding.
func newSecret() (string, error) {
	b := make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("clients: generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// info describes cl without its secret HMAC or keys.
func info(cl Client) ClientInfo {
	return ClientInfo{
		ID: cl.ID, Name: cl.Name, Scopes: slices.Clone(cl.Scopes), Grants: slices.Clone(cl.Grants),
		HasSecret: len(cl.SecretHMAC) > 0, HasJWKS: len(cl.JWKS) > 0,
		Public: cl.Public, FirstParty: cl.FirstParty,
		RedirectURIs: slices.Clone(cl.RedirectURIs), PostLogoutRedirectURIs: slices.Clone(cl.PostLogoutRedirectURIs),
		CreatedAt: cl.CreatedAt, UpdatedAt: cl.UpdatedAt,
	}
}

// normalizeGrant returns the OAuth name of an allowed grant type, and
// whether it is one.
func normalizeGrant(g string) (string, bool) {
	switch g {
	case GrantClientCredentials, GrantRefreshToken, GrantTokenExchange, GrantAuthorizationCode:
		return g, true
	case grantTokenExchangeShort:
		return GrantTokenExchange, true
	}
	return "", false
}

// validClientID checks id: 1 to 128 characters of A-Z a-z 0-9 . _ : -
func validClientID(id string) error {
	if id == "" || len(id) > maxClientIDLen {
		return fmt.Errorf("clients: id must be 1 to %d characters", maxClientIDLen)
	}
	for _, r := range id {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9',
			r == '.', r == '_', r == ':', r == '-':
		default:
			return fmt.Errorf("clients: id %q has a character outside A-Z a-z 0-9 . _ : -", id)
		}
	}
	return nil
}

// validScope reports whether s is an RFC 6749 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// validJWKS checks a client's JWKS: a JSON JWK set of at least one
// asymmetric public key, each with a kid, kids unique, no private members,
// and no use other than "sig". Problems are reported by key index and
// kid, never by key material.
func validJWKS(b []byte) error {
	if len(b) > maxJWKSLen {
		return fmt.Errorf("clients: jwks is over %d bytes", maxJWKSLen)
	}
	var shape struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &shape); err != nil || shape.Keys == nil {
		return errors.New(`clients: jwks is not a JSON JWK set {"keys":[...]}`)
	}
	if len(shape.Keys) == 0 {
		return errors.New("clients: jwks has no keys")
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return fmt.Errorf("clients: jwks: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("clients: jwks key %d (kid %q): %s", i, kid, fmt.Sprintf(format, args...)))
		}
		if kid == "" {
			bad("no kid")
		} else if seen[kid] {
			bad("duplicate kid")
		}
		seen[kid] = true
		if priv, err := jwk.IsPrivateKey(k); err != nil {
			bad("key type %s is not an asymmetric key", k.KeyType())
		} else if priv {
			bad("has private key members; register the public key only")
		}
		if use, ok := k.KeyUsage(); ok && use != string(jwk.ForSignature) {
			bad("use %q is not sig", use)
		}
	}
	return errors.Join(errs...)
}

// dedupe returns s without repeated elements, keeping the first of each.
func dedupe(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
