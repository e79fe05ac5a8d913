package storeadapt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verdictpdp/verdict/apikeys"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/scim"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// Users is every store the users service needs, over st's namespace ns.
func Users(st store.People, ns string) users.Stores {
	p := people{st: st, ns: ns}
	return users.Stores{Users: p, Attempts: p, Sessions: p, Consents: p, Families: p, Audit: p}
}

// people adapts the store's people records to the users service.
type people struct {
	st store.People
	ns string
}

var (
	_ users.UserStore    = people{}
	_ users.AttemptStore = people{}
	_ users.SessionStore = people{}
	_ users.ConsentStore = people{}
	_ users.FamilyStore  = people{}
	_ users.AuditStore   = people{}
)

func usersErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", users.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", users.ErrExists, err)
	}
	return err
}

// convert converts each element of a slice with a type conversion.
func convert[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func (p people) CreateUser(ctx context.Context, u users.User) error {
	return usersErr(p.st.CreateUser(ctx, p.ns, store.User(u)))
}

func (p people) UpdateUser(ctx context.Context, u users.User) error {
	return usersErr(p.st.UpdateUser(ctx, p.ns, store.User(u)))
}

func (p people) User(ctx context.Context, id string) (users.User, error) {
	u, err := p.st.User(ctx, p.ns, id)
	return users.User(u), usersErr(err)
}

func (p people) UserByEmail(ctx context.Context, email string) (users.User, error) {
	u, err := p.st.UserByEmail(ctx, p.ns, email)
	return users.User(u), usersErr(err)
}

func (p people) ListUsers(ctx context.Context) ([]users.User, error) {
	us, err := p.st.ListUsers(ctx, p.ns)
	return convert(us, func(u store.User) users.User { return users.User(u) }), err
}

func (p people) DeleteUser(ctx context.Context, id string) error {
	return usersErr(p.st.DeleteUser(ctx, p.ns, id))
}

func (p people) AddFailure(ctx context.Context, key string, expires time.Time) (int, error) {
	return p.st.AddFailure(ctx, p.ns, key, expires)
}

func (p people) LockUntil(ctx context.Context, key string, until time.Time) error {
	return usersErr(p.st.LockUntil(ctx, p.ns, key, until))
}

func (p people) Attempts(ctx context.Context, key string) (users.LoginAttempts, error) {
	a, err := p.st.Attempts(ctx, p.ns, key)
	return users.LoginAttempts(a), err
}

func (p people) ClearAttempts(ctx context.Context, key string) error {
	return p.st.ClearAttempts(ctx, p.ns, key)
}

func (p people) PutSession(ctx context.Context, s users.Session) error {
	return p.st.PutSession(ctx, p.ns, store.Session(s))
}

func (p people) Session(ctx context.Context, id string) (users.Session, error) {
	s, err := p.st.Session(ctx, p.ns, id)
	return users.Session(s), usersErr(err)
}

func (p people) UserSessions(ctx context.Context, userID string) ([]users.Session, error) {
	ss, err := p.st.UserSessions(ctx, p.ns, userID)
	return convert(ss, func(s store.Session) users.Session { return users.Session(s) }), err
}

func (p people) DeleteSession(ctx context.Context, id string) (users.Session, error) {
	s, err := p.st.DeleteSession(ctx, p.ns, id)
	return users.Session(s), usersErr(err)
}

func (p people) PutConsent(ctx context.Context, c users.Consent) error {
	return p.st.PutConsent(ctx, p.ns, store.Consent(c))
}

func (p people) Consent(ctx context.Context, userID, clientID string) (users.Consent, error) {
	c, err := p.st.Consent(ctx, p.ns, userID, clientID)
	return users.Consent(c), usersErr(err)
}

func (p people) UserConsents(ctx context.Context, userID string) ([]users.Consent, error) {
	cs, err := p.st.UserConsents(ctx, p.ns, userID)
	return convert(cs, func(c store.Consent) users.Consent { return users.Consent(c) }), err
}

func (p people) DeleteUserConsents(ctx context.Context, userID string) error {
	return p.st.DeleteUserConsents(ctx, p.ns, userID)
}

func (p people) AddUserFamily(ctx context.Context, userID string, f users.UserFamily) error {
	return p.st.AddUserFamily(ctx, p.ns, userID, store.UserFamily(f))
}

func (p people) UserFamilies(ctx context.Context, userID string) ([]users.UserFamily, error) {
	fs, err := p.st.UserFamilies(ctx, p.ns, userID)
	return convert(fs, func(f store.UserFamily) users.UserFamily { return users.UserFamily(f) }), err
}

func (p people) DeleteUserFamilies(ctx context.Context, userID string) error {
	return p.st.DeleteUserFamilies(ctx, p.ns, userID)
}

func (p people) AppendAudit(ctx context.Context, e users.AuditEvent) error {
	return p.st.AppendAudit(ctx, p.ns, store.AuditEvent(e))
}

func (p people) UserAudit(ctx context.Context, userID string) ([]users.AuditEvent, error) {
	es, err := p.st.UserAudit(ctx, p.ns, userID)
	return convert(es, func(e store.AuditEvent) users.AuditEvent { return users.AuditEvent(e) }), err
}

func (p people) PseudonymizeAudit(ctx context.Context, userID, pseudonym string) (int, error) {
	return p.st.PseudonymizeAudit(ctx, p.ns, userID, pseudonym)
}

// Codes is the authorization codes of st's namespace ns.
func Codes(st store.AuthCodes, ns string) oauth.CodeStore { return codes{st: st, ns: ns} }

type codes struct {
	st store.AuthCodes
	ns string
}

func codeErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", oauth.ErrUnknownCode, err)
	}
	return err
}

