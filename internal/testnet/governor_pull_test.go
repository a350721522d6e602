package testnet

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
	"github.com/treaty-dev/treaty/internal/node"
	"github.com/treaty-dev/treaty/internal/transport"
	"github.com/treaty-dev/treaty/localapi"
)

// pulledBound is the documented bound from a node's (re)start, with gossip
// on, to its applying a decision it missed (docs/admission.md): its join
// exchanges the seeds' announcements, then one fetch. Under -race on a
// shared machine, hence the margin over the 2 s a healthy network needs.
const pulledBound = 15 * time.Second

// TestGovernorPullsMissedDecisions: decisions reach, by gossip's
// anti-entropy, a node that was down while they were pushed and a node that
// joined after them; a forged or mismatched announcement costs the
// announcer trust.
func TestGovernorPullsMissedDecisions(t *testing.T) {
	c := NewCluster(t, 5, Options{Names: []string{"acme", "globex", "initech", "delta", "mallory"}})
	board, delta, mallory := c.Members[:3], c.Members[3], c.Members[4]
	acme, globex := board[0], board[1]
	createGroup(t, "board", "raft", board...)
	var ids []string
	for _, m := range board {
		ids = append(ids, m.ID.String())
	}
	outside := "membership:\n  enabled: true\n  governor:\n    group: board\n    mode: raft\n    members: [" + strings.Join(ids, ", ") + "]\n"
	for _, m := range board {
		m.AppendConfig(t, "membership:\n  enabled: true\n  governor:\n    group: board\n")
	}
	delta.AppendConfig(t, outside)
	mallory.AppendConfig(t, "membership:\n  enabled: true\n")
	// Gossip starts with the node, seeded with its peer book.
	for _, m := range c.Members {
		m.Stop(t)
		m.Start(t)
	}

	t.Run("restarted", func(t *testing.T) {
		delta.Stop(t)
		res := govern(t, acme, localapi.GovernRequest{Action: membership.ActionRevoke, Peer: "mallory"})
		if last := vote(t, res.Motion, globex); last.Outcome != "passed" {
			t.Fatalf("after two yes votes of three: %+v", last)
		}
		// Every member of the group either pushed to delta and gave up, or
		// took another member's statement first (whose push covered delta).
		eventually(t, governedBound, "the group's pushes to delta fail", func() bool {
			for _, m := range board {
				if m.Node().Admitted(mallory.ID) || !pushFailed(m, delta.ID) && !strings.Contains(m.Log(), "not wrapped again") {
					return false
				}
			}
			return true
		})
		start := time.Now()
		delta.Start(t)
		eventually(t, pulledBound, "restarted delta refuses mallory", func() bool { return !delta.Node().Admitted(mallory.ID) })
		t.Logf("restarted delta refused mallory %v after its start began", time.Since(start))
		eventually(t, governedBound, "delta audits the revocation as pulled", func() bool {
			for _, e := range delta.Audit(t, audit.Filter{Kind: node.KindKeyRevoked, Peer: mallory.ID.String()}) {
				var rep map[string]any
				_ = json.Unmarshal(e.Report, &rep)
				if rep["by"] == "group" && rep["pulled"] == true {
					return true
				}
			}
			return false
		})
		eventually(t, governedBound, "mallory leaves delta's peer book", func() bool {
			_, ok := knows(delta, mallory.ID)
			return !ok
		})
	})

	t.Run("joined later", func(t *testing.T) {
		newcomer, err := identity.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		k := newcomer.Public()
		res := govern(t, acme, localapi.GovernRequest{Action: membership.ActionAdmit, Peer: k.String(), Name: "foxtrot", Addr: "127.0.0.1:9"})
		if last := vote(t, res.Motion, globex); last.Outcome != "passed" {
			t.Fatalf("admission after two yes votes of three: %+v", last)
		}
		eventually(t, governedBound, "the members learn foxtrot", func() bool {
			for _, m := range []*Member{acme, globex, board[2], delta} {
				if m.Node().PeerSource(k) != config.SourceDecision {
					return false
				}
			}
			return true
		})
		// echo joins afterwards, known to globex alone (an operator's peer add).
		echo := c.Add(t, "echo", outside)
		c.Federate(t, echo, globex)
		echo.Stop(t)
		start := time.Now()
		echo.Start(t)
		eventually(t, pulledBound, "echo learns foxtrot from the group's decision", func() bool {
			return echo.Node().PeerSource(k) == config.SourceDecision
		})
		t.Logf("echo learned foxtrot %v after its start began", time.Since(start))
		if p, _ := knows(echo, k); p.Addr != "127.0.0.1:9" || p.Name != "foxtrot" {
			t.Fatalf("echo's entry for foxtrot: %+v", p)
		}
	})

	t.Run("forged", func(t *testing.T) {
		// mallet, a member delta knows, announces three decisions delta
		// lacks and serves a statement that is not the announced one, a
		// forgery, and a genuine one whose decision is not the announced one.
		malletKey, err := identity.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		// The genuine statement delta pulled, and its records wrapped by
		// mallet, which is no member of the Raft group: a forgery.
		genuine := heldDecided(t, delta)
		d, err := membership.ParseDecided(genuine)
		if err != nil {
			t.Fatal(err)
		}
		open, passed := exportRecord(t, acme, d.Opened), exportRecord(t, acme, d.Passed)
		forged, _, _ := membership.SignDecided(malletKey, open, passed, "")
		if forged == "" {
			t.Fatal("no forged text")
		}
		group := d.Group.ID()
		serve := map[[32]byte]string{}
		var anns []membership.Statement
		for i, text := range []string{genuine, forged, genuine} {
			a := membership.DecidedAnnouncement{Action: membership.ActionRevoke, Subject: globex.ID, Passed: uint64(100000 + i),
				Time: time.Now().UnixNano(), Digest: sha256.Sum256([]byte(text))}
			a.Group = group
			if i == 0 {
				a.Digest[0] ^= 1 // announced one digest, serves another text
				serve[a.Digest] = forged
			} else {
				serve[a.Digest] = text
			}
			st, err := membership.SignDecidedAnnouncement(malletKey, a)
			if err != nil {
				t.Fatal(err)
			}
			anns = append(anns, st)
		}
		mallet := fakeAnnouncer(t, malletKey, serve)
		delta.AddPeerAt(t, "mallet", mallet.Addr().String(), malletKey.Public().String())
		before := delta.Node().TrustSnapshot(malletKey.Public())
		g, err := membership.New(t.Context(), membership.Config{Self: malletKey, Transport: mallet,
			Seeds:    []membership.Seed{{Key: delta.ID, Addr: delta.Addr()}},
			Kinds:    membership.DecidedKinds(func(identity.PublicKey, membership.DecidedAnnouncement) {}),
			Announce: func() []membership.Statement { return anns }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		eventually(t, pulledBound, "delta charges mallet for three bad fetched statements", func() bool {
			return delta.Node().TrustSnapshot(malletKey.Public()).Bad >= before.Bad+3
		})
		if !delta.Node().Admitted(globex.ID) {
			t.Fatal("delta applied a revocation it was not proven")
		}
		// delta serves what it holds, by digest, and nothing else.
		for req, want := range map[string]string{
			"fetch zz":                          "error: ",
			"fetch " + strings.Repeat("ab", 32): "error: not held here",
			"fetch " + hex.EncodeToString(digestOf(genuine)): genuine,
		} {
			if got := fetchRaw(t, mallet, delta, req); !strings.HasPrefix(got, want) {
				t.Fatalf("%q: delta answered %.80q, want %.80q", req, got, want)
			}
		}
		eventually(t, governedBound, "delta audits a refused statement from mallet", func() bool {
			return len(delta.Audit(t, audit.Filter{Kind: node.KindStmtRefused, Peer: malletKey.Public().String()})) > 0
		})
	})
}

func digestOf(text string) []byte {
	d := sha256.Sum256([]byte(text))
	return d[:]
}

// fetchRaw sends one request line to m on the decided-statement protocol
// and returns the answer line.
func fetchRaw(t *testing.T, tr *transport.Transport, m *Member, req string) string {
	t.Helper()
	conn, err := tr.Dial(t.Context(), m.Addr(), m.ID, node.ProtoDecided)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req + "\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(line, "\n")
}

// heldDecided returns the first decided statement m keeps.
func heldDecided(t *testing.T, m *Member) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.Home, node.DecidedFile))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err != nil || len(texts) == 0 {
		t.Fatalf("%s keeps %d decided statements: %v", m.Name, len(texts), err)
	}
	return texts[0]
}

// pushFailed reports whether m logged a failed push to k.
func pushFailed(m *Member, k identity.PublicKey) bool {
	for _, l := range strings.Split(m.Log(), "\n") {
		if strings.Contains(l, `msg="statement not pushed"`) && strings.Contains(l, "peer="+k.Short()) {
			return true
		}
	}
	return false
}

// fakeAnnouncer is a transport with key k that answers fetches on the
// decided-statement protocol from serve, by digest.
func fakeAnnouncer(t *testing.T, k identity.PrivateKey, serve map[[32]byte]string) *transport.Transport {
	t.Helper()
	tr, err := transport.New(transport.Config{Identity: k, Peers: admitAll{}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	l := tr.Listener(node.ProtoDecided)
	tr.Listener(membership.Proto)
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				raw, _ := hex.DecodeString(strings.TrimSpace(strings.TrimPrefix(line, "fetch ")))
				var d [32]byte
				copy(d[:], raw)
				if text, ok := serve[d]; ok {
					_, _ = c.Write([]byte(text + "\n"))
					return
				}
				_, _ = c.Write([]byte("error: not held\n"))
			}()
		}
	}()
	return tr
}
