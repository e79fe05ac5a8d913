package replica

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/storeadapt"

	"github.com/verdictpdp/verdict/bundles"
	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/internal/tcpproxy"
	"github.com/verdictpdp/verdict/internal/testutil"
	"github.com/verdictpdp/verdict/store"
	redisstore "github.com/verdictpdp/verdict/store/redis"
)

const policy = `apiVersion: verdict.dev/v1
kind: Policy
name: docs
rules:
  - id: owners
    effect: allow
    condition: has(resource.properties.owner) && resource.properties.owner == subject.id
`

// archive is a bundle of the policy with revision rev.
func archive(t *testing.T, rev string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, body string }{
		{".manifest", fmt.Sprintf(`{"revision":%q}`, rev)}, {"docs.verdict.yaml", policy},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func open(t *testing.T, url string) *redisstore.Store {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// nopKeys stands for a key ring: this test is about bundles and gaps.
type nopKeys struct{}

func (nopKeys) Load(context.Context) error { return nil }

type nopTokens struct{}

func (nopTokens) ForgetJTI(string) {}
func (nopTokens) ForgetAll()       {}

// TestRealRedisLostAnnouncementsAreRepairedByThePoll: replica b follows
// replica a's pushes through a real Redis; then b's subscription is cut
// (a TCP proxy keeps the connection open but drops what Redis sends on
// it), so b hears of a's next push from nothing but its poll, and serves it
// within the poll interval.
func TestRealRedisLostAnnouncementsAreRepairedByThePoll(t *testing.T) {
	rs := redistest.Start(t)
	px, err := tcpproxy.Start(rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	ctx := context.Background()
	stA := open(t, rs.URL())
	stB := open(t, "redis://"+px.Addr()+"/0")
	a := bundles.NewLifecycle(bundles.NewManager(bundles.DefaultConfig(), nil), storeadapt.Revisions(stA, store.DefaultNamespace), nil)
	mb := bundles.NewManager(bundles.DefaultConfig(), nil)
	b := bundles.NewLifecycle(mb, storeadapt.Revisions(stB, store.DefaultNamespace), nil)

	const poll = 200 * time.Millisecond
	s, err := New(Config{PollInterval: poll, StaleAfter: 10 * poll}, stB, Deps{Bundles: b, Tokens: nopTokens{}, Keys: nopKeys{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	serves := func(rev string) func() bool {
		return func() bool { act := mb.Active(); return act != nil && act.Snapshot.Revision() == rev }
	}
	testutil.WaitFor(t, "the first sync", time.Millisecond, s.Healthy)

	if _, err := a.Push(ctx, archive(t, "r1"), "ci", true); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "b to serve r1", time.Millisecond, serves("r1"))

	px.CutSubscriptions()
	repairs := s.Repairs()
	if _, err := a.Push(ctx, archive(t, "r2"), "ci", true); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	testutil.WaitFor(t, "b to serve r2 with its subscription cut", time.Millisecond, serves("r2"))
	took := time.Since(cut)
	if s.Repairs() == repairs {
		t.Fatal("r2 arrived without a repair: the subscription was not cut")
	}
	gen, err := stA.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "b's generation", time.Millisecond, func() bool { return s.Generation() == gen })
	// A generous ceiling (a loaded CI machine): the point is that the poll,
	// not a resubscription or a cache expiry, repaired it.
	if took > 10*poll {
		t.Fatalf("repair took %s, poll interval %s", took, poll)
	}
	t.Logf("repaired by the poll in %s (poll interval %s)", took, poll)
}