func (c codes) CreateCode(ctx context.Context, code oauth.AuthCode) error {
	return c.st.CreateCode(ctx, c.ns, store.AuthCode(code))
}

func (c codes) RedeemCode(ctx context.Context, hash, family, accessJTI string) (oauth.AuthCode, bool, error) {
	code, first, err := c.st.RedeemCode(ctx, c.ns, hash, family, accessJTI)
	return oauth.AuthCode(code), first, codeErr(err)
}

// APIKeys is the API keys of st's namespace ns.
func APIKeys(st store.APIKeys, ns string) apikeys.Store { return apiKeyStore{st: st, ns: ns} }

type apiKeyStore struct {
	st store.APIKeys
	ns string
}

func apikeyErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", apikeys.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", apikeys.ErrExists, err)
	}
	return err
}

func (a apiKeyStore) CreateAPIKey(ctx context.Context, k apikeys.Key) error {
	return apikeyErr(a.st.CreateAPIKey(ctx, a.ns, toStoreKey(k)))
}

func (a apiKeyStore) UpdateAPIKey(ctx context.Context, k apikeys.Key) error {
	return apikeyErr(a.st.UpdateAPIKey(ctx, a.ns, toStoreKey(k)))
}

func (a apiKeyStore) APIKey(ctx context.Context, id string) (apikeys.Key, error) {
	k, err := a.st.APIKey(ctx, a.ns, id)
	return apikeys.Key(k), apikeyErr(err)
}

func (a apiKeyStore) ListAPIKeys(ctx context.Context) ([]apikeys.Key, error) {
	ks, err := a.st.ListAPIKeys(ctx, a.ns)
	return convert(ks, func(k store.APIKey) apikeys.Key { return apikeys.Key(k) }), err
}

func (a apiKeyStore) AddAPIKeyUse(ctx context.Context, id string, n int64, last time.Time) error {
	return a.st.AddAPIKeyUse(ctx, a.ns, id, n, last)
}

func (a apiKeyStore) APIKeyUse(ctx context.Context, id string) (apikeys.Use, error) {
	u, err := a.st.APIKeyUse(ctx, a.ns, id)
	return apikeys.Use(u), err
}

func toStoreKey(k apikeys.Key) store.APIKey { return store.APIKey(k) }

// Directory is the provisioned users and groups of st's namespace ns.
func Directory(st store.Directory, ns string) scim.Store { return directory{st: st, ns: ns} }

type directory struct {
	st store.Directory
	ns string
}

func dirErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", scim.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", scim.ErrConflict, err)
	}
	return err
}

func (d directory) CreateEntry(ctx context.Context, e scim.Entry) (scim.Entry, error) {
	out, err := d.st.CreateEntry(ctx, d.ns, store.DirectoryEntry(e))
	return scim.Entry(out), dirErr(err)
}

func (d directory) ReplaceEntry(ctx context.Context, e scim.Entry, ifVersion int64) (scim.Entry, error) {
	out, err := d.st.ReplaceEntry(ctx, d.ns, store.DirectoryEntry(e), ifVersion)
	return scim.Entry(out), dirErr(err)
}

func (d directory) Entry(ctx context.Context, typ, id string) (scim.Entry, error) {
	e, err := d.st.Entry(ctx, d.ns, typ, id)
	return scim.Entry(e), dirErr(err)
}

func (d directory) Entries(ctx context.Context, typ string) ([]scim.Entry, error) {
	es, err := d.st.Entries(ctx, d.ns, typ)
	return convert(es, func(e store.DirectoryEntry) scim.Entry { return scim.Entry(e) }), err
}

func (d directory) DeleteEntry(ctx context.Context, typ, id string, ifVersion int64) error {
	return dirErr(d.st.DeleteEntry(ctx, d.ns, typ, id, ifVersion))
}
