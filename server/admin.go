package server

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/verdictpdp/verdict/oauth"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/authn"
)

// ClientAdmin is what the admin routes need of the client registry.
type ClientAdmin interface {
	Add(ctx context.Context, spec oauth.ClientSpec) (oauth.Client, string, error)
	List(ctx context.Context) ([]oauth.ClientInfo, error)
	Get(ctx context.Context, id string) (oauth.ClientInfo, error)
	Remove(ctx context.Context, id string) error
	RotateSecret(ctx context.Context, id string) (string, error)
}

var _ ClientAdmin = (*oauth.Clients)(nil)

// WithClientAdmin serves /v1/admin/clients (scope verdict:admin).
func WithClientAdmin(c ClientAdmin) Option {
	return func(s *Server) { s.clientAdmin = c }
}

// Codes of the admin routes.
const (
	CodeConflict = "conflict"
)

// clientErr maps the registry's errors to responses; validation problems
// are the caller's (400), everything else is internal.
func clientErr(err error) error {
	switch {
	case errors.Is(err, oauth.ErrUnknownClient):
		return newError(fiber.StatusNotFound, CodeNotFound, "no such client")
	case errors.Is(err, oauth.ErrClientExists):
		return newError(fiber.StatusConflict, CodeConflict, "a client with that id exists")
	case errors.Is(err, errInvalidSpec):
		return newError(fiber.StatusBadRequest, CodeInvalidInput, err.Error())
	}
	return err
}

var errInvalidSpec = errors.New("invalid client")

func (s *Server) adminReady(c *fiber.Ctx) error {
	if s.clientAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no client registry")
	}
	return nil
}

