package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// unavailableHook marks every error that means "Redis cannot be reached or
// cannot answer now" as store.ErrUnavailable, whichever store method it
// comes out of, so that the server answers 503 with Retry-After (never 500)
// and callers can tell an outage from a refusal. The cause stays wrapped.
type unavailableHook struct{}

var _ redis.Hook = unavailableHook{}

// DialHook leaves dial errors as they are: go-redis decides its retries on
// their exact types; the process hooks below see them after the retries.
func (unavailableHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (unavailableHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if m := markUnavailable(err); m != err {
			cmd.SetErr(m)
			return m
		}
		return err
	}
}

func (unavailableHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if m := markUnavailable(c.Err()); m != c.Err() {
				c.SetErr(m)
			}
		}
		return markUnavailable(err)
	}
}

// busyReplies are the Redis error replies of a server that is up but
// cannot serve now: loading its data, a Cluster or Sentinel failing over.
var busyReplies = []string{"LOADING ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "READONLY "}

// markUnavailable wraps err with store.ErrUnavailable when it is an outage:
// a network error, a closed connection or client, a pool timeout, a
// deadline, or a busy reply. Other errors (redis.Nil, a failed WATCH, a
// refused command) come back as they are.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) {
		return err
	}
	var ne net.Error
	outage := errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed)
	if !outage {
		msg := err.Error()
		for _, p := range busyReplies {
			if strings.HasPrefix(msg, p) {
				outage = true
				break
			}
		}
	}
	if !outage {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
