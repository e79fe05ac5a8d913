package oauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/testutil/jwttest"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// memClientStore is an in-memory ClientStore that can be made to fail.
type memClientStore struct {
	mu      sync.Mutex
	clients map[string]Client
	failErr error // returned by every call while set
}

var _ ClientStore = (*memClientStore)(nil)

func newMemClientStore() *memClientStore { return &memClientStore{clients: map[string]Client{}} }

func cloneClient(c Client) Client {
	c.SecretHMAC = slices.Clone(c.SecretHMAC)
	c.JWKS = slices.Clone(c.JWKS)
	c.Scopes = slices.Clone(c.Scopes)
	c.Grants = slices.Clone(c.Grants)
	return c
}

func (s *memClientStore) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

func (s *memClientStore) CreateClient(_ context.Context, c Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if _, ok := s.clients[c.ID]; ok {
		return ErrClientExists
	}
	s.clients[c.ID] = cloneClient(c)
	return nil
}

func (s *memClientStore) UpdateClient(_ context.Context, c Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if _, ok := s.clients[c.ID]; !ok {
		return ErrUnknownClient
	}
	s.clients[c.ID] = cloneClient(c)
	return nil
}

func (s *memClientStore) Client(_ context.Context, id string) (Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return Client{}, s.failErr
	}
	c, ok := s.clients[id]
	if !ok {
		return Client{}, ErrUnknownClient
	}
	return cloneClient(c), nil
}

func (s *memClientStore) ListClients(context.Context) ([]Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return nil, s.failErr
	}
	var out []Client
	for _, id := range slices.Sorted(maps.Keys(s.clients)) {
		out = append(out, cloneClient(s.clients[id]))
	}
	return out, nil
}

func (s *memClientStore) DeleteClient(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if _, ok := s.clients[id]; !ok {
		return ErrUnknownClient
	}
	delete(s.clients, id)
	return nil
}

