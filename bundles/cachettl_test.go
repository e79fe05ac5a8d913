package bundles

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/engine"
)

// TestManifestMaxCacheTTL: metadata.verdict.max_cache_ttl bounds the cache
// hint of a bundle's decisions; a set of bundles takes the least, and a
// bundle without one gives the set none.
func TestManifestMaxCacheTTL(t *testing.T) {
	const policy = "apiVersion: verdict.dev/v1\nkind: Policy\nname: %s\nrules:\n  - id: r\n    effect: allow\n"
	bundle := func(name, manifest string) *Bundle {
		t.Helper()
		files := map[string][]byte{name + ".verdict.yaml": []byte(fmtPolicy(policy, name))}
		if manifest != "" {
			files[".manifest"] = []byte(manifest)
		}
		b, err := FromFiles(files, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ttl := func(n string) string { return `{"metadata":{"verdict":{"max_cache_ttl":` + n + `}}}` }
	for _, c := range []struct {
		name      string
		manifests []string
		want      time.Duration
		each      []time.Duration
	}{
		{"one", []string{ttl("60")}, time.Minute, []time.Duration{time.Minute}},
		{"least of two", []string{ttl("60"), ttl("30")}, 30 * time.Second, []time.Duration{time.Minute, 30 * time.Second}},
		{"one without", []string{ttl("60"), ""}, 0, []time.Duration{time.Minute, 0}},
		{"none", []string{""}, 0, []time.Duration{0}},
	} {
		var bs []*Bundle
		for i, m := range c.manifests {
			bs = append(bs, bundle(string(rune('a'+i)), m))
		}
		out, err := CompileEach(context.Background(), bs, engine.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := out.Snapshot.MaxCacheAge(); got != c.want {
			t.Errorf("%s: set %s, want %s", c.name, got, c.want)
		}
		for i, s := range out.PerBundle {
			if s.MaxCacheAge() != c.each[i] {
				t.Errorf("%s: bundle %d %s, want %s", c.name, i, s.MaxCacheAge(), c.each[i])
			}
		}
	}
	for _, bad := range []string{`"60"`, `-5`, `2.5`, `86401`, `true`} {
		if _, err := CompileEach(context.Background(), []*Bundle{bundle("a", ttl(bad))}, engine.DefaultLimits()); err == nil {
			t.Errorf("max_cache_ttl %s accepted", bad)
		}
	}
}

func fmtPolicy(format, name string) string {
	return strings.Replace(format, "%s", name, 1)
}
