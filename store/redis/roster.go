package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verdictpdp/verdict/store"
)

// The roster of replicas: a key per member holding its last report, which
// Redis expires after the report's ttl, and a sorted set of member ids
// scored by when their report expires (milliseconds), so that Members
// reads the live ones without scanning keys and prunes the rest. Reports
// are not announced: they change no generation.
const (
	kindMember  = "replica"
	kindMembers = "replicas"
)

// rosterClockMargin is how long past its expiry, on the reader's clock, an
// index entry is kept.
const rosterClockMargin = time.Minute

var _ store.Roster = (*Store)(nil)

// Report records m for ttl.
func (s *Store) Report(ctx context.Context, ns string, m store.Member, ttl time.Duration) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	if m.ID == "" || strings.Contains(m.ID, "/") {
		return fmt.Errorf("store: replica id %q: it must be non-empty and have no '/'", m.ID)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("store: replica report ttl %s is under a millisecond", ttl)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: encode replica %q: %w", m.ID, err)
	}
	until := s.now().Add(ttl).UnixMilli()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.key(ns, kindMember, m.ID), data, ttl)
		p.ZAdd(ctx, s.key(ns, kindMembers), redis.Z{Score: float64(until), Member: m.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: report replica %q: %w", m.ID, err)
	}
	return nil
}

// Leave removes member id.
func (s *Store) Leave(ctx context.Context, ns, id string) error {
	if err := s.check(ctx, ns); err != nil {
		return err
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key(ns, kindMember, id))
		p.ZRem(ctx, s.key(ns, kindMembers), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: remove replica %q: %w", id, err)
	}
	return nil
}

// Members lists the members whose report has not expired, by id; the ids
// of expired reports are pruned from the index on the way.
func (s *Store) Members(ctx context.Context, ns string) ([]store.Member, error) {
	if err := s.check(ctx, ns); err != nil {
		return nil, err
	}
	idx := s.key(ns, kindMembers)
	// A report's key expires on Redis's clock, its index entry on the
	// reporter's: the key decides whether a member is listed; the index
	// only bounds what is read, pruned with a margin for replicas whose
	// clocks differ.
	stale := s.now().Add(-rosterClockMargin).UnixMilli()
	if err := s.rdb.ZRemRangeByScore(ctx, idx, "-inf", "("+strconv.FormatInt(stale, 10)).Err(); err != nil {
		return nil, fmt.Errorf("redis store: prune replicas: %w", err)
	}
	ids, err := s.rdb.ZRange(ctx, idx, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: list replicas: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(ns, kindMember, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: read replicas: %w", err)
	}
	out := make([]store.Member, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired
		}
		var m store.Member
		if err := json.Unmarshal([]byte(str), &m); err != nil {
			return nil, fmt.Errorf("redis store: decode replica %q: %w", ids[i], err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
