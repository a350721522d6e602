package node

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// BenchmarkHeldSave holds n revocations of unknown keys, relayed by n/32
// members (each its whole allowance), and reports the ledger writes and
// bytes they cost. "every" saves after each one, as before HeldSaver;
// "coalesced" is the node's path (markHeld). Signing is outside the timer.
//
//	go test ./internal/node -run '^$' -bench HeldSave -benchtime 1x
func BenchmarkHeldSave(b *testing.B) {
	for _, n := range []int{1024, 4096} {
		for _, mode := range []string{"every", "coalesced"} {
			b.Run(fmt.Sprintf("n=%d/%s", n, mode), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					node, texts := heldBenchNode(b, n)
					every := mode == "every"
					if every {
						node.adm.saver = nil // markHeld does nothing; saved below instead
					}
					writes, written := node.adm.writes.Load(), node.adm.written.Load()
					b.StartTimer()
					start := time.Now()
					for _, st := range texts {
						if _, err := node.applyStatement(b.Context(), st.text, st.relayer, nil); err != nil {
							b.Fatal(err)
						}
						if every {
							if err := node.adm.saveHeld(); err != nil {
								b.Fatal(err)
							}
						}
					}
					if err := node.adm.closeHeld(); err != nil { // the last save
						b.Fatal(err)
					}
					b.StopTimer()
					if got := node.adm.held.Len(); got != n {
						b.Fatalf("%d held, want %d", got, n)
					}
					b.ReportMetric(float64(node.adm.writes.Load()-writes), "writes/op")
					b.ReportMetric(float64(node.adm.written.Load()-written)/1e6, "MB-written/op")
					b.ReportMetric(time.Since(start).Seconds(), "s/op-wall")
					node.Close()
					b.StartTimer()
				}
			})
		}
	}
}

type heldBenchStatement struct {
	text    string
	relayer identity.PublicKey
}

// heldBenchNode opens a node with n/32 members and signs n revocations of
// fresh keys, 32 relayed by each member.
func heldBenchNode(b *testing.B, n int) (*Node, []heldBenchStatement) {
	b.Helper()
	dir := b.TempDir() + "/n"
	if _, err := home.Init(dir, "n", "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	node, err := Open(Options{Home: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Close() })
	if err := node.loadAdmission(); err != nil {
		b.Fatal(err)
	}
	_, relayers := relayerKeys(b, n/32)
	for i, k := range relayers {
		if _, err := home.LearnPeer(dir, fmt.Sprintf("relayer%d", i), "127.0.0.1:1", k.Public(), config.SourceOperator); err != nil {
			b.Fatal(err)
		}
	}
	if err := node.reload(); err != nil {
		b.Fatal(err)
	}
	var out []heldBenchStatement
	for _, rel := range relayers {
		for range 32 {
			_, rt, err := membership.SignRevocation(mustKey(b), node.now(), "")
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, heldBenchStatement{rt, rel.Public()})
		}
	}
	return node, out
}
