package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// TestGroupEvidenceReachesTrustAndAudit: misbehaviour an engine reports
// lowers the member's trust and is audited as group.evidence.
func TestGroupEvidenceReachesTrustAndAudit(t *testing.T) {
	n, _, bob, _ := startReloadNode(t)
	g, err := fsm.NewGroup("reviews", fsm.ModeBFT, 0, []identity.PublicKey{n.ID(), bob})
	if err != nil {
		t.Fatal(err)
	}
	before := n.TrustSnapshot(bob).Score
	n.groupEvidence(g, bob, "equivocation", "two proposals for view 3 sequence 7")
	if after := n.TrustSnapshot(bob).Score; after >= before {
		t.Fatalf("trust of an equivocating member: %.3f -> %.3f", before, after)
	}
	eventually(t, 5*time.Second, "a group.evidence audit entry", func() bool {
		for _, e := range AuditEntries(t, n) {
			if e.Kind == KindGroupEvidence && e.Peer == bob.String() && strings.Contains(string(e.Report), "equivocation") {
				return true
			}
		}
		return false
	})
}

// TestGroupOutboundSanitizer: a secret in a value is blocked for every
// member, and a value the policy would pseudonymize is refused too (a group
// cannot replicate a value that differs per member); both are audited.
func TestGroupOutboundSanitizer(t *testing.T) {
	n, _, bob, _ := startReloadNode(t)
	g, _ := fsm.NewGroup("reviews", fsm.ModeRaft, 0, []identity.PublicKey{n.ID(), bob})
	ctx := context.Background()
	if err := n.groupOutbound(ctx, g, fsm.Put("pr/42", []byte("approved"))); err != nil {
		t.Fatalf("a clean value: %v", err)
	}
	err := n.groupOutbound(ctx, g, fsm.Put("creds", []byte("aws_access_key_id = AKIA"+"QWERTYUIOPASDFGH")))
	if refusal.StageOf(err) != refusal.StageSanitize || !strings.Contains(err.Error(), "aws_access_key") {
		t.Fatalf("a secret: %v", err)
	}
	err = n.groupOutbound(ctx, g, fsm.OpenMotion("notify", 1, 0, "mail dana.scully@acme.example when merged"))
	if refusal.StageOf(err) != refusal.StageSanitize || !strings.Contains(err.Error(), "verbatim") {
		t.Fatalf("personal data in a motion's text: %v", err)
	}
	n2 := 0
	for _, e := range AuditEntries(t, n) {
		if e.Kind == KindGroupRefused {
			n2++
			if strings.Contains(string(e.Report), "AKIA") || strings.Contains(string(e.Report), "dana.scully") {
				t.Fatalf("a refusal audit entry holds the value: %s", e.Report)
			}
		}
	}
	if n2 != 2 {
		t.Fatalf("%d group.refused entries, want 2", n2)
	}
}

// TestDecisionEntryKeepsNoValue: the audit entry of a decision names the
// proposer, the operation and the key, with the request's digest, never
// the value.
func TestDecisionEntryKeepsNoValue(t *testing.T) {
	k, _ := identity.FromSeed(make([]byte, 32))
	g, _ := fsm.NewGroup("reviews", fsm.ModeRaft, 0, []identity.PublicKey{k.Public()})
	q, _ := fsm.SignRequest(k, g.ID(), 1, fsm.CAS("pr/42", []byte("very-private-value"), 3))
	e := decisionEntry(g, consensusApplied(1, q.Encode(), fsm.Result{Index: 1, Code: fsm.CodeCASMismatch, Reason: "key at version 4", Version: 4}))
	if e.Kind != KindDecision || e.Peer != k.Public().String() || e.Outcome != "refused" || len(e.RequestDigest) != 32 {
		t.Fatalf("entry: %+v", e)
	}
	var rep map[string]any
	if err := json.Unmarshal(e.Report, &rep); err != nil || rep["key"] != "pr/42" || rep["code"] != "cas-mismatch" || rep["op"] != "put" {
		t.Fatalf("report: %s", e.Report)
	}
	if strings.Contains(string(e.Report), "very-private") || e.Content != nil {
		t.Fatal("the value reached the audit entry")
	}
}

func consensusApplied(index uint64, req []byte, res fsm.Result) consensus.Applied {
	return consensus.Applied{Index: index, Entry: fsm.Entry{Time: 1, Request: req}, Result: res}
}
