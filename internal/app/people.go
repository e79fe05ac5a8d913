package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/scim"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// pseudonymKey derives the key erased users' pseudonyms are made with
// from the pepper, so that it is as durable and as shared as the pepper
// and never the same bytes.
func pseudonymKey(pepper []byte) []byte {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte("verdict pseudonym key v1"))
	return mac.Sum(nil)
}

// usersService builds the users service over the state's store; revoker
// revokes the refresh families of ended sessions.
func usersService(cfg Config, st *State, revoker users.FamilyRevoker, log *slog.Logger) (*users.Service, error) {
	var breached users.Breached
	if f := cfg.Users.Passwords.BreachedFile; f != "" {
		list, err := users.LoadBreached(f)
		if err != nil {
			return nil, err
		}
		log.Info("breached-password list loaded", "entries", list.Len())
		breached = list
	}
	stores := storeadapt.Users(st.Store, store.DefaultNamespace)
	stores.Revoker = revoker
	return users.New(cfg.Users, stores, breached, log, time.Now)
}

// authorizer builds the authorization-code flow over the users service.
func authorizer(cfg Config, st *State, people *users.Service, refresher *oauth.Refresher) (*oauth.Authorizer, error) {
	ic := cfg.IssuerConfig()
	ids := oauth.NewIDTokenIssuer(ic.Issuer, st.Keys, ic.AccessTokenTTL, time.Now)
	return oauth.NewAuthorizer(ic.Issuer, st.Clients, storeadapt.Codes(st.Store, store.DefaultNamespace), people, refresher, ids, time.Now)
}

// noForget is the JTIForgetter of a CLI command: it has no verification
// cache to drop tokens from (a running server learns of revocations from
// the store).
type noForget struct{}

func (noForget) ForgetJTI(string) {}

// UsersService is the users service for CLI commands over the state:
// ending sessions and erasing users revoke refresh tokens in the store.
func (s *State) UsersService(cfg Config, log *slog.Logger) (*users.Service, error) {
	issuer, err := oauth.NewTokenIssuer(cfg.IssuerConfig(), s.Keys, time.Now)
	if err != nil {
		return nil, err
	}
	rc := cfg.RefreshConfig()
	rc.Logger = log
	refresher, err := oauth.NewRefresher(rc, issuer, storeadapt.Refresh(s.Store, store.DefaultNamespace),
		storeadapt.Revocations(s.Store, store.DefaultNamespace), noForget{}, time.Now)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return usersService(cfg, s, refresher, log)
}

var _ oauth.JTIForgetter = noForget{}
var _ oauth.JTIForgetter = (*authn.Verifier)(nil)

// keyRevocations records revoked API keys in the store and checks them
// with the server's revocation check (the mirror, with a shared store).
type keyRevocations struct {
	store storeadapt.RevocationStore
	check authn.RevocationChecker
}

func (k keyRevocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	return k.store.Revoke(ctx, jti, exp)
}

func (k keyRevocations) Revoked(ctx context.Context, jti string) (bool, error) {
	return k.check.Revoked(ctx, jti)
}

// apiKeys builds the API keys over the state's store; check is the
// revocation check (nil: the store's own).
func apiKeys(cfg Config, st *State, check authn.RevocationChecker, log *slog.Logger) (*apikeys.Service, error) {
	revs := storeadapt.Revocations(st.Store, store.DefaultNamespace)
	if check == nil {
		check = revs
	}
	return apikeys.New(cfg.APIKeys, storeadapt.APIKeys(st.Store, store.DefaultNamespace), keyRevocations{store: revs, check: check},
		st.Pepper, log, time.Now)
}

// APIKeysService is the API keys for CLI commands over the state.
func (s *State) APIKeysService(cfg Config, log *slog.Logger) (*apikeys.Service, error) {
	return apiKeys(cfg, s, nil, log)
}

// facts keeps the users and groups provisioned over SCIM in the data the
// active bundles see (scim.Facts as the bundles' overlay).
type facts struct {
	mgr *bundles.Manager
	st  scim.Store
	mu  sync.Mutex // one rebuild at a time
}

// load reads the provisioned data into the overlay, for the activations
// to come.
func (f *facts) load(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	doc, err := scim.Facts(ctx, f.st)
	if err != nil {
		return fmt.Errorf("provisioned data: %w", err)
	}
	f.mgr.SetOverlay(bundles.Overlay(doc))
	return nil
}

// Refresh reads the provisioned data again and compiles the active
// bundles with it (a new generation: no cached decision of the old data
// is served).
func (f *facts) Refresh(ctx context.Context) error {
	if err := f.load(ctx); err != nil {
		return err
	}
	return f.mgr.Reapply(ctx)
}
