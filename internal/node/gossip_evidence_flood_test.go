package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/membership"
)

// TestGossipEvidenceAuditIsAggregated: a member that keeps gossiping bad
// records costs the audit log what any other refusal of that member does:
// one entry of its own, then one aggregated entry per interval with the
// count. Trust still sees every piece of evidence. Without the aggregation
// every bad packet wrote an audit entry (200 here).
func TestGossipEvidenceAuditIsAggregated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/n"
	if _, err := home.Init(dir, "n", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{Home: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	relayer, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	const floods = 200
	for range floods {
		n.gossipEvidence(t.Context(), membership.Evidence{Relayer: relayer.Public(), Reason: membership.ReasonMalformed})
	}
	n.adm.wg.Wait()
	n.flushRefusals(context.Background(), true)
	var own, aggregated, counted int
	for _, e := range AuditEntries(t, n) {
		if e.Kind != KindGossipEvidence {
			continue
		}
		var r struct {
			Aggregated int `json:"aggregated"`
		}
		_ = json.Unmarshal(e.Report, &r)
		if r.Aggregated > 0 {
			aggregated++
			counted += r.Aggregated
		} else {
			own++
		}
	}
	if own != 1 || aggregated != 1 || own+counted != floods {
		t.Errorf("audit: %d entries of their own and %d aggregated counting %d, want 1 and 1 counting %d",
			own, aggregated, counted, floods-1)
	}
}
