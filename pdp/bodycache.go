package pdp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"

	"github.com/verdictpdp/verdict/engine"
)

// The body cache answers a request body seen before without decoding it.
// Gateways send the same request in the same bytes, so the decision cache
// (keyed by the canonical input, see cachekey.go) is backed by one keyed
// by the body itself: on a hit, nothing is decoded, no map is built and
// no canonical form is hashed. Equal bytes parse to equal inputs, so a hit
// is the answer the decision cache would have given; bodies that differ
// only in spacing or member order are misses here and hits there.
//
// Only what the decision cache would answer is remembered: one decision
// (no batch), no explanation, no subject_token (its verification depends
// on time and revocations), a snapshot that may be cached, an input
// without uncacheable context keys, a decision without error. The key
// carries the active bundles' generation, as the decision cache's does,
// and the parse options (the same bytes mean other things on other
// routes).

// bodyKey names a body decided before.
type bodyKey struct {
	gen uint64
	opt ParseOptions
	sum [sha256.Size]byte
}

func (k bodyKey) index() uint64 { return binary.LittleEndian.Uint64(k.sum[:8]) ^ k.gen }

// bodyEntry is what a body hit answers: the decision, its cache hint, and
// the input the body parsed to (kept only for the decision log). signed
// is the request's options.signed, and hash the input's InputHash when
// the decision may be signed (the same bytes may come from a transport
// that signs and from one that cannot).
type bodyEntry struct {
	in     *engine.Input
	d      engine.Decision
	ttl    int
	signed bool
	hash   string
}

// DecideBody parses body with opt and decides it, as Parse followed by
// Decide do, answering bodies seen before from the body cache.
func (s *Service) DecideBody(ctx context.Context, body []byte, opt ParseOptions, m Meta) (Result, error) {
	active := s.bundles.Active()
	if s.bodies == nil || active == nil {
		return s.parseAndDecide(ctx, body, opt, m)
	}
	key := bodyKey{gen: active.Generation, opt: opt, sum: sha256.Sum256(body)}
	if e, ok := s.bodies.Get(key); ok {
		resp, _, _ := s.evaluateKnown(ctx, m, active, e.in, false, 0, &e.d)
		resp.Context.TTL = e.ttl
		res := Result{Evaluations: []Response{resp}}
		if s.wantSigned(e.signed) {
			if err := s.signAll(&res, m, func(int) string { return e.hash }); err != nil {
				return Result{}, err
			}
		}
		return res, nil
	}
	req, err := s.Parse(ctx, body, opt)
	if err != nil {
		return Result{}, err
	}
	if req.Batch || len(req.Inputs) != 1 || req.Errs != nil || req.Explain || req.subjectToken {
		return s.Decide(ctx, req, m)
	}
	if err := s.checkSignable(req); err != nil {
		return Result{}, err
	}
	in := req.Inputs[0]
	resp, d, outcome := s.evaluateKnown(ctx, m, active, in, false, s.cfg.RequestTimeout, nil)
	resp.Context.TTL = s.cacheTTL(active, in, &resp, false, false)
	hash := ""
	if s.signer != nil && (req.Signed || s.cfg.SignAll) {
		hash = InputHash(in)
	}
	if outcome != CacheBypass && d.Err == nil {
		e := bodyEntry{d: d, ttl: resp.Context.TTL, signed: req.Signed, hash: hash}
		if s.dlog != nil {
			e.in = in
		}
		s.bodies.Set(key, e)
	}
	res := Result{Evaluations: []Response{resp}}
	if s.wantSigned(req.Signed) {
		if err := s.signAll(&res, m, func(int) string { return hash }); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func (s *Service) parseAndDecide(ctx context.Context, body []byte, opt ParseOptions, m Meta) (Result, error) {
	req, err := s.Parse(ctx, body, opt)
	if err != nil {
		return Result{}, err
	}
	return s.Decide(ctx, req, m)
}