func testPepper(t *testing.T) []byte {
	t.Helper()
	p, err := NewPepper()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestClients(t *testing.T, st ClientStore, pepper []byte, clk *jwttest.Clock) *Clients {
	t.Helper()
	c, err := NewClients(st, pepper, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAddClient(t *testing.T, c *Clients, spec ClientSpec) (Client, string) {
	t.Helper()
	cl, secret, err := c.Add(context.Background(), spec)
	if err != nil {
		t.Fatalf("Add(%q): %v", spec.ID, err)
	}
	return cl, secret
}

// testJWK returns a new P-256 key with kid set: its public JWK set as JSON,
// and the private key as a JWK.
func testJWK(t *testing.T, kid string) ([]byte, jwk.Key) {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := priv.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return jwksJSON(t, pub), priv
}

func jwksJSON(t *testing.T, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewClientsAndPepper(t *testing.T) {
	p := testPepper(t)
	if len(p) != 32 {
		t.Fatalf("pepper is %d bytes", len(p))
	}
	if q := testPepper(t); bytes.Equal(p, q) {
		t.Fatal("two peppers are equal")
	}
	if _, err := NewClients(newMemClientStore(), p[:31], nil); err == nil {
		t.Error("31-byte pepper accepted")
	}
	if _, err := NewClients(nil, p, nil); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := NewClients(newMemClientStore(), p, nil); err != nil {
		t.Errorf("NewClients: %v", err)
	}
}

func TestClientLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := jwttest.NewClock()
	st := newMemClientStore()
	c := newTestClients(t, st, testPepper(t), clk)

	cl, secret := mustAddClient(t, c, ClientSpec{
		ID: "svc-b", Scopes: []string{"read", "write", "read"},
		Grants: []string{"client_credentials", "token-exchange"},
	})
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q is not 256 bits of base64url: %v", secret, err)
	}
	if !slices.Equal(cl.Scopes, []string{"read", "write"}) {
		t.Errorf("scopes = %v", cl.Scopes)
	}
	if !slices.Equal(cl.Grants, []string{GrantClientCredentials, GrantTokenExchange}) {
		t.Errorf("grants = %v", cl.Grants)
	}
	if !cl.CreatedAt.Equal(clk.Now()) || !cl.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("times = %v, %v", cl.CreatedAt, cl.UpdatedAt)
	}

	_, _, err = c.Add(ctx, ClientSpec{ID: "svc-b", Scopes: []string{"x"}})
	if !errors.Is(err, ErrClientExists) {
		t.Errorf("duplicate Add: %v, want ErrClientExists", err)
	}
	_, second := mustAddClient(t, c, ClientSpec{ID: "svc-a", Scopes: []string{"read"}})
	if second == secret {
		t.Error("two clients got the same secret")
	}

	got, err := c.Get(ctx, "svc-b")
	if err != nil {
		t.Fatal(err)
	}
	want := ClientInfo{
		ID: "svc-b", Scopes: []string{"read", "write"},
		Grants:    []string{GrantClientCredentials, GrantTokenExchange},
		HasSecret: true, CreatedAt: clk.Now(), UpdatedAt: clk.Now(),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id"`, `"scopes"`, `"grants"`, `"has_secret"`, `"has_jwks"`, `"created_at"`, `"updated_at"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("ClientInfo JSON %s lacks %s", b, key)
		}
	}
	if bytes.Contains(b, []byte("hmac")) || bytes.Contains(b, []byte(secret)) {
		t.Errorf("ClientInfo JSON %s shows the secret", b)
	}

	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "svc-a" || list[1].ID != "svc-b" {
		t.Errorf("List = %+v", list)
	}

	if _, err := c.Authenticate(ctx, "svc-b", secret); err != nil {
		t.Fatalf("Authenticate with the issued secret: %v", err)
	}
	clk.Advance(time.Hour)
	newSecret, err := c.RotateSecret(ctx, "svc-b")
	if err != nil {
		t.Fatal(err)
	}
	if newSecret == secret {
		t.Fatal("rotation kept the secret")
	}
	if _, err := c.Authenticate(ctx, "svc-b", secret); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("old secret after rotation: %v, want ErrInvalidClient", err)
	}
	if _, err := c.Authenticate(ctx, "svc-b", newSecret); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if got, _ := c.Get(ctx, "svc-b"); !got.UpdatedAt.Equal(clk.Now()) || got.CreatedAt.Equal(clk.Now()) {
		t.Errorf("after rotation times = %v, %v", got.CreatedAt, got.UpdatedAt)
	}
	if _, err := c.RotateSecret(ctx, "nope"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("RotateSecret unknown: %v", err)
	}

	if err := c.Remove(ctx, "svc-b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "svc-b"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("second Remove: %v, want ErrUnknownClient", err)
	}
	if _, err := c.Get(ctx, "svc-b"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("Get removed: %v, want ErrUnknownClient", err)
	}
	if _, err := c.Authenticate(ctx, "svc-b", newSecret); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("Authenticate removed: %v, want ErrInvalidClient", err)
	}
	if list, _ := c.List(ctx); len(list) != 1 {
		t.Errorf("List after remove = %+v", list)
	}
}

func TestClientSecretNeverInErrorsOrStore(t *testing.T) {
	ctx := context.Background()
	st := newMemClientStore()
	pepper := testPepper(t)
	c := newTestClients(t, st, pepper, jwttest.NewClock())
	_, secret := mustAddClient(t, c, ClientSpec{ID: "a", Scopes: []string{"s"}})

	rec, _ := st.Client(ctx, "a")
	if len(rec.SecretHMAC) != 32 {
		t.Fatalf("stored HMAC is %d bytes", len(rec.SecretHMAC))
	}
	raw, _ := base64.RawURLEncoding.DecodeString(secret)
	if bytes.Equal(rec.SecretHMAC, raw) || bytes.Contains(rec.SecretHMAC, []byte(secret)) {
		t.Fatal("the store holds the secret")
	}

	// The same secret under another pepper has another HMAC.
	other := newTestClients(t, newMemClientStore(), testPepper(t), jwttest.NewClock())
	if bytes.Equal(other.mac(secret), rec.SecretHMAC) {
		t.Error("HMAC does not depend on the pepper")
	}
	if !bytes.Equal(c.mac(secret), rec.SecretHMAC) {
		t.Error("HMAC is not deterministic")
	}

	wrong := secret[:len(secret)-1] + "A"
	if wrong == secret {
		wrong = secret[:len(secret)-1] + "B"
	}
	_, err := c.Authenticate(ctx, "a", wrong)
	if err == nil || strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), secret) {
		t.Errorf("wrong secret error %v", err)
	}
}

