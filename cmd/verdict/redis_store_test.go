package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/verdictpdp/verdict/internal/app"
	"github.com/verdictpdp/verdict/internal/redistest"
	"github.com/verdictpdp/verdict/store"
)

// TestRedisStoreSharedByReplicasAndCLI: two servers on one Redis (each with
// a data dir of its own) and the CLI working on it while they run: a client
// added by the CLI gets a token from one replica that the other accepts
// (same signing keys, same pepper), and revoked there it is refused here.
func TestRedisStoreSharedByReplicasAndCLI(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	addrA, addrB := freeAddr(t), freeAddr(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	// Behind a load balancer the replicas share one issuer.
	cfg := filepath.Join(t.TempDir(), "replica.yaml")
	writeFile(t, cfg, "bundles: {require_signature: false, acknowledge_unsigned: true}\ntokens: {issuer: \"http://verdict.test\"}\n")
	stopA, logsA := serveWith(t, addrA, dirA, "--config", cfg, "--store", url)
	defer stopA()
	stopB, _ := serveWith(t, addrB, dirB, "--config", cfg, "--store", url)
	defer func() { stopB() }()

	// The CLI works while the servers run: no data-dir lock with Redis.
	code, out, errOut := cli(t, "", "client", "add", "--id", "gw", "--scope", "verdict:decide", "--store", url, "--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("client add --store while serving: %d %s", code, errOut)
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out)[1]
	if code, out, _ := cli(t, "", "client", "list", "--store", url); code != 0 || !strings.Contains(out, "gw") {
		t.Fatalf("client list --store: %d %s", code, out)
	}
	ks := func() []keyInfo {
		code, out, errOut := cli(t, "", "keys", "list", "--json", "--store", url)
		if code != 0 {
			t.Fatalf("keys list --store: %d %s", code, errOut)
		}
		return parseKeys(t, out)
	}()
	if len(ks) != 1 {
		t.Fatalf("two replicas on one Redis made %d signing keys, want the one they share: %+v", len(ks), ks)
	}

	cc := clientcredentials.Config{ClientID: "gw", ClientSecret: secret, TokenURL: "http://" + addrA + "/oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("token from replica A for a client the CLI added: %v\n%s", err, logsA.String())
	}
	if code := decideStatus(t, "http://"+addrB, tok.AccessToken, "alice"); code != 200 {
		t.Fatalf("replica B refuses replica A's token: %d", code)
	}
	revokeToken(t, "http://"+addrA, "gw", secret, tok.AccessToken)
	// B may hold the token in its verified-token cache until the replica
	// sync evicts it; a fresh B (no cache) must see the revocation in Redis.
	stopB()
	stopB, _ = serveWith(t, addrB, dirB, "--config", cfg, "--store", url)
	if code := decideStatus(t, "http://"+addrB, tok.AccessToken, "alice"); code != 401 {
		t.Fatalf("a token revoked on A is accepted by B: %d", code)
	}

	// Nothing went to the data dirs: the state is in Redis.
	for _, dir := range []string{dirA, dirB} {
		for _, name := range []string{store.BoltFile, app.PepperFile} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("%s was written with --store redis", filepath.Join(dir, name))
			}
		}
	}
	if !strings.Contains(logsA.String(), "store="+url) && !strings.Contains(logsA.String(), `"store":"`+url) {
		t.Errorf("serve does not log which store it uses:\n%s", logsA.String())
	}
}

func TestStoreFlagRejectsBadURL(t *testing.T) {
	code, _, errOut := cli(t, "", "client", "list", "--store", "redis://u:s3cret@h:1/notadb")
	if code == 0 {
		t.Fatal("client list with a bad --store succeeded")
	}
	if strings.Contains(errOut, "s3cret") {
		t.Errorf("the password is in the error: %s", errOut)
	}
	if !strings.Contains(errOut, "store") {
		t.Errorf("the error does not name the store setting: %s", errOut)
	}
}
