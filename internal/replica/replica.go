package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// Config configures a Syncer.
type Config struct {
	// PollInterval is how often the store's generation is compared with
	// the applied one, so that a lost announcement is repaired within it.
	// Default 2s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// StaleAfter is how long after the last successful sync the replica
	// stops being healthy (and /readyz answers 503). Before that an
	// unreachable store leaves the replica ready: it serves the last good
	// bundle (fail-static). Default 30s; it must be longer than
	// PollInterval.
	StaleAfter time.Duration `yaml:"stale_after"`
}

// Default returns a 2 s poll and a 30 s staleness bound.
func Default() Config {
	return Config{PollInterval: 2 * time.Second, StaleAfter: 30 * time.Second}
}

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("replica.poll_interval must be positive, got %s", c.PollInterval))
	}
	if c.StaleAfter <= c.PollInterval {
		errs = append(errs, fmt.Errorf("replica.stale_after (%s) must be longer than replica.poll_interval (%s)", c.StaleAfter, c.PollInterval))
	}
	return errors.Join(errs...)
}

// Bundles follows the store's active bundle revision
// (bundles.Lifecycle.Sync).
type Bundles interface {
	// Sync serves the store's active revision if another one serves,
	// without writing to the store; it reports whether that changed.
	Sync(ctx context.Context) (bool, error)
}

// Tokens drops cached token verifications (authn.Verifier).
type Tokens interface {
	// ForgetJTI rejects the tokens with jti at once, cached or not.
	ForgetJTI(jti string)
	// ForgetAll makes every cached verification be checked again.
	ForgetAll()
}

// Families reads the access-token ids issued from a refresh family.
type Families interface {
	// AccessJTIs returns the ids of the access tokens issued from family.
	AccessJTIs(ctx context.Context, family string) ([]string, error)
}

// Keys reloads the signing-key ring from the store (authn.Keyring.Load).
type Keys interface {
	Load(ctx context.Context) error
}

// Deps are what a Syncer updates. Bundles, Tokens and Keys are required;
// without Families a revoked refresh family forgets every cached
// verification. OAuth clients need nothing: they are read from the store
// on every use.
type Deps struct {
	Bundles  Bundles
	Tokens   Tokens
	Keys     Keys
	Families Families
	// Revocations, when set, is the mirror of revoked token ids the
	// Syncer keeps (loaded at every repair, added to on every announced
	// revocation) and makes trusted while it is healthy. A Mirror can
	// follow one Syncer only.
	Revocations *Mirror
	// Directory, when set, rebuilds the provisioned facts policies see
	// (on an announced directory change and at every repair).
	Directory Refresher
	// Shadow, when set, follows the store's shadowed revision (on an
	// announced shadow change and at every repair).
	Shadow Refresher
	// Roster, when set, is where the replica reports itself after every
	// check (Self describes it; the Syncer adds its sync state), so that
	// operators see every replica and whether it is in step; it leaves
	// the roster when Run ends. Self is required with it.
	Roster Roster
	Self   func() store.Member
}

// Roster keeps the replicas' reports (store.Roster, in one namespace).
type Roster interface {
	Report(ctx context.Context, m store.Member, ttl time.Duration) error
	Leave(ctx context.Context, id string) error
}

// reportTTL is how long a report is kept: a replica that misses three
// polls in a row drops out of the roster.
func (c Config) reportTTL() time.Duration { return 3 * c.PollInterval }

// Refresher rebuilds something from the store.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// opTimeout bounds one call to the store, so that a hung connection
// cannot stop the poll.
const opTimeout = 5 * time.Second

// Syncer keeps one replica in step with a shared store. Build it with New
// and call Run once; the status methods are safe for concurrent use at any
// time, before Run too.
type Syncer struct {
	cfg  Config
	n    store.Notifier
	deps Deps
	log  *slog.Logger
	now  func() time.Time

	// mu orders applying announcements against repairs.
	mu      sync.Mutex
	applied atomic.Uint64
	// lastSync is when the replica was last known to be in step (unix
	// nanoseconds; 0 before the first sync).
	lastSync  atomic.Int64
	reachable atomic.Bool
	repairs   atomic.Uint64
	// staleForgot is set when the replica, stale, has dropped every cached
	// token verification; the next sync clears it.
	staleForgot atomic.Bool
	// wake asks Run to compare generations now (a resubscription or a
	// gap seen in the announcements).
	wake chan struct{}
}

