package server

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// scimPrefix is where the SCIM 2.0 service provider answers.
const scimPrefix = "/scim/v2"

// WithSCIM serves SCIM 2.0 provisioning (scim.New) under /scim/v2, for
// callers with verdict:scim (a token or an API key), always: --dev never
// opens it.
func WithSCIM(h http.Handler) Option {
	return func(s *Server) { s.scim = adaptor.HTTPHandler(http.StripPrefix(scimPrefix, h)) }
}

// scimRoute is every /scim/v2/… request.
func (s *Server) scimRoute(c *fiber.Ctx) error {
	if s.scim == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no SCIM provisioning")
	}
	return s.scim(c)
}
