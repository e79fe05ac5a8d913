package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
)

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
	// PseudonymKey makes erased users' pseudonyms (users.Pseudonym);
	// derived from the pepper, nil in a read-only state.
	PseudonymKey []byte
	// Pepper is the server secret client secrets and API keys are HMACed
	// with; nil in a read-only state.
	Pepper []byte
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
	ring, err := authn.NewKeyring(cfg.Keys, storeadapt.Keys(st, store.DefaultNamespace), time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := ring.Load(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	clients, err := oauth.NewClients(storeadapt.Clients(st, store.DefaultNamespace), pepper, time.Now)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &State{Store: st, Keys: ring, Clients: clients, PseudonymKey: pseudonymKey(pepper), Pepper: pepper}, nil
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
	ring, err := authn.NewKeyring(cfg.Keys, storeadapt.Keys(st, store.DefaultNamespace), time.Now)
	if err == nil {
		err = ring.Read(ctx)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	// Listing clients needs no pepper, and this registry never checks or
	// makes a secret (its store refuses writes): a zero one will do.
	clients, err := oauth.NewClients(storeadapt.Clients(st, store.DefaultNamespace), make([]byte, 32), time.Now)
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
