package bench

import (
	"os"
	"testing"
	"time"
)

func TestZZProfile(t *testing.T) {
	which := os.Getenv("ZZ")
	if which == "" {
		t.Skip()
	}
	var tg target
	switch which {
	case "cel":
		tg = verdictServer(t, "cel", celBundle, false, false)
	case "hits":
		tg = verdictServer(t, "hits", celBundle, true, false)
	case "rego":
		tg = verdictServer(t, "rego", regoBundle, false, false)
	}
	t.Logf("%s: %.0f req/s", which, throughput(t, tg, 32, 5*time.Second))
}
