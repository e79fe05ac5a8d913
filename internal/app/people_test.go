package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/store"
)

// TestJanitorPrunesOldAuditEvents: the server's maintenance deletes audit
// events older than users.audit_retention and keeps the newer ones.
func TestJanitorPrunesOldAuditEvents(t *testing.T) {
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	for i, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		e := store.AuditEvent{ID: string(rune('a' + i)), Time: now.Add(-age), Type: "user.sign_in", UserID: "u_1"}
		if err := b.AppendAudit(ctx, store.DefaultNamespace, e); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	pruneAudit(ctx, b, now.Add(-DefaultConfig().Users.AuditRetention), slog.New(slog.NewTextHandler(&logs, nil)))
	left, err := b.UserAudit(ctx, store.DefaultNamespace, "u_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].ID != "c" || left[1].ID != "d" {
		t.Fatalf("left %+v", left)
	}
	if !strings.Contains(logs.String(), "old audit events deleted") || !strings.Contains(logs.String(), "count=2") {
		t.Fatalf("log: %s", logs.String())
	}
}
