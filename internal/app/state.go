package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
)

// keyStore adapts the store's keys to what the key ring needs.
type keyStore struct {
	st store.Keys
	ns string
}

var _ authn.KeyStore = keyStore{}

func (k keyStore) PutKey(ctx context.Context, key authn.Key) error {
	return k.st.PutKey(ctx, k.ns, store.SigningKey(key))
}

func (k keyStore) Keys(ctx context.Context) ([]authn.Key, error) {
	ks, err := k.st.Keys(ctx, k.ns)
	if err != nil {
		return nil, err
	}
	out := make([]authn.Key, len(ks))
	for i, key := range ks {
		out[i] = authn.Key(key)
	}
	return out, nil
}

func (k keyStore) DeleteKey(ctx context.Context, kid string) error {
	err := k.st.DeleteKey(ctx, k.ns, kid)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", authn.ErrUnknownKey, kid)
	}
	return err
}

// clientStore adapts the store's clients to what the registry needs.
type clientStore struct {
	st store.Clients
	ns string
}

var _ oauth.ClientStore = clientStore{}

func clientErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", oauth.ErrUnknownClient, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", oauth.ErrClientExists, err)
	}
	return err
}

func (c clientStore) CreateClient(ctx context.Context, cl oauth.Client) error {
	return clientErr(c.st.CreateClient(ctx, c.ns, store.Client(cl)))
}

func (c clientStore) UpdateClient(ctx context.Context, cl oauth.Client) error {
	return clientErr(c.st.UpdateClient(ctx, c.ns, store.Client(cl)))
}

func (c clientStore) Client(ctx context.Context, id string) (oauth.Client, error) {
	cl, err := c.st.Client(ctx, c.ns, id)
	return oauth.Client(cl), clientErr(err)
}

func (c clientStore) ListClients(ctx context.Context) ([]oauth.Client, error) {
	cs, err := c.st.ListClients(ctx, c.ns)
	if err != nil {
		return nil, err
	}
	out := make([]oauth.Client, len(cs))
	for i, cl := range cs {
		out[i] = oauth.Client(cl)
	}
	return out, nil
}

func (c clientStore) DeleteClient(ctx context.Context, id string) error {
	return clientErr(c.st.DeleteClient(ctx, c.ns, id))
}

// revocations adapts the store's revoked token ids to the verifier.
type revocations struct {
	st store.Revocations
	ns string
}

var (
	_ authn.RevocationChecker = revocations{}
	_ oauth.RevocationStore   = revocations{}
	_ oauth.OneTimeIDs        = oneTime{}
)

func (r revocations) Revoked(ctx context.Context, jti string) (bool, error) {
	return r.st.Revoked(ctx, r.ns, jti)
}

// refreshStore adapts the store's refresh families to the refresher.
type refreshStore struct {
	st store.Refresh
	ns string
}

var _ oauth.RefreshStore = refreshStore{}

func familyErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", oauth.ErrUnknownFamily, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", oauth.ErrFamilyConflict, err)
	}
	return err
}

func (r refreshStore) CreateFamily(ctx context.Context, t oauth.RefreshToken) error {
	return familyErr(r.st.CreateFamily(ctx, r.ns, store.RefreshToken(t)))
}

func (r refreshStore) Rotate(ctx context.Context, family string, oldHash []byte, next oauth.RefreshToken) error {
	return familyErr(r.st.Rotate(ctx, r.ns, family, oldHash, store.RefreshToken(next)))
}

func (r refreshStore) Family(ctx context.Context, family string) (oauth.RefreshToken, error) {
	t, err := r.st.Family(ctx, r.ns, family)
	return oauth.RefreshToken(t), familyErr(err)
}

func (r refreshStore) RevokeFamily(ctx context.Context, family string) (oauth.RefreshToken, error) {
	t, err := r.st.RevokeFamily(ctx, r.ns, family)
	return oauth.RefreshToken(t), familyErr(err)
}

func (r revocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	return r.st.Revoke(ctx, r.ns, jti, exp)
}

// oneTime adapts the store's one-time ids to the assertion verifier.
type oneTime struct {
	st store.OneTime
	ns string
}

func (o oneTime) UseOnce(ctx context.Context, jti string, exp time.Time) (bool, error) {
	return o.st.UseOnce(ctx, o.ns, jti, exp)
}

