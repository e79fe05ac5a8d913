package server

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/apikeys"
)

// APIKeyAdmin is what /v1/admin/apikeys needs of the API keys.
type APIKeyAdmin interface {
	Create(ctx context.Context, sp apikeys.Spec) (apikeys.Key, string, error)
	List(ctx context.Context) ([]apikeys.Info, error)
	Get(ctx context.Context, id string) (apikeys.Info, error)
	Rotate(ctx context.Context, id string, overlap time.Duration) (apikeys.Key, string, error)
	Revoke(ctx context.Context, id string) error
}

var _ APIKeyAdmin = (*apikeys.Service)(nil)

// WithAPIKeyAdmin serves /v1/admin/apikeys (scope verdict:admin).
func WithAPIKeyAdmin(a APIKeyAdmin) Option {
	return func(s *Server) { s.apikeyAdmin = a }
}

func apikeyErr(err error) error {
	switch {
	case errors.Is(err, apikeys.ErrNotFound):
		return newError(fiber.StatusNotFound, CodeNotFound, "no such API key")
	case errors.Is(err, apikeys.ErrSpec), errors.Is(err, apikeys.ErrInvalid):
		return newError(fiber.StatusBadRequest, CodeInvalidInput, err.Error())
	}
	return err
}

func (s *Server) apikeysReady() error {
	if s.apikeyAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no API keys")
	}
	return nil
}

// createAPIKey is POST /v1/admin/apikeys: {name, scopes, expires_in
// ("90d", "720h"), client_id} → 201 {key (shown once), apikey}.
func (s *Server) createAPIKey(c *fiber.Ctx) error {
	if err := s.apikeysReady(); err != nil {
		return err
	}
	var in struct {
		Name      string   `json:"name"`
		Scopes    []string `json:"scopes"`
		ExpiresIn string   `json:"expires_in"`
		ClientID  string   `json:"client_id"`
	}
	if err := s.adminJSON(c, &in); err != nil {
		return err
	}
	var exp time.Duration
	if in.ExpiresIn != "" {
		d, err := apikeys.ParseDuration(in.ExpiresIn)
		if err != nil {
			return newError(fiber.StatusBadRequest, CodeInvalidInput, "expires_in: "+err.Error())
		}
		exp = d
	}
	k, text, err := s.apikeyAdmin.Create(c.UserContext(), apikeys.Spec{Name: in.Name, Scopes: in.Scopes, ExpiresIn: exp, ClientID: in.ClientID, CreatedBy: callerID(c)})
	if err != nil {
		return apikeyErr(err)
	}
	info, err := s.apikeyAdmin.Get(c.UserContext(), k.ID)
	if err != nil {
		return apikeyErr(err)
	}
	s.log.Info("API key created", "audit", true, "action", "apikey.create", "request_id", requestID(c), "apikey_id", k.ID, "by", callerID(c), "outcome", "success")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"key": text, "apikey": info})
}

func (s *Server) listAPIKeys(c *fiber.Ctx) error {
	if err := s.apikeysReady(); err != nil {
		return err
	}
	list, err := s.apikeyAdmin.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"apikeys": list})
}

func (s *Server) getAPIKey(c *fiber.Ctx) error {
	if err := s.apikeysReady(); err != nil {
		return err
	}
	info, err := s.apikeyAdmin.Get(c.UserContext(), utils.CopyString(c.Params("id")))
	if err != nil {
		return apikeyErr(err)
	}
	return c.JSON(info)
}

// rotateAPIKey is POST /v1/admin/apikeys/:id/rotate?overlap=1h → {key
// (shown once), apikey}: the old secret works until the overlap ends.
func (s *Server) rotateAPIKey(c *fiber.Ctx) error {
	if err := s.apikeysReady(); err != nil {
		return err
	}
	var overlap time.Duration
	if o := c.Query("overlap"); o != "" {
		d, err := apikeys.ParseDuration(o)
		if err != nil {
			return newError(fiber.StatusBadRequest, CodeInvalidInput, "overlap: "+err.Error())
		}
		if d == 0 {
			d = -1 // "0s": the old secret stops at once
		}
		overlap = d
	}
	id := utils.CopyString(c.Params("id"))
	_, text, err := s.apikeyAdmin.Rotate(c.UserContext(), id, overlap)
	if err != nil {
		return apikeyErr(err)
	}
	info, err := s.apikeyAdmin.Get(c.UserContext(), id)
	if err != nil {
		return apikeyErr(err)
	}
	s.log.Info("API key rotated", "audit", true, "action", "apikey.rotate", "request_id", requestID(c), "apikey_id", id, "by", callerID(c), "outcome", "success")
	return c.JSON(fiber.Map{"key": text, "apikey": info})
}

// revokeAPIKey is DELETE /v1/admin/apikeys/:id: the key stops working on
// every replica within the poll interval (at once on this one).
func (s *Server) revokeAPIKey(c *fiber.Ctx) error {
	if err := s.apikeysReady(); err != nil {
		return err
	}
	id := utils.CopyString(c.Params("id"))
	if err := s.apikeyAdmin.Revoke(c.UserContext(), id); err != nil {
		return apikeyErr(err)
	}
	s.log.Info("API key revoked", "audit", true, "action", "apikey.revoke", "request_id", requestID(c), "apikey_id", id, "by", callerID(c), "outcome", "success")
	info, err := s.apikeyAdmin.Get(c.UserContext(), id)
	if err != nil {
		return apikeyErr(err)
	}
	return c.JSON(info)
}
