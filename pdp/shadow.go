package pdp

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
)

// Shadow bundles (issue #19, first part: the decision service's side). A
// stored revision decides beside the active one on a sample of live
// decisions, off the request path: the decision is answered first, then a
// copy of its input is offered to a bounded queue (never waited for: a
// full queue drops and counts) and a worker decides it with the candidate
// and counts whether the two agree (the same decision; reasons apart), by
// outcome (decision and reasons) on each side, keeping a few example inputs of each disagreement with their
// token claims removed. Nothing a shadow does changes an answer.

// ShadowConfig says how much a shadow samples.
type ShadowConfig struct {
	// Ratio is the share of decisions shadowed, 0 < Ratio <= 1.
	Ratio float64
	// Queue bounds the decisions waiting for the worker (default 1024).
	Queue int
	// Examples is how many inputs each disagreement keeps (default 5).
	Examples int
}

// ShadowOutcome is one side of a comparison.
type ShadowOutcome struct {
	Decision bool     `json:"decision"`
	Reasons  []string `json:"reasons"`
}

// ShadowDisagreement counts the sampled decisions the candidate answered
// otherwise, for one pair of outcomes.
type ShadowDisagreement struct {
	Active    ShadowOutcome    `json:"active"`
	Candidate ShadowOutcome    `json:"candidate"`
	Count     uint64           `json:"count"`
	Examples  []map[string]any `json:"examples"`
}

// ShadowAgreement counts the sampled decisions both revisions answered
// alike, decision and reasons, for one outcome.
type ShadowAgreement struct {
	Outcome ShadowOutcome `json:"outcome"`
	Count   uint64        `json:"count"`
}

// maxShadowGroups bounds the outcome groups a shadow keeps, of agreements
// and of disagreements each (a policy's reasons are few, but their
// combinations need not be); later outcomes are counted in the totals
// only, and the report says so (GroupsTruncated).
const maxShadowGroups = 100

// ShadowReport is what a shadow has seen so far.
type ShadowReport struct {
	Revision string `json:"revision"`
	// Started is when the shadow began.
	Started time.Time `json:"started"`
	// Sampled decisions were compared: Agreed of them with the same
	// decision, Disagreed with the other, as an impact preview counts
	// changed decisions; ReasonsChanged of the agreed ones with other
	// reasons (other rules decided the same).
	Sampled        uint64 `json:"sampled"`
	Agreed         uint64 `json:"agreed"`
	Disagreed      uint64 `json:"disagreed"`
	ReasonsChanged uint64 `json:"reasons_changed"`
	// Dropped decisions were sampled while the queue was full.
	Dropped uint64 `json:"dropped"`
	// Disagreements group the sampled decisions the candidate answered
	// otherwise, decision or reasons, by the outcomes on each side, the
	// largest group first.
	Disagreements []ShadowDisagreement `json:"disagreements"`
	// Agreements group the decisions answered alike by their outcome, the
	// largest group first.
	Agreements []ShadowAgreement `json:"agreements"`
	// GroupsTruncated: more than maxShadowGroups outcomes were seen on one
	// side; the groups hold the first ones, the totals all.
	GroupsTruncated bool `json:"groups_truncated,omitempty"`
}

// ErrNoShadow is what StopShadow and ShadowReport give when no revision is
// shadowed.
var ErrNoShadow = errors.New("no revision is shadowed")

type shadow struct {
	rev      string
	cand     *engine.Snapshot
	cfg      ShadowConfig
	started  time.Time
	queue    chan shadowItem
	stop     chan struct{}
	done     chan struct{}
	dropped  atomic.Uint64
	mu       sync.Mutex
	sampled  uint64
	agreed   uint64
	reasons  uint64
	byKey    map[string]*ShadowDisagreement
	keyOrder []string
	agreeBy  map[string]*ShadowAgreement
	agreeOrd []string
	truncd   bool
	// redact is applied to an input before it is kept as an example (the
	// decision log's redaction; nil: only token claims are dropped).
	redact func(*engine.Input) *engine.Input
}

// InputRedactor redacts an input as the decision log does
// (decisionlog.Logger): shadow examples are redacted with it.
type InputRedactor interface {
	Redact(in *engine.Input) *engine.Input
}

type shadowItem struct {
	in     engine.Input
	active ShadowOutcome
}