func TestClientPepperChangeInvalidatesSecrets(t *testing.T) {
	ctx := context.Background()
	st := newMemClientStore()
	c := newTestClients(t, st, testPepper(t), jwttest.NewClock())
	_, secret := mustAddClient(t, c, ClientSpec{ID: "a", Scopes: []string{"s"}})

	repeppered := newTestClients(t, st, testPepper(t), jwttest.NewClock())
	if _, err := repeppered.Authenticate(ctx, "a", secret); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("secret under a new pepper: %v, want ErrInvalidClient", err)
	}
	if _, err := c.Authenticate(ctx, "a", secret); err != nil {
		t.Errorf("secret under the old pepper: %v", err)
	}
}

func TestClientAuthenticateFailures(t *testing.T) {
	ctx := context.Background()
	st := newMemClientStore()
	c := newTestClients(t, st, testPepper(t), jwttest.NewClock())
	_, secret := mustAddClient(t, c, ClientSpec{ID: "a", Scopes: []string{"s"}})
	jwks, _ := testJWK(t, "k1")
	_, none := mustAddClient(t, c, ClientSpec{ID: "jwt-only", Scopes: []string{"s"}, JWKS: jwks, NoSecret: true})
	if none != "" {
		t.Fatalf("NoSecret client got secret %q", none)
	}
	_, otherSecret := mustAddClient(t, c, ClientSpec{ID: "b", Scopes: []string{"s"}})

	for name, tc := range map[string]struct{ id, secret string }{
		"wrong secret":      {"a", otherSecret},
		"unknown id":        {"nobody", secret},
		"empty secret":      {"a", ""},
		"empty id":          {"", secret},
		"client w/o secret": {"jwt-only", secret},
		"jwt-only empty":    {"jwt-only", ""},
		"oversized":         {"a", strings.Repeat("x", 10000)},
		"secret prefix":     {"a", secret[:10]},
	} {
		t.Run(name, func(t *testing.T) {
			cl, err := c.Authenticate(ctx, tc.id, tc.secret)
			if !errors.Is(err, ErrInvalidClient) {
				t.Errorf("err = %v, want ErrInvalidClient", err)
			}
			if cl.ID != "" {
				t.Errorf("returned client %q on failure", cl.ID)
			}
		})
	}

	// A store outage is not the client's fault.
	boom := errors.New("store down")
	st.fail(boom)
	_, err := c.Authenticate(ctx, "a", secret)
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalidClient) {
		t.Errorf("store down: %v, want the store error", err)
	}
	st.fail(nil)

	cl, err := c.Authenticate(ctx, "a", secret)
	if err != nil || cl.ID != "a" {
		t.Fatalf("Authenticate = %+v, %v", cl, err)
	}
}