// New returns a Syncer that follows n and updates deps. A nil log
// discards. It fails on an invalid config or a missing dependency.
func New(cfg Config, n store.Notifier, deps Deps, log *slog.Logger) (*Syncer, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if n == nil {
		errs = append(errs, errors.New("replica: nil notifier"))
	}
	if deps.Bundles == nil || deps.Tokens == nil || deps.Keys == nil {
		errs = append(errs, errors.New("replica: Bundles, Tokens and Keys are required"))
	}
	if deps.Roster != nil && deps.Self == nil {
		errs = append(errs, errors.New("replica: a Roster needs Self"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, n: n, deps: deps, log: log, now: time.Now, wake: make(chan struct{}, 1)}
	if m := deps.Revocations; m != nil && !m.syncer.CompareAndSwap(nil, s) {
		return nil, errors.New("replica: the revocation mirror already follows another Syncer")
	}
	return s, nil
}

// Run follows the store until ctx ends, then returns ctx's error after its
// subscription has stopped. It compares generations at once, on every
// resubscription, on every gap and every PollInterval. Failures of the
// store are logged and retried; they never end Run.
func (s *Syncer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := s.n.Subscribe(ctx, func(c store.Change) { s.onChange(ctx, c) }, s.poke)
		if err != nil && ctx.Err() == nil {
			s.log.Error("replica: the store's change subscription ended; the poll still repairs every gap", "error", err)
		}
	}()
	defer wg.Wait()
	defer s.leave()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		s.check(ctx)
		s.report(ctx)
		stale, stop := s.staleTimer()
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-tick.C:
		case <-s.wake:
		case <-stale:
			s.whenStale()
		}
		stop()
	}
}

// staleTimer fires when the replica turns stale if it does not sync
// before, so that whenStale drops the cached token verifications at
// StaleAfter rather than at the next poll. Before the first sync, and once
// stale (whenStale has then run), its channel is nil.
func (s *Syncer) staleTimer() (<-chan time.Time, func() bool) {
	if s.lastSync.Load() == 0 {
		return nil, func() bool { return false }
	}
	left := s.cfg.StaleAfter - s.SinceSync()
	if left < 0 {
		s.whenStale()
		return nil, func() bool { return false }
	}
	// Healthy holds through StaleAfter itself: fire just after it.
	t := time.NewTimer(left + time.Millisecond)
	return t.C, t.Stop
}

