package server

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// OAuth client libraries that do not know how a server wants client
// credentials (golang.org/x/oauth2's AuthStyleAutoDetect, the default)
// send them in an Authorization: Basic header first and, on any refusal,
// again as client_id/client_secret form fields. Counted twice, every
// wrong secret would use up two of the failure limit's attempts.
//
// authProbes remembers, for a short while, the refused token requests by
// a digest of their source, client id and secret, and the way the secret
// came. The same secret from the same source sent the other way soon
// after is that retry: the failure limits let it through uncounted, once.
// It carries no new guess, so it gives an attacker nothing.
type authProbes struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]probe
	now  func() time.Time
}

type probe struct {
	at    time.Time
	basic bool
}

const (
	probeWindow = 5 * time.Second
	maxProbes   = 10_000
)

func newAuthProbes() *authProbes {
	return &authProbes{seen: map[[sha256.Size]byte]probe{}, now: time.Now}
}

// credentials returns the digest of c's client credentials and whether
// they came in the Basic header; ok is false when c carries no secret.
func (p *authProbes) credentials(c *fiber.Ctx, source string) (sum [sha256.Size]byte, basic, ok bool) {
	id, secret, basic := parseBasic(c.Get(fiber.HeaderAuthorization))
	if !basic {
		id, secret = utils.CopyString(c.FormValue("client_id")), utils.CopyString(c.FormValue("client_secret"))
	}
	if secret == "" {
		return sum, basic, false
	}
	h := sha256.New()
	for _, s := range []string{source, id, secret} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	copy(sum[:], h.Sum(nil))
	return sum, basic, true
}

// retry reports whether c repeats, the other way, credentials refused
// from the same source within probeWindow; the memory is spent.
func (p *authProbes) retry(c *fiber.Ctx, source string) bool {
	sum, basic, ok := p.credentials(c, source)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	last, found := p.seen[sum]
	if !found || last.basic == basic || p.now().Sub(last.at) > probeWindow {
		return false
	}
	delete(p.seen, sum)
	return true
}

// refused remembers c's credentials as just refused.
func (p *authProbes) refused(c *fiber.Ctx, source string) {
	sum, basic, ok := p.credentials(c, source)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.seen) >= maxProbes {
		for k, v := range p.seen {
			if now.Sub(v.at) > probeWindow {
				delete(p.seen, k)
			}
		}
		if len(p.seen) >= maxProbes {
			clear(p.seen) // a flood: forgetting only costs a retry its free pass
		}
	}
	p.seen[sum] = probe{at: now, basic: basic}
}
