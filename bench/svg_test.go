package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// growthSVG draws two panels, decision time and compile time against the
// number of rules (both axes logarithmic), one line per engine and data
// size: the plot of docs/performance.md's growth table.
func growthSVG(rs []growthResult) []byte {
	const (
		panelW, panelH = 420, 300
		left, top      = 60, 40
		plotW, plotH   = panelW - left - 20, panelH - top - 50
	)
	type series struct {
		name  string
		color string
		dash  string
		pts   map[int]growthResult
	}
	colors := map[int]string{1_000: "#1b9e77", 100_000: "#d95f02", 1_000_000: "#7570b3"}
	var ss []*series
	byName := map[string]*series{}
	for _, r := range rs {
		name := fmt.Sprintf("%s, %s entities", strings.ToUpper(r.engine), humanCount(r.entities))
		s := byName[name]
		if s == nil {
			dash := ""
			if r.engine == "rego" {
				dash = ` stroke-dasharray="6 3"`
			}
			s = &series{name: name, color: colors[r.entities], dash: dash, pts: map[int]growthResult{}}
			byName[name] = s
			ss = append(ss, s)
		}
		s.pts[r.rules] = r
	}
	rules := []int{10, 100, 1_000}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", 2*panelW, panelH+20+16*len(ss)/2)
	panel := func(x0 int, title string, val func(growthResult) float64, unit string) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, r := range rs {
			v := val(r)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
		if hi <= lo {
			hi = lo * 10
		}
		px := func(n int) float64 {
			return float64(x0+left) + float64(plotW)*math.Log10(float64(n)/10)/2
		}
		py := func(v float64) float64 {
			return float64(top+plotH) - float64(plotH)*math.Log10(v/lo)/math.Log10(hi/lo)
		}
		fmt.Fprintf(&b, `<text x="%d" y="20" font-size="13" font-weight="bold">%s</text>`+"\n", x0+left, title)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0+left, top, plotW, plotH)
		for d := lo; d <= hi*1.0001; d *= 10 {
			y := py(d)
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s %s</text>`+"\n",
				x0+left, x0+left+plotW, y, y, x0+left-4, y+4, trimFloat(d), unit)
		}
		for _, n := range rules {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", px(n), top+plotH+15, n)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">rules in the bundle</text>`+"\n", x0+left+plotW/2, top+plotH+32)
		for _, s := range ss {
			var pts []string
			for _, n := range rules {
				if r, ok := s.pts[n]; ok {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(n), py(val(r))))
				}
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, s.dash)
		}
	}
	panel(0, "decision time (in process, no cache)", func(r growthResult) float64 { return float64(r.decide) / float64(time.Microsecond) }, "µs")
	panel(panelW, "compile + activate", func(r growthResult) float64 { return float64(r.compile) / float64(time.Millisecond) }, "ms")
	for i, s := range ss {
		x, y := left+(i%2)*panelW, panelH+10+16*(i/2)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
			x, x+24, y, y, s.color, s.dash, x+30, y+4, s.name)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

func trimFloat(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// TestGrowthSmall runs the growth measurement on the smallest bundles of
// the family in both engines (every generated decision must be an allow),
// and draws their plot, so that `make bench-growth` cannot rot.
func TestGrowthSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("not with -short")
	}
	var rs []growthResult
	for _, eng := range []string{"cel", "rego"} {
		for _, rules := range []int{10, 100} {
			r := measureGrowth(t, growthCase{engine: eng, rules: rules, entities: 1_000})
			if r.compile <= 0 || r.decide <= 0 || r.propagate <= 0 || r.dataBytes < 1_000*30 {
				t.Fatalf("%+v: a measurement is missing", r)
			}
			rs = append(rs, r)
		}
	}
	svg := growthSVG(rs)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 2*2 { // two series (CEL and Rego at 1k entities) in two panels
		t.Fatalf("%d polylines, want 4", lines)
	}
}