// poke asks Run to compare generations now; it never blocks.
func (s *Syncer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// onChange applies one announcement. The next one in sequence is applied
// and becomes the applied generation; an older one was covered by a repair;
// one that skips a generation is applied too (it is true) but asks for a
// full repair, which then sets the applied generation.
func (s *Syncer) onChange(ctx context.Context, c store.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applied := s.applied.Load()
	if c.Gen <= applied {
		return
	}
	err := s.apply(ctx, c)
	switch {
	case err != nil:
		// Not applied: the gap stays, and the poll repairs it.
		s.log.Warn("replica: applying a change failed; a full repair follows", "kind", c.Kind, "gen", c.Gen, "error", err)
		s.poke()
	case c.Gen != applied+1:
		s.log.Info("replica: changes were missed; repairing", "applied", applied, "gen", c.Gen)
		s.poke()
	default:
		s.applied.Store(c.Gen)
		s.synced()
	}
}

// apply evicts what c changed.
func (s *Syncer) apply(ctx context.Context, c store.Change) error {
	if c.Namespace != "" && c.Namespace != store.DefaultNamespace {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	switch c.Kind {
	case store.ChangeBundle:
		_, err := s.deps.Bundles.Sync(ctx)
		return err
	case store.ChangeRevocation:
		s.revoked(c.ID)
	case store.ChangeRefresh:
		if s.deps.Families == nil {
			// Each access token of the family is announced on its own
			// too (kind revocation), which fills the mirror.
			s.deps.Tokens.ForgetAll()
			return nil
		}
		jtis, err := s.deps.Families.AccessJTIs(ctx, c.ID)
		if err != nil {
			return err
		}
		for _, jti := range jtis {
			s.revoked(jti)
		}
	case store.ChangeKey:
		return s.deps.Keys.Load(ctx)
	case store.ChangeDirectory:
		if s.deps.Directory != nil {
			return s.deps.Directory.Refresh(ctx)
		}
	case store.ChangeShadow:
		if s.deps.Shadow != nil {
			return s.deps.Shadow.Refresh(ctx)
		}
	case store.ChangeClient, store.ChangeUser, store.ChangeSession, store.ChangeAPIKey:
		// Clients, users and sessions are read from the store on every
		// use; the tokens an ended session revokes are announced on their
		// own (kinds refresh and revocation).
	default:
		return fmt.Errorf("unknown change kind %q", c.Kind)
	}
	return nil
}

// revoked applies the revocation of jti: in the mirror first, so that no
// verification after the forgetting misses it.
func (s *Syncer) revoked(jti string) {
	if s.deps.Revocations != nil {
		s.deps.Revocations.Add(jti)
	}
	s.deps.Tokens.ForgetJTI(jti)
}

// report tells the roster how this replica is doing. A failure is left to
// the next poll: the store's reachability is check's to log.
func (s *Syncer) report(ctx context.Context) {
	if s.deps.Roster == nil {
		return
	}
	m := s.Member()
	ctx, cancel := context.WithTimeout(ctx, min(opTimeout, s.cfg.PollInterval))
	defer cancel()
	if err := s.deps.Roster.Report(ctx, m, s.cfg.reportTTL()); err != nil && ctx.Err() == nil {
		s.log.Debug("replica: reporting to the roster failed", "error", err)
	}
}

// Member is this replica as it reports itself: Self with the sync state.
// The zero Member without a Roster.
func (s *Syncer) Member() store.Member {
	if s.deps.Self == nil {
		return store.Member{}
	}
	m := s.deps.Self()
	m.Generation, m.LastSync, m.Healthy, m.Seen = s.Generation(), s.LastSync(), s.Healthy(), s.now()
	return m
}

// leave takes this replica off the roster as Run ends (its ctx is done:
// the removal gets a short one of its own).
func (s *Syncer) leave() {
	if s.deps.Roster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.deps.Roster.Leave(ctx, s.deps.Self().ID); err != nil {
		s.log.Debug("replica: leaving the roster failed; its report expires on its own", "error", err)
	}
}

// check compares the applied generation with the store's and repairs a
// gap. A replica that was stale repairs in full even without a gap: what it
// cached during the outage is checked again.
func (s *Syncer) check(ctx context.Context) {
	// A store that does not answer within a poll interval counts as
	// unreachable now (the client's own retries may take longer).
	gctx, cancel := context.WithTimeout(ctx, min(opTimeout, s.cfg.PollInterval))
	gen, err := s.n.Generation(gctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if s.reachable.Swap(false) || s.lastSync.Load() == 0 {
			s.log.Warn("replica: the store is unreachable; serving the last good bundle and caches, revocations from the mirror (fail-static)", "error", err)
		}
		s.whenStale()
		return
	}
	if !s.reachable.Swap(true) && s.lastSync.Load() != 0 {
		s.log.Info("replica: the store is reachable again", "seconds_since_sync", int(s.SinceSync().Seconds()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	applied := s.applied.Load()
	if gen == applied && s.Healthy() {
		s.synced()
		return
	}
	if err := s.repair(ctx); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("replica: repair failed; retrying at the next poll", "applied", applied, "gen", gen, "error", err)
		}
		s.whenStale()
		return
	}
	s.applied.Store(gen)
	s.repairs.Add(1)
	s.synced()
	s.log.Info("replica: repaired", "from_gen", applied, "gen", gen)
}

// repair reloads everything that could be stale. The generation was read
// before it, so a change made meanwhile is applied (or repaired) after.
func (s *Syncer) repair(ctx context.Context) error {
	// First, and whatever follows: revocations are then checked against
	// the store on the next Verify of every token.
	s.deps.Tokens.ForgetAll()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.deps.Bundles.Sync(ctx); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := s.deps.Keys.Load(ctx); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	if s.deps.Revocations != nil {
		if err := s.deps.Revocations.Load(ctx); err != nil {
			return fmt.Errorf("revoked tokens: %w", err)
		}
	}
	if s.deps.Directory != nil {
		if err := s.deps.Directory.Refresh(ctx); err != nil {
			return fmt.Errorf("provisioned data: %w", err)
		}
	}
	if s.deps.Shadow != nil {
		if err := s.deps.Shadow.Refresh(ctx); err != nil {
			return fmt.Errorf("shadow: %w", err)
		}
	}
	return nil
}

// whenStale bounds how long revocations can be missed: once the replica
// has not synced for StaleAfter, it drops every cached token verification
// (once), and the revocation mirror is no longer trusted, so that each
// caller token is checked against the store again — a 503 while the store
// cannot be reached, never a pass.
func (s *Syncer) whenStale() {
	if s.lastSync.Load() == 0 || s.Healthy() || s.staleForgot.Swap(true) {
		return
	}
	s.deps.Tokens.ForgetAll()
	s.log.Warn("replica: stale (no sync within stale_after): cached token verifications dropped; caller tokens are checked against the store again",
		"seconds_since_sync", int(s.SinceSync().Seconds()))
}

func (s *Syncer) synced() {
	s.lastSync.Store(s.now().UnixNano())
	s.staleForgot.Store(false)
}

// LastSync is when the replica was last known to be in step with the
// store; zero before the first sync.
func (s *Syncer) LastSync() time.Time {
	if ns := s.lastSync.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SinceSync is how long ago LastSync was; 0 before the first sync.
func (s *Syncer) SinceSync() time.Duration {
	if ns := s.lastSync.Load(); ns != 0 {
		return s.now().Sub(time.Unix(0, ns))
	}
	return 0
}

// Healthy reports whether the replica synced within StaleAfter. It is
// false before the first sync.
func (s *Syncer) Healthy() bool {
	return s.lastSync.Load() != 0 && s.SinceSync() <= s.cfg.StaleAfter
}

// Reachable reports whether the store answered the last comparison of
// generations.
func (s *Syncer) Reachable() bool { return s.reachable.Load() }

// Generation is the store generation the replica applied.
func (s *Syncer) Generation() uint64 { return s.applied.Load() }

// Repairs counts the full repairs done so far.
func (s *Syncer) Repairs() uint64 { return s.repairs.Load() }
