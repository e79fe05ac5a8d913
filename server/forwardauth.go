package server

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/forward"
	"github.com/verdictpdp/verdict/pdp"
)

// Error codes of forward-auth.
const (
	CodeUntrustedProxy = "untrusted_proxy"
	CodeNoOriginal     = "no_original_request"
	CodeAccessDenied   = "access_denied"
)

// ForwardAuthPath is the route gateways call; every sub-path answers too.
const ForwardAuthPath = forward.Path

// WithForwardAuth configures /v1/forward-auth. Without it the route uses
// forward.DefaultConfig.
func WithForwardAuth(fa *forward.Auth) Option {
	return func(s *Server) { s.forward = fa }
}

// forwardAuth decides the original request a gateway forwards: 200 allow
// (with the configured response headers), 401 for an invalid token or a
// denied anonymous request, 403 for a denied user. A policy problem is a
// deny, never a 5xx. The input is built by package forward, as for Envoy's
// gRPC ext_authz.
func (s *Server) forwardAuth(c *fiber.Ctx) error {
	fa := s.forward
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	if !fa.Trusted(peer, c.Get(fa.Config().SecretHeader)) {
		s.log.Warn("forward-auth call from an untrusted address refused", "request_id", requestID(c), "peer", c.Context().RemoteIP().String())
		return newError(fiber.StatusForbidden, CodeUntrustedProxy, "forward-auth answers only the gateways in forward_auth.trusted_proxies")
	}
	orig, err := original(c, fa.Config().EnvoyPrefix)
	if err != nil {
		return err
	}
	claims, err := s.forwardSubject(c)
	if err != nil {
		return err
	}
	in := fa.Input(c.UserContext(), orig, claims, func(h string) string { return c.Get(h) })
	// Everything in the input came from the request line and its headers
	// (the token's claims too).
	in.SizeBound = len(c.Request().Header.RawHeaders()) + len(c.Request().RequestURI())
	if len(c.Request().Header.RawHeaders()) == 0 {
		in.SizeBound = 0 // not kept: the size is unknown
	}

	d := s.dec.Evaluate(c.UserContext(), in, false, pdp.Meta{Endpoint: pdp.EndpointForwardAuth, RequestID: requestID(c), RemoteAddr: remoteAddr(c)})
	if !d.Decision {
		if in.Subject.Type == forward.AnonymousType {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict"`)
			return newError(fiber.StatusUnauthorized, CodeUnauthorized, "denied without a token; sign in (decision "+d.Context.DecisionID+")")
		}
		return newError(fiber.StatusForbidden, CodeAccessDenied, "denied (decision "+d.Context.DecisionID+")")
	}
	fa.ResponseHeaders(in, d, func(name, value string) { c.Set(name, value) })
	return c.JSON(d)
}

// original reads the original request from the gateway's conventions, in
// this order: Envoy (a path under envoyPrefix), nginx (X-Original-URL or
// X-Original-URI, X-Original-Method), Traefik and Caddy (X-Forwarded-Uri,
// -Method, -Host, -Proto). Without any of them it is a 400: the gateway is
// misconfigured, and nothing may be guessed.
func original(c *fiber.Ctx, envoyPrefix string) (forward.Original, error) {
	method, uri, host, scheme := utils.CopyString(c.Method()), "", "", ""
	full := string(c.Request().URI().RequestURI())
	switch p := strings.SplitN(full, "?", 2)[0]; {
	case p == envoyPrefix || strings.HasPrefix(p, envoyPrefix+"/"):
		uri = strings.TrimPrefix(full, envoyPrefix)
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
		host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost, string(c.Request().Host())))
		scheme = utils.CopyString(c.Get(fiber.HeaderXForwardedProto))
	case c.Get("X-Original-URL") != "" || c.Get("X-Original-URI") != "":
		if raw := utils.CopyString(c.Get("X-Original-URL")); raw != "" {
			u, err := url.Parse(raw)
			if err != nil || !u.IsAbs() {
				return forward.Original{}, newError(fiber.StatusBadRequest, CodeNoOriginal, "X-Original-URL: must be an absolute URL")
			}
			scheme, host, uri = u.Scheme, u.Host, u.RequestURI()
		}
		if raw := c.Get("X-Original-URI"); raw != "" {
			uri = utils.CopyString(raw)
		}
		if host == "" {
			host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost))
		}
		if m := c.Get("X-Original-Method"); m != "" {
			method = utils.CopyString(m)
		}
	case c.Get("X-Forwarded-Uri") != "":
		uri = utils.CopyString(c.Get("X-Forwarded-Uri"))
		host = utils.CopyString(c.Get(fiber.HeaderXForwardedHost))
		scheme = utils.CopyString(c.Get(fiber.HeaderXForwardedProto))
		if m := c.Get("X-Forwarded-Method"); m != "" {
			method = utils.CopyString(m)
		}
	default:
		return forward.Original{}, newError(fiber.StatusBadRequest, CodeNoOriginal,
			"no original request: send X-Original-URI (nginx), X-Forwarded-Uri (Traefik, Caddy), or call "+envoyPrefix+"<path> (Envoy)")
	}
	o, err := forward.ParseTarget(method, uri, host, scheme)
	if err != nil {
		return o, newError(fiber.StatusBadRequest, CodeNoOriginal, err.Error())
	}
	return o, nil
}

// forwardSubject returns the claims of the original request's Bearer
// token: nil for none (or another scheme: an anonymous request); an
// invalid one is a 401 and a token that cannot be checked now a 503, never
// a pass.
func (s *Server) forwardSubject(c *fiber.Ctx) (authn.Claims, error) {
	tok, ok := forward.EndUserToken(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return nil, nil
	}
	return s.verifyBearer(c.UserContext(), utils.CopyString(tok), "end-user")
}
