package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// RunRoster runs the replica roster conformance tests against the stores
// open makes (stores shared by several replicas): a report is listed until
// its ttl passes (on the store's own clock: the test waits), a new report
// replaces the member's last one and renews it, Leave removes it at once,
// bad ids are refused, namespaces are kept apart.
func RunRoster(t *testing.T, open Opener) {
	s, _ := start(t, open)
	r, ok := s.(store.Roster)
	if !ok {
		t.Fatalf("%T does not implement store.Roster", s)
	}
	ctx := context.Background()
	ns := store.DefaultNamespace
	a := store.Member{ID: "host-a-1", Host: "host-a", Version: "1.2.3", Started: T0, Revision: "v1", Generation: 7, LastSync: T0.Add(time.Second), Healthy: true, Seen: T0.Add(time.Second)}
	b := store.Member{ID: "host-b-2", Host: "host-b", Revision: "v2", Generation: 9, Seen: T0}
	if err := r.Report(ctx, ns, b, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Report(ctx, ns, a, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := r.Members(ctx, ns)
	if err != nil || len(got) != 2 {
		t.Fatalf("members: %v %v", got, err)
	}
	MustDeepEqual(t, got[0], a)
	MustDeepEqual(t, got[1], b)
	a.Revision, a.Generation, a.Healthy = "v2", 9, false
	if err := r.Report(ctx, ns, a, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Members(ctx, ns); len(got) != 2 || got[0].Revision != "v2" || got[0].Healthy {
		t.Fatalf("a new report did not replace the last: %+v", got)
	}
	if other, err := r.Members(ctx, "tenant-b"); err != nil || len(other) != 0 {
		t.Fatalf("another namespace: %v %v", other, err)
	}
	if err := r.Leave(ctx, ns, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Members(ctx, ns); len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("after Leave: %+v", got)
	}
	for _, id := range []string{"", "a/b"} {
		if err := r.Report(ctx, ns, store.Member{ID: id}, time.Minute); err == nil {
			t.Errorf("a report with id %q was accepted", id)
		}
	}
	if err := r.Report(ctx, "bad/ns", a, time.Minute); err == nil {
		t.Error("an invalid namespace was accepted")
	}
	// A member that stops reporting drops out when its report expires.
	if err := r.Report(ctx, ns, a, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := r.Members(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an expired report is still listed: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
