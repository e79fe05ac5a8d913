package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/engine"
	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/store"
)

// growthCase is one bundle of the generated family: rules rules (each for
// its own resource type, so that one request touches one rule) over a
// data.json of entities entities.
type growthCase struct {
	engine   string // "cel" or "rego"
	rules    int
	entities int
}

// growthResult is what TestGrowth measures of one case.
type growthResult struct {
	growthCase
	dataBytes int
	compile   time.Duration // read, compile and activate from a directory
	heap      uint64        // live heap the active bundle holds
	decide    time.Duration // one decision, in process, no cache
	propagate time.Duration // push on one replica until the other serves it
}

// writeGrowthBundle writes the bundle of c into a new directory.
func writeGrowthBundle(tb testing.TB, c growthCase) (dir string, dataBytes int) {
	tb.Helper()
	dir = tb.TempDir()
	var data strings.Builder
	data.WriteString(`{"records":{`)
	for i := range c.entities {
		if i > 0 {
			data.WriteByte(',')
		}
		fmt.Fprintf(&data, `"e%d":{"owner":"user-%d","department":"d%d"}`, i, i%1000, i%50)
	}
	data.WriteString("}}")
	files := map[string]string{"data.json": data.String()}
	var pol strings.Builder
	switch c.engine {
	case "cel":
		pol.WriteString("apiVersion: verdict.dev/v1\nkind: Policy\nname: growth\ncombining: deny-overrides\nrules:\n")
		for i := range c.rules {
			fmt.Fprintf(&pol, "  - id: r-%d\n    effect: allow\n    resources: [\"t%d\"]\n    condition: >\n      resource.id in data.records && data.records[resource.id].owner == subject.id\n", i, i)
		}
		files["growth.verdict.yaml"] = pol.String()
	case "rego":
		files[".manifest"] = `{"revision":"growth","roots":["verdict","records"],"metadata":{"verdict":{"entrypoint":"verdict/decision"}}}`
		pol.WriteString("package verdict\n\n" +
			"decision := {\"decision\": true, \"reasons\": sort(allows)} if {\n\tcount(allows) > 0\n} else := {\"decision\": false, \"reasons\": [\"verdict:no-matching-allow\"]}\n\n")
		for i := range c.rules {
			fmt.Fprintf(&pol, "allows contains \"r-%d\" if {\n\tinput.resource.type == \"t%d\"\n\te := data.records[input.resource.id]\n\te.owner == input.subject.id\n}\n\n", i, i)
		}
		files["growth.rego"] = pol.String()
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir, data.Len()
}

// tarGz packs the regular files of dir.
func tarGz(tb testing.TB, dir string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureGrowth builds, activates, decides and propagates one case.
func measureGrowth(tb testing.TB, c growthCase) growthResult {
	tb.Helper()
	ctx := context.Background()
	dir, dataBytes := writeGrowthBundle(tb, c)
	res := growthResult{growthCase: c, dataBytes: dataBytes}

	before := liveHeap()
	// Time is measured, not bounded: a loaded machine under -race once took
	// a decision past the 50 ms default (denied) in CI.
	mcfg := bundles.DefaultConfig()
	mcfg.Engine.Timeout = 5 * time.Second
	m := bundles.NewManager(mcfg, nil)
	start := time.Now()
	if _, err := m.LoadPaths(ctx, []string{dir}); err != nil {
		tb.Fatalf("%+v: %v", c, err)
	}
	res.compile = time.Since(start)
	if after := liveHeap(); after > before {
		res.heap = after - before
	}

	// Decisions that touch one rule each, on entities all over the data.
	snap := m.Active().Snapshot
	ins := make([]*engine.Input, 512)
	for i := range ins {
		e := (i * 7919) % c.entities
		ins[i] = &engine.Input{
			Subject:  engine.Entity{Type: "user", ID: fmt.Sprintf("user-%d", e%1000)},
			Action:   engine.Action{Name: "read"},
			Resource: engine.Entity{Type: fmt.Sprintf("t%d", i%c.rules), ID: fmt.Sprintf("e%d", e)},
		}
	}
	for _, in := range ins { // warm up; every one of them must be an allow
		if d := snap.Decide(ctx, in, false); !d.Allow {
			tb.Fatalf("%+v: %+v was denied: %v", c, in, d.Reasons)
		}
	}
	n := max(2000, 200_000/max(1, int(res.compile/time.Millisecond)+1))
	n = min(n, 20_000)
	start = time.Now()
	for i := range n {
		snap.Decide(ctx, ins[i%len(ins)], false)
	}
	res.decide = time.Since(start) / time.Duration(n)
	runtime.KeepAlive(m)

	// Push on replica a, until replica b (following the same store) serves it.
	st, err := store.OpenBolt(tb.TempDir(), store.BoltOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	revs := storeadapt.Revisions(st, store.DefaultNamespace)
	a := bundles.NewLifecycle(bundles.NewManager(bundles.DefaultConfig(), nil), revs, nil)
	mb := bundles.NewManager(bundles.DefaultConfig(), nil)
	b := bundles.NewLifecycle(mb, revs, nil)
	archive := tarGz(tb, dir)
	start = time.Now()
	if _, err := a.Push(ctx, archive, "bench", true); err != nil {
		tb.Fatal(err)
	}
	if changed, err := b.Sync(ctx); err != nil || !changed {
		tb.Fatalf("Sync = %v, %v", changed, err)
	}
	res.propagate = time.Since(start)
	if mb.Active() == nil {
		tb.Fatal("replica b serves nothing")
	}
	return res
}

// TestGrowth measures how cost grows with the size of a bundle: 10, 100
// and 1,000 rules over 1k, 100k and 1M entities, in CEL and Rego. It runs
// only under `make bench-growth` (several minutes and a few GiB), which
// also writes the table and docs/performance-growth.svg.
func TestGrowth(t *testing.T) {
	if os.Getenv("VERDICT_BENCH_GROWTH") != "1" {
		t.Skip("run by make bench-growth (VERDICT_BENCH_GROWTH=1)")
	}
	var results []growthResult
	for _, eng := range []string{"cel", "rego"} {
		for _, entities := range []int{1_000, 100_000, 1_000_000} {
			for _, rules := range []int{10, 100, 1_000} {
				r := measureGrowth(t, growthCase{engine: eng, rules: rules, entities: entities})
				t.Logf("%s %5d rules %8d entities: compile %v, heap %.1f MiB, decide %v, propagate %v",
					eng, rules, entities, r.compile.Round(time.Millisecond), float64(r.heap)/(1<<20), r.decide.Round(10*time.Nanosecond), r.propagate.Round(time.Millisecond))
				results = append(results, r)
			}
		}
	}
	var tbl strings.Builder
	tbl.WriteString("| engine | rules | entities | data.json | compile + activate | heap after activation | decision | push → other replica serves |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&tbl, "| %s | %d | %d | %s | %v | %s | %.1f µs | %v |\n", strings.ToUpper(r.engine), r.rules, r.entities,
			size(uint64(r.dataBytes)), r.compile.Round(time.Millisecond), size(r.heap),
			float64(r.decide)/float64(time.Microsecond), r.propagate.Round(time.Millisecond))
	}
	t.Log("\n" + tbl.String())
	if out := os.Getenv("VERDICT_BENCH_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(tbl.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if out := os.Getenv("VERDICT_BENCH_SVG"); out != "" {
		if err := os.WriteFile(out, growthSVG(results), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// size writes n bytes in KiB below a MiB, else in MiB.
func size(n uint64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
