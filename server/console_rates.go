package server

import (
	"context"
	"fmt"
	"html/template"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// Decision and deny rates for the console's overview: every decision the
// observer sees is counted (whether or not server.metrics is on), and a
// sampler (SampleRates, run by the app) keeps the counts of the last
// rateSamples intervals.

const rateSamples = 60

type rateSample struct {
	at          time.Time
	allow, deny uint64
}

type rates struct {
	allow, deny atomic.Uint64
	mu          sync.Mutex
	samples     []rateSample // oldest first, at most rateSamples
}

// count counts one decision (a failure is a deny).
func (r *rates) count(d engine.Decision) {
	if d.Allow && d.Err == nil {
		r.allow.Add(1)
	} else {
		r.deny.Add(1)
	}
}

func (r *rates) sample(now time.Time) {
	s := rateSample{at: now, allow: r.allow.Load(), deny: r.deny.Load()}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if len(r.samples) > rateSamples+1 {
		r.samples = r.samples[len(r.samples)-rateSamples-1:]
	}
}

// SampleRates samples the decision counts every interval until ctx is
// done, for the console's chart of the last rateSamples intervals.
func (s *Server) SampleRates(ctx context.Context, every time.Duration) {
	s.rates.sample(time.Now())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.rates.sample(now)
		}
	}
}

// rateChart is the overview's chart: decisions and denies per second of
// each sampled interval, as an inline SVG (attributes only: the page's CSP
// allows no style attribute), and a sentence saying the same.
type rateChart struct {
	SVG     template.HTML
	Summary string
}

func (r *rates) chart() rateChart {
	r.mu.Lock()
	samples := append([]rateSample(nil), r.samples...)
	r.mu.Unlock()
	if len(samples) < 2 {
		return rateChart{Summary: "Not enough samples yet: the chart fills in over the first minute."}
	}
	type point struct{ total, deny float64 }
	var pts []point
	var peak float64
	var sumT, sumD float64
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		secs := b.at.Sub(a.at).Seconds()
		if secs <= 0 {
			continue
		}
		p := point{float64(b.allow-a.allow+b.deny-a.deny) / secs, float64(b.deny-a.deny) / secs}
		pts = append(pts, p)
		peak = max(peak, p.total)
		sumT += p.total
		sumD += p.deny
	}
	span := samples[len(samples)-1].at.Sub(samples[0].at).Round(time.Second)
	summary := fmt.Sprintf("Last %s: %.1f decisions/s on average, peak %.1f/s", span, sumT/float64(len(pts)), peak)
	if sumT > 0 {
		summary += fmt.Sprintf(", %.1f%% denied", 100*sumD/sumT)
	}
	const w, h = 600.0, 120.0
	if peak == 0 {
		peak = 1
	}
	line := func(v func(point) float64) string {
		var b strings.Builder
		for i, p := range pts {
			x := w * float64(i) / float64(max(len(pts)-1, 1))
			fmt.Fprintf(&b, "%.1f,%.1f ", x, h-h*v(p)/peak)
		}
		return b.String()
	}
	svg := fmt.Sprintf(`<svg id="rate-chart" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="100%%" height="%.0f" preserveAspectRatio="none">`+
		`<rect x="0" y="0" width="%.0f" height="%.0f" fill="#f4f5f7"/>`+
		`<polyline fill="none" stroke="#1d5fd1" stroke-width="2" points="%s"/>`+
		`<polyline fill="none" stroke="#8a1111" stroke-width="2" points="%s"/></svg>`,
		template.HTMLEscapeString(summary), w, h, h, w, h, line(func(p point) float64 { return p.total }), line(func(p point) float64 { return p.deny }))
	return rateChart{SVG: template.HTML(svg), Summary: summary} // every value in it is a number or escaped
}
