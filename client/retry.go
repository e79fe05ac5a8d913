package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"
)

// RetryPolicy says when and how often a call is sent again. Every request
// of this client is side-effect free (a decision or a search changes
// nothing on the server; a token request only issues a token), so a
// request is retried whether or not the server may have received it.
//
// Retried are: 503 (the server, or something it needs, cannot answer
// now), 502 and 504 (a proxy in front of it), 429 (over a rate limit), and
// network failures (connection refused or reset, a connection closed
// before the answer, a transport timeout). Never retried: other 4xx and
// 5xx answers, a certificate the client does not trust, the call's own
// context ending. A 401 is not a retry: see WithClientCredentials.
//
// The wait before retry n (n = 1, 2, ...) is InitialInterval·2^(n-1),
// capped at MaxInterval, with jitter (a random value between half and all
// of it), and at least the answer's Retry-After. A Retry-After longer than
// MaxInterval is not waited for, and neither is any wait that would end
// after the context's deadline: the call then fails at once with the last
// answer (an *Error whose RetryAfter says how long the server asked for).
type RetryPolicy struct {
	// MaxAttempts is the most times one call is sent, the first included;
	// 1 never retries. 0 means 3.
	MaxAttempts int
	// InitialInterval is the wait before the first retry. 0 means 100ms.
	InitialInterval time.Duration
	// MaxInterval caps one wait and the Retry-After honoured. 0 means 2s.
	MaxInterval time.Duration
}

// The retry policy of a client made without WithRetry, and of the zero
// fields of one given to it.
const (
	defaultMaxAttempts     = 3
	defaultInitialInterval = 100 * time.Millisecond
	defaultMaxInterval     = 2 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultMaxAttempts
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = defaultInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = defaultMaxInterval
	}
	p.MaxInterval = max(p.MaxInterval, p.InitialInterval)
	return p
}

// backoff is the wait before retry n (1-based): exponential, capped, with
// jitter in [d/2, d]. The loop is written here rather than taken from
// github.com/cenkalti/backoff/v5: its Retry replaces the back-off with a
// Retry-After instead of using the longer of both, takes Retry-After in
// whole seconds only, and waits past the context's deadline to return the
// context's error instead of the server's last answer.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.InitialInterval
	for i := 1; i < n && d < p.MaxInterval; i++ {
		d *= 2
	}
	d = min(d, p.MaxInterval)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryable reports whether a call that failed with err may be sent again.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if e, ok := errors.AsType[*Error](err); ok {
		switch e.Status {
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
		return false
	}
	return transient(err)
}

// transient reports whether err is a network failure a new connection may
// not meet.
func transient(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return false
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	_, isOp := errors.AsType[*net.OpError](err) // dial failures: no route, DNS
	return isOp
}

// wait sleeps before retry n after err, and returns nil to retry. It
// returns err at once when the wait would end past ctx's deadline or the
// server asks for longer than MaxInterval, and err with ctx's error when
// ctx ends while waiting.
func (p RetryPolicy) wait(ctx context.Context, n int, err error) error {
	d := p.backoff(n)
	if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > 0 {
		if e.RetryAfter > p.MaxInterval {
			return err
		}
		d = max(d, e.RetryAfter)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (waiting to retry after: %w)", ctx.Err(), err)
	}
}

// run makes attempt until it succeeds, under the policy: a refusal of the
// cached token (tok, "" for none) drops it from tokens and tries once more
// with a fresh one (not counted as a retry); a retryable failure waits and
// tries again, up to MaxAttempts. what names the call in a context error.
// Both transports call through it.
func (p RetryPolicy) run(ctx context.Context, tokens *tokenCache, what string, attempt func(ctx context.Context) (tok string, err error)) error {
	refetched := false
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verdict: %s: %w", what, err)
		}
		tok, err := attempt(ctx)
		if err == nil {
			return nil
		}
		if tok != "" && !refetched && IsUnauthorized(err) {
			tokens.drop(tok)
			refetched = true
			n--
			continue
		}
		if n >= p.MaxAttempts || !retryable(ctx, err) {
			return err
		}
		if err := p.wait(ctx, n, err); err != nil {
			return err
		}
	}
}
