package server

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Headers server.client_ip_header may name.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
	HeaderXRealIP       = "X-Real-IP"
)

// clientIPHeaders are the values server.client_ip_header accepts.
var clientIPHeaders = []string{HeaderXForwardedFor, HeaderForwarded, HeaderXRealIP}

// validClientIPHeader reports whether h names a header clientIP reads.
func validClientIPHeader(h string) bool {
	return slices.ContainsFunc(clientIPHeaders, func(k string) bool { return strings.EqualFold(k, h) })
}

// clientIP is the address of the client a request comes from: the peer,
// unless the peer is one of server.trusted_proxies. Then it is the address
// server.client_ip_header names, read from the right: each trusted proxy
// appends the address it got the request from, so the rightmost address
// that is not a trusted proxy is the first one no trusted proxy vouches
// for. Everything left of it may be forged by the client and is ignored.
// An entry that is not an address ends the walk at the last trusted hop.
// Every route and every limiter uses it, so all agree on who the client is.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	peer = peer.Unmap()
	if !s.trustedProxy(peer) {
		return peer.String()
	}
	hops := forwardedHops(s.cfg.ClientIPHeader, c.Request().Header.PeekAll(s.cfg.ClientIPHeader))
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !s.trustedProxy(a) {
			break
		}
	}
	return client.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	return slices.ContainsFunc(s.proxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// forwardedHops lists the addresses of header's values, leftmost (the
// client's claim) first.
func forwardedHops(header string, values [][]byte) []string {
	var hops []string
	for _, v := range values {
		for part := range bytes.SplitSeq(v, []byte{','}) {
			part = bytes.TrimSpace(part)
			if strings.EqualFold(header, HeaderForwarded) {
				part = forwardedFor(part)
			}
			hops = append(hops, string(part))
		}
	}
	return hops
}

// forwardedFor is the for= parameter of one RFC 7239 forwarded-element
// (empty when it has none, which parseHop refuses).
func forwardedFor(elem []byte) []byte {
	for pair := range bytes.SplitSeq(elem, []byte{';'}) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(pair), []byte{'='})
		if ok && bytes.EqualFold(k, []byte("for")) {
			return bytes.Trim(v, `"`)
		}
	}
	return nil
}

// parseHop parses an address as proxies write them: bare, or with a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711", "[2001:db8::1]").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && strings.HasPrefix(s, "[") {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}