// StartShadow compiles the bundle archive (a stored revision's) as a
// preview candidate and shadows the active bundles with it, replacing any
// shadow running. The candidate must compile; its tests are not required
// to pass (a shadow changes no answer).
func (s *Service) StartShadow(ctx context.Context, archive []byte, cfg ShadowConfig) (string, error) {
	if cfg.Ratio <= 0 || cfg.Ratio > 1 {
		return "", newError(CodeInvalidInput, "ratio: must be more than 0 and at most 1")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.Examples <= 0 {
		cfg.Examples = 5
	}
	p, ok := s.bundles.(Previewer)
	if !ok {
		return "", ErrNoPreview
	}
	b, err := bundles.ReadArchive(bytes.NewReader(archive), p.Limits())
	if err != nil {
		return "", err
	}
	b.Source = "shadow"
	cand, _, err := p.Trial(ctx, []*bundles.Bundle{b})
	if err != nil {
		return "", err
	}
	sh := &shadow{rev: cand.Snapshot.Revision(), cand: cand.Snapshot, cfg: cfg, started: time.Now(),
		queue: make(chan shadowItem, cfg.Queue), stop: make(chan struct{}), done: make(chan struct{}),
		byKey: map[string]*ShadowDisagreement{}, agreeBy: map[string]*ShadowAgreement{}}
	if r, ok := s.dlog.(InputRedactor); ok && r != nil {
		sh.redact = r.Redact
	}
	go sh.run(s.cfg.RequestTimeout)
	if old := s.shadow.Swap(sh); old != nil {
		old.close()
	}
	return sh.rev, nil
}

// StopShadow ends the shadow and returns its last report.
func (s *Service) StopShadow() (ShadowReport, error) {
	sh := s.shadow.Swap(nil)
	if sh == nil {
		return ShadowReport{}, ErrNoShadow
	}
	sh.close()
	return sh.report(), nil
}

// ShadowReport is the running shadow's report.
func (s *Service) ShadowReport() (ShadowReport, error) {
	sh := s.shadow.Load()
	if sh == nil {
		return ShadowReport{}, ErrNoShadow
	}
	return sh.report(), nil
}

// offerShadow hands a decided input to the shadow, if one runs and the
// sample takes it; it never blocks.
func (s *Service) offerShadow(in *engine.Input, d engine.Decision) {
	sh := s.shadow.Load()
	if sh == nil || d.Revision == sh.rev || (sh.cfg.Ratio < 1 && rand.Float64() >= sh.cfg.Ratio) {
		return
	}
	item := shadowItem{in: *in, active: ShadowOutcome{Decision: d.Allow, Reasons: slices.Clone(d.Reasons)}}
	item.in.Token = nil // examples never keep claims
	select {
	case sh.queue <- item:
	default:
		sh.dropped.Add(1)
	}
}

func (sh *shadow) run(timeout time.Duration) {
	defer close(sh.done)
	for {
		select {
		case <-sh.stop:
			return
		case it := <-sh.queue:
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			in := it.in
			d := sh.cand.Decide(ctx, &in, false)
			cancel()
			sh.count(it, ShadowOutcome{Decision: d.Allow, Reasons: d.Reasons})
		}
	}
}

func (sh *shadow) close() {
	close(sh.stop)
	<-sh.done
}

func (sh *shadow) count(it shadowItem, cand ShadowOutcome) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sampled++
	if it.active.Decision == cand.Decision {
		sh.agreed++
		if slices.Equal(it.active.Reasons, cand.Reasons) {
			key := outcomeKey(it.active)
			ag, ok := sh.agreeBy[key]
			if !ok {
				if len(sh.agreeOrd) >= maxShadowGroups {
					sh.truncd = true
					return
				}
				ag = &ShadowAgreement{Outcome: it.active}
				sh.agreeBy[key] = ag
				sh.agreeOrd = append(sh.agreeOrd, key)
			}
			ag.Count++
			return
		}
		sh.reasons++
	}
	key := outcomeKey(it.active) + "\x00" + outcomeKey(cand)
	dis, ok := sh.byKey[key]
	if !ok {
		if len(sh.keyOrder) >= maxShadowGroups {
			sh.truncd = true
			return
		}
		dis = &ShadowDisagreement{Active: it.active, Candidate: cand}
		sh.byKey[key] = dis
		sh.keyOrder = append(sh.keyOrder, key)
	}
	dis.Count++
	if len(dis.Examples) < sh.cfg.Examples {
		in := &it.in
		if sh.redact != nil {
			in = sh.redact(in)
		}
		ctx := in.Context
		if ctx == nil {
			ctx = map[string]any{}
		}
		dis.Examples = append(dis.Examples, map[string]any{
			"subject": engine.EntityDoc(in.Subject), "action": engine.ActionDoc(in.Action),
			"resource": engine.EntityDoc(in.Resource), "context": ctx,
		})
	}
}

func outcomeKey(o ShadowOutcome) string {
	d := "deny"
	if o.Decision {
		d = "allow"
	}
	return d + "\x00" + strings.Join(o.Reasons, "\x00")
}

func (sh *shadow) report() ShadowReport {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := ShadowReport{Revision: sh.rev, Started: sh.started, Sampled: sh.sampled, Agreed: sh.agreed,
		Disagreed: sh.sampled - sh.agreed, ReasonsChanged: sh.reasons, Dropped: sh.dropped.Load(),
		Disagreements: []ShadowDisagreement{}, Agreements: []ShadowAgreement{}, GroupsTruncated: sh.truncd}
	for _, k := range sh.keyOrder {
		d := *sh.byKey[k]
		d.Examples = slices.Clone(d.Examples)
		r.Disagreements = append(r.Disagreements, d)
	}
	slices.SortStableFunc(r.Disagreements, func(a, b ShadowDisagreement) int { return cmp.Compare(b.Count, a.Count) })
	for _, k := range sh.agreeOrd {
		r.Agreements = append(r.Agreements, *sh.agreeBy[k])
	}
	slices.SortStableFunc(r.Agreements, func(a, b ShadowAgreement) int { return cmp.Compare(b.Count, a.Count) })
	return r
}
