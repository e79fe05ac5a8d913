// Package storeadapt adapts package store to the small storage interfaces
// its consumers declare, each in its own types: the key ring's
// (authn.KeyStore), the authorization server's (oauth.ClientStore,
// RefreshStore, RevocationStore, OneTimeIDs), the verifier's revocation
// check (authn.RevocationChecker), the bundle lifecycle's
// (bundles.RevisionStore) and the replica's (replica.Families,
// replica.RevokedLister, met structurally). Each adapter binds one namespace and turns the
// store's ErrNotFound and ErrConflict into the consumer's own errors,
// keeping the store's error in the chain (store.ErrUnavailable stays
// visible to errors.Is).
//
// This is the one persistence pattern: a consumer never imports package
// store; the wiring (internal/app) builds the adapters.
package storeadapt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/oauth"
	"github.com/verdictpdp/verdict/store"
)

// Keys is the key ring's store over st's namespace ns.
func Keys(st store.Keys, ns string) authn.KeyStore { return keyStore{st: st, ns: ns} }

// Clients is the client registry's store over st's namespace ns.
func Clients(st store.Clients, ns string) oauth.ClientStore { return clientStore{st: st, ns: ns} }

// Refresh is the refresh-token families' store over st's namespace ns.
func Refresh(st store.Refresh, ns string) oauth.RefreshStore { return refreshStore{st: st, ns: ns} }

// Revocations is the revoked access-token ids of st's namespace ns: the
// verifier's check, the authorization server's store and the replica's
// listing.
func Revocations(st store.Revocations, ns string) RevocationStore {
	return revocations{st: st, ns: ns}
}

// RevocationStore is everything that is done with revoked token ids.
type RevocationStore interface {
	authn.RevocationChecker
	oauth.RevocationStore
	// RevokedTokens lists the revoked ids with their expiry (for the
	// replica's mirror: replica.RevokedLister).
	RevokedTokens(ctx context.Context) ([]store.RevokedToken, error)
}

// OneTime is the one-time ids (client assertion jtis) of st's namespace ns.
func OneTime(st store.OneTime, ns string) oauth.OneTimeIDs { return oneTime{st: st, ns: ns} }

// FamilyJTIs gives the replica the access-token ids of a revoked refresh
// family of st's namespace ns.
// (replica.Families; package replica is not imported here, so that its
// own tests can use these adapters).
func FamilyJTIs(st store.Refresh, ns string) FamilyLister { return familyJTIs{st: st, ns: ns} }

// FamilyLister lists the access-token ids of a refresh family; none for
// an unknown family.
type FamilyLister interface {
	AccessJTIs(ctx context.Context, family string) ([]string, error)
}

// Revisions is the bundle lifecycle's store over st's namespace ns.
func Revisions(st store.Bundles, ns string) bundles.RevisionStore {
	return revisionStore{st: st, ns: ns}
}

// keyStore adapts the store's keys to what the key ring needs.
type keyStore struct {
	st store.Keys
	ns string
}

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

func (r revocations) Revoked(ctx context.Context, jti string) (bool, error) {
	return r.st.Revoked(ctx, r.ns, jti)
}

// refreshStore adapts the store's refresh families to the refresher.
type refreshStore struct {
	st store.Refresh
	ns string
}

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

// familyJTIs gives the replica the access-token ids of a revoked refresh
// family.
type familyJTIs struct {
	st store.Refresh
	ns string
}

func (f familyJTIs) AccessJTIs(ctx context.Context, family string) ([]string, error) {
	t, err := f.st.Family(ctx, f.ns, family)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return t.AccessJTIs, err
}

func (r revocations) RevokedTokens(ctx context.Context) ([]store.RevokedToken, error) {
	return r.st.RevokedTokens(ctx, r.ns)
}

// revisionStore adapts the store's bundle revisions to the lifecycle.
type revisionStore struct {
	st store.Bundles
	ns string
}

func revisionErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", bundles.ErrNotStored, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", bundles.ErrRevisionConflict, err)
	}
	return err
}

func toStored(r store.BundleRevision) bundles.StoredRevision {
	return bundles.StoredRevision{Revision: r.Revision, Digest: r.Digest, Size: r.Size, PushedAt: r.PushedAt, PushedBy: r.PushedBy,
		Tests: bundles.TestSummary{Passed: r.Tests.Passed, Failed: r.Tests.Failed}}
}

func (r revisionStore) PutRevision(ctx context.Context, rec bundles.StoredRevision, archive []byte) (bool, error) {
	created, err := r.st.PutRevision(ctx, r.ns, store.BundleRevision{Revision: rec.Revision, Digest: rec.Digest, Size: rec.Size,
		PushedAt: rec.PushedAt, PushedBy: rec.PushedBy, Tests: store.BundleTests{Passed: rec.Tests.Passed, Failed: rec.Tests.Failed}}, archive)
	return created, revisionErr(err)
}

func (r revisionStore) Revisions(ctx context.Context) ([]bundles.StoredRevision, error) {
	recs, err := r.st.Revisions(ctx, r.ns)
	if err != nil {
		return nil, revisionErr(err)
	}
	out := make([]bundles.StoredRevision, len(recs))
	for i, rec := range recs {
		out[i] = toStored(rec)
	}
	return out, nil
}

func (r revisionStore) Revision(ctx context.Context, rev string) (bundles.StoredRevision, error) {
	rec, err := r.st.Revision(ctx, r.ns, rev)
	if err != nil {
		return bundles.StoredRevision{}, revisionErr(err)
	}
	return toStored(rec), nil
}

func (r revisionStore) Archive(ctx context.Context, rev string) ([]byte, error) {
	a, err := r.st.Archive(ctx, r.ns, rev)
	return a, revisionErr(err)
}

func (r revisionStore) SetActive(ctx context.Context, rev string) error {
	return revisionErr(r.st.SetActive(ctx, r.ns, rev))
}

func (r revisionStore) ActiveRevision(ctx context.Context) (string, error) {
	rev, err := r.st.ActiveRevision(ctx, r.ns)
	return rev, revisionErr(err)
}
