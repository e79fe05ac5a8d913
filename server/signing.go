package server

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/verdictpdp/verdict/authn"
	"github.com/verdictpdp/verdict/pdp"
)

// Signed decisions and cache hints, the transport's part: the caller a
// signature names, and the Cache-Control of a decision answer. The
// decision service makes both (pdp: sign.go, hints.go).

var _ pdp.Signer = (*authn.Keyring)(nil)

// WithDecisionSigner lets the decision routes sign decisions with sig, the
// key ring whose JWKS /.well-known/jwks.json serves, naming issuer (the
// token issuer) as their iss: on request ("options": {"signed": true}) and,
// with server.sign_decisions, always. Without it a request for a signature
// is refused with 400 and server.sign_decisions fails New.
func WithDecisionSigner(sig pdp.Signer, issuer string) Option {
	return func(s *Server) { s.signer, s.signerIssuer = sig, issuer }
}

// decisionMeta is the Meta of a decision request on route e: its request
// id and the caller its credential named ("" on an open route).
func decisionMeta(c *fiber.Ctx, e pdp.Endpoint) pdp.Meta {
	m := pdp.Meta{Endpoint: e, RequestID: requestID(c), RemoteAddr: remoteAddr(c)}
	if cl, ok := c.Locals(callerClaims).(authn.Claims); ok {
		m.Caller, _ = cl["client_id"].(string)
		if m.Caller == "" {
			m.Caller = cl.Subject()
		}
		m.CallerIssuer = cl.Issuer()
	}
	return m
}

// setDecisionCaching says how long the caller may keep res: Cache-Control
// private (a decision is for the caller that asked, never a shared cache),
// max-age its least context.ttl. Without a hint the answer keeps guard's
// no-store.
func setDecisionCaching(c *fiber.Ctx, res pdp.Result) {
	if age := res.MaxAge(); age > 0 {
		c.Set(fiber.HeaderCacheControl, "private, max-age="+strconv.Itoa(age))
	}
}
