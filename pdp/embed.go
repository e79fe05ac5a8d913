package pdp

import (
	"context"
	"errors"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/cache"
	"github.com/verdictpdp/verdict/engine"
)

// DefaultConfig is the decision service of `verdict serve` with its
// defaults: JSON nested at most 64 levels, 1,000 evaluations a batch, 5 s a
// request, explain allowed, a 100,000-entry decision cache, 10,000 search
// candidates, and time-carrying context keys (now, time, timestamp,
// current_time) never cached.
func DefaultConfig() Config {
	return Config{
		Limits:              Limits{MaxDepth: 64, MaxBatch: 1000},
		RequestTimeout:      5 * time.Second,
		AllowExplain:        true,
		Cache:               cache.Default(),
		NoCacheContextKeys:  []string{"now", "time", "timestamp", "current_time"},
		MaxSearchCandidates: 10000,
	}
}

// Open is the way into Verdict for a Go program: it reads the bundles at
// paths (directories or .tar.gz files) with bc, compiles them, runs their
// own *_test.yaml cases, activates them together (deny-overrides, as
// `verdict serve --bundle` does) and returns a service deciding with them
// under cfg. bundles.DefaultConfig() requires no signature; set bc.Signing
// to require one. A bundle that does not read, verify, compile or pass its
// tests is an error, and no service is returned. Close the service when
// done.
func Open(ctx context.Context, cfg Config, bc bundles.Config, paths []string, opts ...Option) (*Service, error) {
	if len(paths) == 0 {
		return nil, errors.New("pdp: no bundle path given")
	}
	mgr := bundles.NewManager(bc, nil)
	if _, err := mgr.LoadPaths(ctx, paths); err != nil {
		return nil, err
	}
	return New(cfg, mgr, opts...)
}

// DecideJSON answers a /v1/decide request body (one input, or a batch with
// "evaluations"), exactly as the server does: Parse, then Decide. Errors
// are *Error (the body's problems, an explain the configuration forbids).
func (s *Service) DecideJSON(ctx context.Context, body []byte) (Result, error) {
	return s.DecideBody(ctx, body, ParseOptions{}, Meta{Endpoint: EndpointDecide})
}

// Check decides one typed input: whether it is allowed, and the whole
// answer (reasons, revision, decision id, and on a deny caused by a failure
// context.error). Anything going wrong is a deny, never an error.
func (s *Service) Check(ctx context.Context, in engine.Input) (bool, Response) {
	resp := s.Evaluate(ctx, &in, false, Meta{Endpoint: EndpointDecide})
	return resp.Decision, resp
}
