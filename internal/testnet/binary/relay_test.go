package binary

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
	"github.com/treaty-dev/treaty/internal/testnet"
)

// TestCallThroughRelay runs three node processes: relay R (relay.serve), callee
// C registered with R (relay.via), and caller A whose peer book has no address
// for C at all, only `via: r`. A calls C through R; the payload carries a unique
// marker that never appears in R's logs or audit log (the TLS session runs end
// to end; transport's tap test shows R forwards ciphertext only); R serves
// only keys in its own peer book; with R gone, A cannot reach C.
func TestCallThroughRelay(t *testing.T) {
	t.Parallel()
	bin := treatyBin(t)
	r, c, a := testnet.Init(t, bin, "r"), testnet.Init(t, bin, "c"), testnet.Init(t, bin, "a")

	// R admits both (it never dials them: their addresses refuse every dial).
	mustAddPeer(t, r, "c", "127.0.0.1:0", c.ID)
	mustAddPeer(t, r, "a", "127.0.0.1:0", a.ID)
	appendConfig(t, r, "relay:\n  serve: true\n")
	r.Start(t)

	mustAddPeer(t, c, "r", r.Addr, r.ID)
	mustAddPeer(t, c, "a", "127.0.0.1:0", a.ID)
	appendConfig(t, c, "relay:\n  via: [r]\n")
	c.Must(t, "expose", "echo", "--exec", testnet.WriteScript(t, `printf '{"peer":"%s","input":%s}' "$TREATY_PEER" "$(cat)"`))
	c.Must(t, "grant", "a", "echo")
	c.Start(t)

	mustAddPeer(t, a, "r", r.Addr, r.ID)
	cfg, err := config.Load(a.Home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Peers = append(cfg.Peers, config.Peer{Name: "c", ID: c.ID, Via: "r"}) // no addr: only the relay leads to C
	if err := config.Save(a.Home, cfg); err != nil {
		t.Fatal(err)
	}
	// X's revocation, published at A, reaches C only through R: R's entry for
	// C refuses every dial, so R cannot pass the statement on.
	x := testnet.Init(t, bin, "x")
	mustAddPeer(t, a, "x", "127.0.0.1:0", x.ID)
	mustAddPeer(t, c, "x", "127.0.0.1:0", x.ID)
	revFile := filepath.Join(t.TempDir(), "x.revoke")
	x.Must(t, "revoke", "--prepare", revFile)
	a.Start(t)

	var buf [16]byte
	_, _ = rand.Read(buf[:])
	marker := "relay-marker-" + hex.EncodeToString(buf[:])
	input := fmt.Sprintf(`{"note":%q}`, marker)
	var out string
	testnet.Eventually(t, 30*time.Second, func() error { // until C's registration is up
		o, errOut, code := a.Run(t, "call", "c", "echo", input)
		if code != 0 {
			return fmt.Errorf("call through the relay: exit %d: %s", code, errOut)
		}
		out = o
		return nil
	})
	if !strings.Contains(out, marker) || !strings.Contains(out, a.ID) {
		t.Fatalf("C's answer %q lacks the marker or A's ID", out)
	}

	a.Must(t, "revoke", revFile)
	testnet.Eventually(t, 30*time.Second, func() error {
		if _, ok := peerBook(t, c)[x.ID]; ok {
			return fmt.Errorf("C still has the key A revoked")
		}
		return nil
	})

	// The relay serves only keys in its own peer book: without A there, A
	// cannot reach C; with A back, it can again.
	r.Must(t, "peer", "rm", "a")
	testnet.Eventually(t, 30*time.Second, func() error {
		if _, _, code := a.Run(t, "call", "c", "echo", `{}`); code == 0 {
			return fmt.Errorf("A still reaches C through a relay that no longer admits it")
		}
		return nil
	})
	r.Must(t, "peer", "add", "--name", "a", "--addr", "127.0.0.1:0", a.ID)
	testnet.Eventually(t, 30*time.Second, func() error {
		if _, errOut, code := a.Run(t, "call", "c", "echo", `{}`); code != 0 {
			return fmt.Errorf("A readmitted by the relay: exit %d: %s", code, errOut)
		}
		return nil
	})

	// R carried the calls but never saw their plaintext.
	r.Stop(t)
	places := map[string][]byte{"relay log": []byte(r.Log())}
	for _, f := range []string{"audit.db", "audit.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(r.Home, f)); err == nil {
			places["relay "+f] = b
		}
	}
	for where, b := range places {
		if strings.Contains(string(b), marker) {
			t.Errorf("the relay saw the payload in plaintext: marker found in %s", where)
		}
	}
	// The only way to C was R: without it the call is unreachable.
	testnet.Eventually(t, 30*time.Second, func() error {
		_, errOut, code := a.Run(t, "call", "c", "echo", `{}`)
		if code != refusal.ExitUnreachable {
			return fmt.Errorf("call with the relay stopped: exit %d (%s), want %d", code, errOut, refusal.ExitUnreachable)
		}
		return nil
	})
}

func mustAddPeer(t *testing.T, n *testnet.Node, name, addr, id string) {
	t.Helper()
	if err := home.AddPeer(n.Home, name, addr, id); err != nil {
		t.Fatalf("%s: peer add %s: %v", n.Name, name, err)
	}
}