func TestClientJWKSOnlyAndRotateAddsSecret(t *testing.T) {
	ctx := context.Background()
	c := newTestClients(t, newMemClientStore(), testPepper(t), jwttest.NewClock())
	jwks, _ := testJWK(t, "k1")
	mustAddClient(t, c, ClientSpec{ID: "jwt", Scopes: []string{"s"}, JWKS: jwks, NoSecret: true})
	info, err := c.Get(ctx, "jwt")
	if err != nil {
		t.Fatal(err)
	}
	if info.HasSecret || !info.HasJWKS {
		t.Errorf("info = %+v", info)
	}
	rec, err := c.Lookup(ctx, "jwt")
	if err != nil || !bytes.Equal(rec.JWKS, jwks) {
		t.Fatalf("Lookup = %+v, %v", rec, err)
	}
	if _, err := c.Lookup(ctx, "nobody"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("Lookup unknown: %v", err)
	}

	// A JWKS client may also have a secret unless it asks for none.
	_, secret := mustAddClient(t, c, ClientSpec{ID: "both", Scopes: []string{"s"}, JWKS: jwks})
	if secret == "" {
		t.Error("client with JWKS and without NoSecret got no secret")
	}

	s, err := c.RotateSecret(ctx, "jwt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, "jwt", s); err != nil {
		t.Errorf("secret added by rotation: %v", err)
	}
}

func TestClientSpecValidate(t *testing.T) {
	good, _ := testJWK(t, "k1")
	noKID, _ := testJWK(t, "")
	_, priv := testJWK(t, "k1")
	privSet := jwksJSON(t, priv)
	dupA, _ := testJWK(t, "same")
	var dupSet []byte
	{
		var a, b map[string][]json.RawMessage
		dupB, _ := testJWK(t, "same")
		_ = json.Unmarshal(dupA, &a)
		_ = json.Unmarshal(dupB, &b)
		a["keys"] = append(a["keys"], b["keys"]...)
		dupSet, _ = json.Marshal(a)
	}
	sym := []byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
	var encUse []byte
	{
		var m map[string][]map[string]any
		_ = json.Unmarshal(good, &m)
		m["keys"][0]["use"] = "enc"
		encUse, _ = json.Marshal(m)
	}
	bareKey := func() []byte {
		var m map[string][]json.RawMessage
		_ = json.Unmarshal(good, &m)
		return m["keys"][0]
	}()

	base := ClientSpec{ID: "svc", Scopes: []string{"read"}}
	with := func(f func(*ClientSpec)) ClientSpec {
		s := base
		f(&s)
		return s
	}
	for name, tc := range map[string]struct {
		spec    ClientSpec
		wantErr string // substring; "" means valid
	}{
		"minimal": {base, ""},
		"every Verdict scope": {with(func(s *ClientSpec) {
			s.Scopes = []string{"verdict:decide", "verdict:bundles:read", "verdict:bundles:write", "verdict:admin"}
		}), ""},
		"unknown Verdict scope": {with(func(s *ClientSpec) { s.Scopes = []string{"verdict:nope"} }),
			`scope "verdict:nope" is not one of Verdict's (verdict:decide, verdict:bundles:read, verdict:bundles:write, verdict:scim, verdict:admin)`},
		"own namespace":        {with(func(s *ClientSpec) { s.Scopes = []string{"todo:read", "verdictish"} }), ""},
		"all id chars":         {with(func(s *ClientSpec) { s.ID = "Az09._:-" }), ""},
		"id 128":               {with(func(s *ClientSpec) { s.ID = strings.Repeat("a", 128) }), ""},
		"id 129":               {with(func(s *ClientSpec) { s.ID = strings.Repeat("a", 129) }), "1 to 128"},
		"empty id":             {with(func(s *ClientSpec) { s.ID = "" }), "1 to 128"},
		"id with slash":        {with(func(s *ClientSpec) { s.ID = "a/b" }), "character outside"},
		"id with space":        {with(func(s *ClientSpec) { s.ID = "a b" }), "character outside"},
		"id non-ascii":         {with(func(s *ClientSpec) { s.ID = "clé" }), "character outside"},
		"no scope":             {with(func(s *ClientSpec) { s.Scopes = nil }), "at least one scope"},
		"space in scope":       {with(func(s *ClientSpec) { s.Scopes = []string{"read write"} }), "scope-token"},
		"quote in scope":       {with(func(s *ClientSpec) { s.Scopes = []string{`a"b`} }), "scope-token"},
		"backslash in scope":   {with(func(s *ClientSpec) { s.Scopes = []string{`a\b`} }), "scope-token"},
		"empty scope":          {with(func(s *ClientSpec) { s.Scopes = []string{""} }), "scope-token"},
		"punctuated scope":     {with(func(s *ClientSpec) { s.Scopes = []string{"urn:x:read!#[]{}~"} }), ""},
		"unknown grant":        {with(func(s *ClientSpec) { s.Grants = []string{"password"} }), `grant "password"`},
		"short token-exchange": {with(func(s *ClientSpec) { s.Grants = []string{"token-exchange"} }), ""},
		"all grants": {with(func(s *ClientSpec) {
			s.Grants = []string{GrantClientCredentials, GrantRefreshToken, GrantTokenExchange}
		}), ""},
		"jwks":               {with(func(s *ClientSpec) { s.JWKS = good }), ""},
		"jwks only":          {with(func(s *ClientSpec) { s.JWKS = good; s.NoSecret = true }), ""},
		"no secret, no jwks": {with(func(s *ClientSpec) { s.NoSecret = true }), "needs a jwks"},
		"jwks private key":   {with(func(s *ClientSpec) { s.JWKS = privSet }), "private key"},
		"jwks without kid":   {with(func(s *ClientSpec) { s.JWKS = noKID }), "no kid"},
		"jwks duplicate kid": {with(func(s *ClientSpec) { s.JWKS = dupSet }), "duplicate kid"},
		"jwks symmetric":     {with(func(s *ClientSpec) { s.JWKS = sym }), "not an asymmetric key"},
		"jwks use enc":       {with(func(s *ClientSpec) { s.JWKS = encUse }), `use "enc"`},
		"jwks empty set":     {with(func(s *ClientSpec) { s.JWKS = []byte(`{"keys":[]}`) }), "no keys"},
		"jwks bare key":      {with(func(s *ClientSpec) { s.JWKS = bareKey }), "not a JSON JWK set"},
		"jwks garbage":       {with(func(s *ClientSpec) { s.JWKS = []byte(`not json`) }), "not a JSON JWK set"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate accepted it, want %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}

	// Every problem is reported at once.
	err := ClientSpec{ID: "a b", Scopes: []string{"x y"}, Grants: []string{"implicit"}, JWKS: privSet}.Validate()
	for _, want := range []string{"character outside", "scope-token", `grant "implicit"`, "private key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("joined error %v lacks %q", err, want)
		}
	}
	// The private key material never shows in the error.
	var pm map[string][]map[string]any
	_ = json.Unmarshal(privSet, &pm)
	if d, _ := pm["keys"][0]["d"].(string); d == "" || strings.Contains(err.Error(), d) {
		t.Errorf("error quotes the private key (or the test key has no d)")
	}
}

