package redisstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// Subscribe calls fn for every change announced on the store's channel, in
// the order Redis delivers them (generation order), until ctx ends, and
// returns ctx's error then. It calls resync after every (re)subscription:
// go-redis reconnects a broken pub/sub connection by itself and Redis
// confirms each SUBSCRIBE, and every confirmation means announcements may
// have been missed in between. While Redis is unreachable it retries with a
// backoff of up to two seconds. A message that is not a valid Change is
// skipped and logged. fn and resync run on Subscribe's goroutine, one at a
// time; they should not block for long.
func (s *Store) Subscribe(ctx context.Context, fn func(store.Change), resync func()) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	ps := s.rdb.Subscribe(ctx, s.Channel())
	// Receive blocks on the socket and does not watch ctx: closing the
	// subscription is what ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		if stop() {
			_ = ps.Close()
		}
	}()
	wait := time.Duration(0)
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// go-redis has dropped the connection and will dial again on
			// the next Receive; wait so a Redis that is down is not hammered.
			wait = min(max(2*wait, s.backoffMin), s.backoffMax)
			s.log.Warn("redis store: subscription failed, retrying", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				wait = 0
				s.log.Debug("redis store: subscribed", "channel", m.Channel)
				resync()
			}
		case *redis.Message:
			var c store.Change
			if err := json.Unmarshal([]byte(m.Payload), &c); err != nil || c.Gen == 0 || c.Kind == "" {
				s.log.Warn("redis store: skipped a malformed change announcement", "channel", m.Channel, "err", err, "bytes", len(m.Payload))
				continue
			}
			fn(c)
		}
	}
}
