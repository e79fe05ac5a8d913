package client

import (
	"net/http"
	"time"
)

// SetClock makes c's token cache read the time from now (tests move it
// forward instead of sleeping). Call it before c is used.
func SetClock(c *Client, now func() time.Time) { c.tokens.now = now }

// Transport is the transport New made for c.
func Transport(c *Client) *http.Transport { return c.hc.Transport.(*http.Transport) }
