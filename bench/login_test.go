package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/storeadapt"
	"github.com/verdictpdp/verdict/store"
	"github.com/verdictpdp/verdict/users"
)

// The sign-in budget at the default Argon2id cost (64 MiB, 2 passes, 2
// lanes). The ceilings are generous for a shared 2-vCPU machine (one
// hash takes well under 100 ms on one idle core): they catch a cost
// raised by mistake or a sign-in that hashes twice. The band is what
// keeps timing from telling answers apart: a wrong password and an
// unknown email must cost about what a right password does (an unknown
// email is checked against a dummy hash for that reason).
const (
	loginMedianBudget = 400 * time.Millisecond
	loginP95Budget    = time.Second
	// loginBand: each refused sign-in's median within [band, 1/band] of
	// the successful one's.
	loginBand    = 0.5
	loginSamples = 20
	// loginPassword passes the default password rules (length, zxcvbn).
	loginPassword = "correct horse battery staple 42"
)

// BenchmarkPasswordHash measures users.Hash and users.Verify at the
// default cost, users.Default().Argon2: what each sign-in (Verify) and
// each password set or rehash (Hash) pays. B/op is Argon2's memory.
func BenchmarkPasswordHash(b *testing.B) {
	p := users.Default().Argon2
	b.Run("Hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := users.Hash(loginPassword, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		h, err := users.Hash(loginPassword, p)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if !users.Verify(loginPassword, h) {
				b.Fatal("the right password does not verify")
			}
		}
	})
}

// familyLog is the users service's FamilyRevoker: sign-in revokes
// nothing, so it only records.
type familyLog struct {
	mu       sync.Mutex
	families []string
}

func (f *familyLog) RevokeFamily(_ context.Context, family string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.families = append(f.families, family)
	return nil
}

// loginService is a users service at the default configuration over a
// real bbolt store (every sign-in writes: attempts, the user, an audit
// event), except that the lockout thresholds are out of reach: a locked
// account is answered without hashing, and every sample here must check
// a password.
func loginService(t *testing.T) *users.Service {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	stores := storeadapt.Users(st, store.DefaultNamespace)
	stores.Revoker = &familyLog{}
	cfg := users.Default()
	cfg.Lockout.Threshold, cfg.Lockout.IPThreshold = 1<<30, 1<<30
	svc, err := users.New(cfg, stores, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// loginStats are one kind of sign-in's timings, sorted.
type loginStats struct {
	name             string
	median, p95      time.Duration
	fastest, slowest time.Duration
}

func statsOf(name string, d []time.Duration) loginStats {
	s := slices.Clone(d)
	slices.Sort(s)
	// The nearest-rank percentiles.
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return loginStats{name: name, median: rank(0.5), p95: rank(0.95), fastest: s[0], slowest: s[len(s)-1]}
}

// TestLoginLatencyBudget times users.Service.SignIn at the default
// Argon2 cost: a right password, a wrong one and an unknown email,
// interleaved (so that noise on the machine hits them alike), and checks
// the median and p95 against the budget and the refused answers against
// the band around the right one. It skips under -race and -short, where
// timings mean nothing.
//
// Reproduce: go test -run TestLoginLatencyBudget -v ./bench/
func TestLoginLatencyBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("timings under -race mean nothing; run `go test ./bench`")
	}
	if testing.Short() {
		t.Skip("budgets are not checked with -short")
	}
	svc := loginService(t)
	ctx := context.Background()
	if _, err := svc.Add(ctx, users.NewUser{Email: "ada@example.com", Name: "Ada", Password: loginPassword}, users.Meta{}); err != nil {
		t.Fatal(err)
	}
	m := users.Meta{IP: "192.0.2.10", UserAgent: "bench"}
	kinds := []struct {
		name, email, password string
		want                  error
	}{
		{"right password", "ada@example.com", loginPassword, nil},
		{"wrong password", "ada@example.com", "Correct horse battery staple 42", users.ErrBadCredentials},
		{"unknown email", "nobody@example.com", loginPassword, users.ErrBadCredentials},
	}
	samples := make([][]time.Duration, len(kinds))
	// Round 0 warms up (the store's pages, the allocator); each round
	// starts with another kind.
	for round := range loginSamples + 1 {
		for j := range kinds {
			k := (round + j) % len(kinds)
			c := kinds[k]
			start := time.Now()
			u, err := svc.SignIn(ctx, c.email, c.password, m)
			took := time.Since(start)
			if c.want == nil && (err != nil || u.Email != c.email) {
				t.Fatalf("%s: %v, %q", c.name, err, u.Email)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("%s: %v, want %v", c.name, err, c.want)
			}
			if round > 0 {
				samples[k] = append(samples[k], took)
			}
		}
	}
	stats := make([]loginStats, len(kinds))
	for k, c := range kinds {
		stats[k] = statsOf(c.name, samples[k])
	}
	right := stats[0]
	p := users.Default().Argon2
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "SignIn at Argon2id m=%d KiB, t=%d, p=%d over bbolt, %d samples each, interleaved\n", p.MemoryKiB, p.Time, p.Parallelism, loginSamples)
	tbl.WriteString("| sign-in | median | p95 | fastest | slowest | median / right password | budget |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range stats {
		fmt.Fprintf(&tbl, "| %s | %v | %v | %v | %v | %.2f× | median ≤ %v, p95 ≤ %v, %.1f×–%.1f× |\n", s.name,
			s.median.Round(time.Millisecond), s.p95.Round(time.Millisecond), s.fastest.Round(time.Millisecond), s.slowest.Round(time.Millisecond),
			float64(s.median)/float64(right.median), loginMedianBudget, loginP95Budget, loginBand, 1/loginBand)
		t.Logf("%-14s median %v, p95 %v (%v to %v)", s.name, s.median.Round(time.Microsecond), s.p95.Round(time.Microsecond),
			s.fastest.Round(time.Microsecond), s.slowest.Round(time.Microsecond))
	}
	t.Log("\n" + tbl.String())
	if out := os.Getenv("VERDICT_BENCH_TABLE"); out != "" {
		if err := os.WriteFile(out, []byte(tbl.String()), 0o644); err != nil {
			t.Error(err)
		}
	}

	for _, s := range stats {
		if s.median > loginMedianBudget {
			t.Errorf("%s: median %v, budget %v", s.name, s.median, loginMedianBudget)
		}
		if s.p95 > loginP95Budget {
			t.Errorf("%s: p95 %v, budget %v", s.name, s.p95, loginP95Budget)
		}
	}
	for _, s := range stats[1:] {
		if r := float64(s.median) / float64(right.median); r < loginBand || r > 1/loginBand {
			t.Errorf("%s: median %v is %.2f× a right password's %v, outside %.1f×–%.1f×: timing tells the answers apart",
				s.name, s.median, r, right.median, loginBand, 1/loginBand)
		}
	}
}