// PepperFile, in the data dir, holds the server pepper client secrets are
// HMACed with. It is made on first start; losing it invalidates every
// client secret.
const PepperFile = "pepper"

// loadPepper reads the data dir's pepper, making it (mode 0600, written to
// a temporary file and renamed, so a crash leaves none or a whole one) when
// absent.
func loadPepper(dir string) ([]byte, error) {
	path := filepath.Join(dir, PepperFile)
	p, err := os.ReadFile(path)
	if err == nil {
		if len(p) < 32 {
			return nil, fmt.Errorf("pepper file %s is shorter than 32 bytes", path)
		}
		return p, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	p, err = oauth.NewPepper()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".pepper-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(p); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return p, nil
}

// State is the durable state: the store, the key ring and the client
// registry, over the store cfg names. Close it when done.
type State struct {
	Store   store.Store
	Keys    *authn.Keyring
	Clients *oauth.Clients
}

// sweeper is a store that must be told to delete expired records (the
// embedded one; Redis expires them on its own).
type sweeper interface {
	Sweep(ctx context.Context, now time.Time) (int, error)
}

var _ sweeper = (*store.Bolt)(nil)

// OpenState opens the store cfg names (the data dir's embedded one, or a
// Redis) and loads (on first start: makes) the signing keys. A data dir held
// by a running server is a clear error; a Redis can be shared by any number
// of servers and CLI commands at once.
func OpenState(ctx context.Context, cfg Config) (*State, error) {
	st, pepper, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ring, err := authn.NewKeyring(cfg.Keys, keyStore{st: st, ns: store.DefaultNamespace}, time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := ring.Load(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	clients, err := oauth.NewClients(clientStore{st: st, ns: store.DefaultNamespace}, pepper, time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &State{Store: st, Keys: ring, Clients: clients}, nil
}

// OpenStateReadOnly opens the state cfg names for a listing: it writes
// nothing (no signing key is made, no pepper, no data dir) and, with the
// embedded store, works while a verdict serve holds the data dir, on a
// consistent copy of its database (store.OpenBoltReadOnly). A data dir with
// no database yet is an error wrapping store.ErrNoDatabase.
func OpenStateReadOnly(ctx context.Context, cfg Config) (*State, error) {
	var st store.Store
	if cfg.UsesRedis() {
		rs, err := redisstore.Open(ctx, cfg.Store, redisstore.Options{})
		if err != nil {
			return nil, err
		}
		st = rs
	} else {
		b, err := store.OpenBoltReadOnly(cfg.DataDir, store.BoltOptions{})
		if err != nil {
			return nil, err
		}
		st = b
	}
	ring, err := authn.NewKeyring(cfg.Keys, keyStore{st: st, ns: store.DefaultNamespace}, time.Now)
	if err == nil {
		err = ring.Read(ctx)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	// Listing clients needs no pepper, and this registry never checks or
	// makes a secret (its store refuses writes): a zero one will do.
	clients, err := oauth.NewClients(clientStore{st: st, ns: store.DefaultNamespace}, make([]byte, 32), time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &State{Store: st, Keys: ring, Clients: clients}, nil
}

// openStore opens the store and its pepper: with Redis both are shared by
// every replica (the pepper under the store's keys); otherwise the bbolt
// file and the pepper file of the data dir.
func openStore(ctx context.Context, cfg Config) (store.Store, []byte, error) {
	if cfg.UsesRedis() {
		rs, err := redisstore.Open(ctx, cfg.Store, redisstore.Options{})
		if err != nil {
			return nil, nil, err
		}
		pepper, err := rs.Pepper(ctx, oauth.NewPepper)
		if err != nil {
			rs.Close()
			return nil, nil, fmt.Errorf("pepper: %w", err)
		}
		return rs, pepper, nil
	}
	st, err := store.OpenBolt(cfg.DataDir, store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, nil, fmt.Errorf("%w: %s is held by a running verdict serve", err, cfg.DataDir)
		}
		return nil, nil, err
	}
	pepper, err := loadPepper(cfg.DataDir)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("pepper: %w", err)
	}
	return st, pepper, nil
}

// StoreName is how logs name cfg's store: the data dir's file, or the
// Redis URL without its password.
func StoreName(cfg Config) string {
	if cfg.UsesRedis() {
		return redisstore.Redact(cfg.Store)
	}
	return filepath.Join(cfg.DataDir, store.BoltFile)
}

// Close closes the store.
func (s *State) Close() error { return s.Store.Close() }
