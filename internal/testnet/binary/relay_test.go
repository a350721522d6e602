package binary

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"github.com/treaty-dev/treaty/localapi"
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

// TestCallThroughRelayLearnedByGossip runs relay R, callee C (registered with R)
// and caller A, all gossiping, and no `via` anywhere in A's config: A's peer
// book has C only at an address nothing listens on. A learns from C's signed
// record that C is reached through R, `treaty members` on A shows C via R, and
// A calls C through R. Gossip also moves A's book entry to C's real listener,
// yet with R stopped the call fails: the route went through R, never direct.
// A unique marker in the payload never appears in R's log or audit log.
func TestCallThroughRelayLearnedByGossip(t *testing.T) {
	t.Parallel()
	bin := treatyBin(t)
	r, c, a := testnet.Init(t, bin, "r"), testnet.Init(t, bin, "c"), testnet.Init(t, bin, "a")
	const gossip = "membership:\n  enabled: true\n"

	mustAddPeer(t, r, "c", "127.0.0.1:1", c.ID)
	mustAddPeer(t, r, "a", "127.0.0.1:1", a.ID)
	appendConfig(t, r, gossip+"relay:\n  serve: true\n")
	r.Start(t)

	mustAddPeer(t, c, "r", r.Addr, r.ID)
	mustAddPeer(t, c, "a", "127.0.0.1:1", a.ID)
	appendConfig(t, c, gossip+"relay:\n  via: [r]\n")
	c.Must(t, "expose", "echo", "--exec", testnet.WriteScript(t, `printf '{"peer":"%s","input":%s}' "$TREATY_PEER" "$(cat)"`))
	c.Must(t, "grant", "a", "echo")
	c.Start(t)

	mustAddPeer(t, a, "r", r.Addr, r.ID)
	mustAddPeer(t, a, "c", "127.0.0.1:1", c.ID) // where C says it is, unreachable
	appendConfig(t, a, gossip)
	a.Start(t)
	if cfg, err := config.Load(a.Home); err != nil {
		t.Fatal(err)
	} else if p, _ := cfg.Peer(c.ID); p.Via != "" || len(cfg.Relay.Via) != 0 {
		t.Fatalf("A's config names a relay: %+v", p)
	}

	testnet.Eventually(t, 60*time.Second, func() error {
		out, errOut, code := a.Run(t, "members", "--json")
		if code != 0 {
			return fmt.Errorf("members: exit %d: %s", code, errOut)
		}
		var ms []localapi.MemberInfo
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == c.ID && m.Via == r.ID {
				return nil
			}
		}
		return fmt.Errorf("A's members do not show C via R: %s", out)
	})
	table := a.Must(t, "members")
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "c" && f[len(f)-1] != "r" {
			t.Fatalf("members shows C without VIA r:\n%s", table)
		}
	}

	var buf [16]byte
	_, _ = rand.Read(buf[:])
	marker := "gossip-relay-marker-" + hex.EncodeToString(buf[:])
	var out string
	testnet.Eventually(t, 60*time.Second, func() error {
		o, errOut, code := a.Run(t, "call", "c", "echo", fmt.Sprintf(`{"note":%q}`, marker))
		if code != 0 {
			return fmt.Errorf("call through the relay learned by gossip: exit %d: %s", code, errOut)
		}
		out = o
		return nil
	})
	if !strings.Contains(out, marker) || !strings.Contains(out, a.ID) {
		t.Fatalf("C's answer %q lacks the marker or A's ID", out)
	}
	testnet.Eventually(t, 60*time.Second, func() error { // gossip moved A's entry to C's listener
		if p := peerBook(t, a)[c.ID]; p.Addr != c.Addr {
			return fmt.Errorf("A's book has C at %s, C listens at %s", p.Addr, c.Addr)
		}
		return nil
	})

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
	// C is up and A knows its real address, but C names R as its way in.
	testnet.Eventually(t, 30*time.Second, func() error {
		_, errOut, code := a.Run(t, "call", "c", "echo", `{}`)
		if code != refusal.ExitUnreachable {
			return fmt.Errorf("call with the relay stopped: exit %d (%s), want %d", code, errOut, refusal.ExitUnreachable)
		}
		return nil
	})
}