// addClient is POST /v1/admin/clients: {id, scopes, grants, jwks, no_secret}
// → 201 {client, client_secret (shown once)}.
func (s *Server) addClient(c *fiber.Ctx) error {
	if err := s.adminReady(c); err != nil {
		return err
	}
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	doc, err := decodeObject(c.Body(), s.cfg.MaxDepth)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(doc)
	var in struct {
		ID       string          `json:"id"`
		Scopes   []string        `json:"scopes"`
		Grants   []string        `json:"grants"`
		JWKS     json.RawMessage `json:"jwks"`
		NoSecret bool            `json:"no_secret"`
		// The authorization-code flow's settings.
		RedirectURIs           []string `json:"redirect_uris"`
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
		FirstParty             bool     `json:"first_party"`
		Public                 bool     `json:"public"`
		Name                   string   `json:"name"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return newError(fiber.StatusBadRequest, CodeInvalidInput, "fields have the wrong types: "+jsonMsg(err))
	}
	spec := oauth.ClientSpec{
		ID: in.ID, Scopes: in.Scopes, Grants: in.Grants, NoSecret: in.NoSecret,
		RedirectURIs: in.RedirectURIs, PostLogoutRedirectURIs: in.PostLogoutRedirectURIs,
		FirstParty: in.FirstParty, Public: in.Public, Name: in.Name,
	}
	if len(in.JWKS) > 0 && string(in.JWKS) != "null" {
		spec.JWKS = in.JWKS
	}
	if err := spec.Validate(); err != nil {
		return clientErr(errors.Join(errInvalidSpec, err))
	}
	cl, secret, err := s.clientAdmin.Add(c.UserContext(), spec)
	if err != nil {
		return clientErr(err)
	}
	info, err := s.clientAdmin.Get(c.UserContext(), cl.ID)
	if err != nil {
		return clientErr(err)
	}
	s.log.Info("client added", "audit", true, "action", "client.add", "request_id", requestID(c), "client_id", cl.ID, "by", callerID(c), "outcome", "success")
	c.Set(fiber.HeaderCacheControl, "no-store")
	out := fiber.Map{"client": info}
	if secret != "" {
		out["client_secret"] = secret
	}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) listClients(c *fiber.Ctx) error {
	if err := s.adminReady(c); err != nil {
		return err
	}
	cs, err := s.clientAdmin.List(c.UserContext())
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []oauth.ClientInfo{}
	}
	return c.JSON(fiber.Map{"clients": cs})
}

func (s *Server) getClient(c *fiber.Ctx) error {
	if err := s.adminReady(c); err != nil {
		return err
	}
	info, err := s.clientAdmin.Get(c.UserContext(), utils.CopyString(c.Params("id")))
	if err != nil {
		return clientErr(err)
	}
	return c.JSON(info)
}

func (s *Server) removeClient(c *fiber.Ctx) error {
	if err := s.adminReady(c); err != nil {
		return err
	}
	id := utils.CopyString(c.Params("id"))
	if err := s.clientAdmin.Remove(c.UserContext(), id); err != nil {
		return clientErr(err)
	}
	s.log.Info("client removed", "audit", true, "action", "client.remove", "request_id", requestID(c), "client_id", id, "by", callerID(c), "outcome", "success")
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) rotateClientSecret(c *fiber.Ctx) error {
	if err := s.adminReady(c); err != nil {
		return err
	}
	id := utils.CopyString(c.Params("id"))
	secret, err := s.clientAdmin.RotateSecret(c.UserContext(), id)
	if err != nil {
		return clientErr(err)
	}
	s.log.Info("client secret rotated", "audit", true, "action", "client.rotate-secret", "request_id", requestID(c), "client_id", id, "by", callerID(c), "outcome", "success")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"client_id": id, "client_secret": secret})
}

// callerID names the authenticated caller for audit lines.
func callerID(c *fiber.Ctx) string {
	if cl, ok := c.Locals(callerClaims).(authn.Claims); ok {
		if id, _ := cl["client_id"].(string); id != "" {
			return id
		}
		return cl.Subject()
	}
	return "unauthenticated (dev)"
}

// KeyAdmin is what the admin routes need of the signing-key ring.
type KeyAdmin interface {
	List() []authn.KeyInfo
	Rotate(ctx context.Context) (authn.Key, error)
	Revoke(ctx context.Context, kid string) error
}

var _ KeyAdmin = (*authn.Keyring)(nil)

// WithKeyAdmin serves /v1/admin/keys (scope verdict:admin).
func WithKeyAdmin(k KeyAdmin) Option {
	return func(s *Server) { s.keyAdmin = k }
}

func (s *Server) keysReady() error {
	if s.keyAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no signing keys")
	}
	return nil
}

// listKeys is GET /v1/admin/keys: every key without its private part.
func (s *Server) listKeys(c *fiber.Ctx) error {
	if err := s.keysReady(); err != nil {
		return err
	}
	ks := s.keyAdmin.List()
	if ks == nil {
		ks = []authn.KeyInfo{}
	}
	return c.JSON(fiber.Map{"keys": ks})
}

// rotateKeys is POST /v1/admin/keys/rotate: a new key, published now and
// signing after one JWKS max-age.
func (s *Server) rotateKeys(c *fiber.Ctx) error {
	if err := s.keysReady(); err != nil {
		return err
	}
	k, err := s.keyAdmin.Rotate(c.UserContext())
	if err != nil {
		return err
	}
	s.log.Info("signing key rotated", "audit", true, "action", "keys.rotate", "request_id", requestID(c), "kid", k.KID, "alg", k.Alg,
		"sign_from", k.SignFrom, "by", callerID(c), "outcome", "success")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"kid": k.KID, "alg": k.Alg, "sign_from": k.SignFrom})
}

// revokeKey is POST /v1/admin/keys/:kid/revoke: the emergency stop.
func (s *Server) revokeKey(c *fiber.Ctx) error {
	if err := s.keysReady(); err != nil {
		return err
	}
	kid := utils.CopyString(c.Params("kid"))
	if err := s.keyAdmin.Revoke(c.UserContext(), kid); err != nil {
		if errors.Is(err, authn.ErrUnknownKey) {
			return newError(fiber.StatusNotFound, CodeNotFound, "no such key")
		}
		return err
	}
	s.log.Warn("signing key revoked", "audit", true, "action", "keys.revoke", "request_id", requestID(c), "kid", kid, "by", callerID(c), "outcome", "success")
	return c.JSON(fiber.Map{"keys": s.keyAdmin.List()})
}
