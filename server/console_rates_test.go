package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// TestRateChart: the chart's numbers are the decisions and denies (a
// failure counts as a deny) per second of each sampled interval.
func TestRateChart(t *testing.T) {
	var r rates
	if c := r.chart(); c.SVG != "" || !strings.Contains(c.Summary, "Not enough samples") {
		t.Fatalf("empty: %+v", c)
	}
	t0 := time.Unix(1000, 0)
	r.sample(t0)
	for range 30 {
		r.count(engine.Decision{Allow: true})
	}
	for range 10 {
		r.count(engine.Decision{})
	}
	r.count(engine.Decision{Allow: true, Err: errors.New("timeout")}) // a failure is a deny
	r.sample(t0.Add(10 * time.Second))
	for range 20 {
		r.count(engine.Decision{Allow: true})
	}
	r.sample(t0.Add(20 * time.Second))
	c := r.chart()
	// Intervals: 4.1/s (1.1 denied), then 2.0/s (none): average 3.05/s,
	// peak 4.1/s, 11 of 61 denied.
	if want := "Last 20s: 3.0 decisions/s on average, peak 4.1/s, 18.0% denied"; c.Summary != want {
		t.Errorf("summary %q, want %q", c.Summary, want)
	}
	if !strings.Contains(string(c.SVG), `<svg id="rate-chart"`) || strings.Count(string(c.SVG), "<polyline") != 2 || strings.Contains(string(c.SVG), "style=") {
		t.Errorf("svg %s", c.SVG)
	}
	for range rateSamples + 10 {
		r.sample(time.Now())
	}
	if len(r.samples) != rateSamples+1 {
		t.Errorf("%d samples kept, want %d", len(r.samples), rateSamples+1)
	}
}