func TestClientSpecNormalisedOnAdd(t *testing.T) {
	ctx := context.Background()
	c := newTestClients(t, newMemClientStore(), testPepper(t), jwttest.NewClock())
	cl, _ := mustAddClient(t, c, ClientSpec{ID: "a", Scopes: []string{"s"}})
	if !slices.Equal(cl.Grants, []string{GrantClientCredentials}) {
		t.Errorf("default grants = %v", cl.Grants)
	}
	cl, _ = mustAddClient(t, c, ClientSpec{ID: "b", Scopes: []string{"s"},
		Grants: []string{"token-exchange", GrantTokenExchange, GrantRefreshToken}})
	if !slices.Equal(cl.Grants, []string{GrantTokenExchange, GrantRefreshToken}) {
		t.Errorf("grants = %v", cl.Grants)
	}
	if _, _, err := c.Add(ctx, ClientSpec{ID: "c d", Scopes: []string{"s"}}); err == nil {
		t.Error("invalid spec added")
	}
	if _, err := c.Get(ctx, "c d"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("invalid spec was stored: %v", err)
	}
}

func TestClientAllowed(t *testing.T) {
	c := newTestClients(t, newMemClientStore(), testPepper(t), jwttest.NewClock())
	cl := Client{ID: "a", Scopes: []string{"read", "write"}, Grants: []string{GrantClientCredentials, GrantTokenExchange}}
	for name, tc := range map[string]struct {
		grant   string
		scopes  []string
		want    error
		mention string
	}{
		"allowed":             {GrantClientCredentials, []string{"read"}, nil, ""},
		"all scopes":          {GrantClientCredentials, []string{"write", "read"}, nil, ""},
		"no scopes":           {GrantClientCredentials, nil, nil, ""},
		"urn exchange":        {GrantTokenExchange, []string{"write"}, nil, ""},
		"short exchange":      {"token-exchange", []string{"write"}, nil, ""},
		"grant not allowed":   {GrantRefreshToken, []string{"read"}, ErrUnauthorizedClient, GrantRefreshToken},
		"unknown grant":       {"password", nil, ErrUnauthorizedClient, "password"},
		"scope not allowed":   {GrantClientCredentials, []string{"read", "admin", "root", "admin"}, ErrInvalidScope, "admin root"},
		"grant checked first": {GrantRefreshToken, []string{"admin"}, ErrUnauthorizedClient, ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Allowed(cl, tc.grant, tc.scopes)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Allowed: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Allowed: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %v does not name %q", err, tc.mention)
			}
		})
	}
}

