package server

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// CORS is server.cors: the web origins whose pages may call Verdict from
// a browser. Off (no CORS header on any answer) unless AllowedOrigins
// lists some.
type CORS struct {
	// AllowedOrigins are exact origins (scheme://host[:port]), or "*" for
	// any origin without credentials.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowCredentials lets those pages send cookies and Authorization
	// headers the browser holds; never with "*".
	AllowCredentials bool `yaml:"allow_credentials"`
}

// validate reports every problem of c, each naming its key.
func (c CORS) validate() []error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			if c.AllowCredentials {
				errs = append(errs, fmt.Errorf(`server cors.allowed_origins[%d]: "*" cannot be combined with allow_credentials (any site could act with the caller's credentials)`, i))
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "/") {
			errs = append(errs, fmt.Errorf("server cors.allowed_origins[%d] %q: must be an origin, scheme://host[:port] (no path, no trailing slash)", i, o))
		}
	}
	return errs
}

// corsHandler is fiber's CORS middleware for s.cfg.CORS, nil when off.
// It answers preflight requests itself; everything else goes on to the
// routes with the CORS headers set for an allowed origin.
func (s *Server) corsHandler() fiber.Handler {
	c := s.cfg.CORS
	if len(c.AllowedOrigins) == 0 {
		return nil
	}
	return cors.New(cors.Config{
		AllowOrigins:     strings.Join(c.AllowedOrigins, ","),
		AllowCredentials: c.AllowCredentials,
		AllowMethods:     "GET,POST,DELETE,HEAD",
		AllowHeaders:     "Authorization,Content-Type,X-Request-ID," + reasonsHeader,
		ExposeHeaders:    "X-Request-Id," + decisionIDHeader + ",Retry-After,WWW-Authenticate,ETag",
		MaxAge:           600,
	})
}
