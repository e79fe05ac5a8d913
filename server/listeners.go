package server

import (
	"crypto/tls"
	"net"

	"github.com/gofiber/fiber/v2"
)

// The admin listener (server.admin_addr): when it is set, the routes of
// operators (metrics, status, bundles, admin) are answered there and not on
// the public listener, and the admin listener answers nothing else but the
// probes, the OpenAPI document and the sign-in pages (people sign in to the
// console there). Both listeners share one Fiber app; a
// connection knows which listener accepted it by its type.

// adminListener marks the connections it accepts.
type adminListener struct{ net.Listener }

type adminConn struct{ net.Conn }

func (l adminListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return adminConn{c}, nil
}

// fromAdmin reports whether c came through the admin listener.
func fromAdmin(c *fiber.Ctx) bool {
	conn := c.Context().Conn()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	_, ok := conn.(adminConn)
	return ok
}

// Where a route is answered when an admin listener is set.
type listenerClass int

const (
	publicOnly listenerClass = iota
	adminOnly
	bothListeners
)

// classOf says where the route with template p is answered.
func classOf(p string) listenerClass {
	switch {
	case p == "/healthz", p == "/readyz", p == "/openapi.json",
		// People sign in to the console where it is served.
		p == "/login", p == "/login/mfa":
		return bothListeners
	case p == MetricsPath, p == "/v1/status", underPrefix(p, "/v1/bundles"), underPrefix(p, "/v1/admin"), underPrefix(p, consolePath):
		return adminOnly
	}
	return publicOnly
}

// onListener answers 404, as for a path that does not exist, a request that
// came through the other listener than the route's.
func onListener(admin bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if fromAdmin(c) != admin {
			return newError(fiber.StatusNotFound, CodeNotFound, "no route "+c.Method()+" "+c.Path())
		}
		return c.Next()
	}
}