func TestClientStoreErrorsPassThrough(t *testing.T) {
	ctx := context.Background()
	st := newMemClientStore()
	c := newTestClients(t, st, testPepper(t), jwttest.NewClock())
	mustAddClient(t, c, ClientSpec{ID: "a", Scopes: []string{"s"}})
	boom := errors.New("store down")
	st.fail(boom)
	if _, _, err := c.Add(ctx, ClientSpec{ID: "b", Scopes: []string{"s"}}); !errors.Is(err, boom) {
		t.Errorf("Add: %v", err)
	}
	if _, err := c.RotateSecret(ctx, "a"); !errors.Is(err, boom) {
		t.Errorf("RotateSecret: %v", err)
	}
	if err := c.Remove(ctx, "a"); !errors.Is(err, boom) {
		t.Errorf("Remove: %v", err)
	}
	if _, err := c.List(ctx); !errors.Is(err, boom) {
		t.Errorf("List: %v", err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, boom) {
		t.Errorf("Get: %v", err)
	}
}

func TestClientAuthenticateConcurrent(t *testing.T) {
	ctx := context.Background()
	c := newTestClients(t, newMemClientStore(), testPepper(t), jwttest.NewClock())
	secrets := map[string]string{}
	for i := range 4 {
		id := fmt.Sprintf("c%d", i)
		_, s := mustAddClient(t, c, ClientSpec{ID: id, Scopes: []string{"s"}})
		secrets[id] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("c%d", (g+i)%4)
				if _, err := c.Authenticate(ctx, id, secrets[id]); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				if _, err := c.Authenticate(ctx, id, secrets[fmt.Sprintf("c%d", (g+i+1)%4)]); !errors.Is(err, ErrInvalidClient) {
					errs <- fmt.Errorf("%s with another's secret: %v", id, err)
					return
				}
				if _, err := c.Authenticate(ctx, "ghost", secrets[id]); !errors.Is(err, ErrInvalidClient) {
					errs <- fmt.Errorf("ghost: %v", err)
					return
				}
			}
		})
	}
	// Rotations of another client run alongside.
	_, rotating := mustAddClient(t, c, ClientSpec{ID: "rot", Scopes: []string{"s"}})
	wg.Go(func() {
		for range 20 {
			s, err := c.RotateSecret(ctx, "rot")
			if err != nil {
				errs <- err
				return
			}
			rotating = s
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := c.Authenticate(ctx, "rot", rotating); err != nil {
		t.Errorf("last rotated secret: %v", err)
	}
}
