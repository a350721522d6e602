package node

import (
	"encoding/json"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/identity"
)

// TestRedeliveredDecisionsAuditedOnce: after a restart the engine delivers
// again the entries whose flush it had not recorded; those the audit log
// already holds (written before the crash) are skipped, the others are
// written, so each (group, index) has exactly one decision entry. Another
// group's entries with the same indexes do not count.
func TestRedeliveredDecisionsAuditedOnce(t *testing.T) {
	n, _, bob, _ := startReloadNode(t)
	k, _ := identity.FromSeed(make([]byte, 32))
	g, _ := fsm.NewGroup("team", fsm.ModeRaft, 0, []identity.PublicKey{k.Public(), bob})
	other, _ := fsm.NewGroup("board", fsm.ModeRaft, 0, []identity.PublicKey{k.Public(), bob})
	applied := func(grp fsm.Group, i uint64, since uint64, redelivered bool) consensus.Applied {
		q, _ := fsm.SignRequest(k, grp.ID(), i, fsm.Put("k", []byte("v")))
		a := consensusApplied(i, q.Encode(), fsm.Result{Index: i})
		a.Redelivered, a.Since = redelivered, since
		return a
	}
	flush := func(name string) uint64 {
		t.Helper()
		pos, wait := n.groupFlush(name)
		if wait != nil {
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		}
		return pos
	}
	// Before the crash: 1..6 delivered and flushed, and the engine stored
	// its mark 6 with the position of that flush; 7 and 9 were written but
	// the next mark was not stored; board wrote 8.
	for i := uint64(1); i <= 6; i++ {
		n.groupApplied(g, applied(g, i, 0, false))
	}
	since := flush("team")
	for _, i := range []uint64{7, 9} {
		n.groupApplied(g, applied(g, i, 0, false))
	}
	n.groupApplied(other, applied(other, 8, 0, false))
	flush("team")
	flush("board")
	// After the restart: a fresh view of the group, 7..10 redelivered.
	n.groups.mu.Lock()
	delete(n.groups.byGroup, "team")
	n.groups.mu.Unlock()
	for i := uint64(7); i <= 10; i++ {
		n.groupApplied(g, applied(g, i, since, true))
	}
	flush("team")
	count := map[uint64]int{}
	for _, e := range AuditEntries(t, n) {
		if e.Kind != KindDecision || e.Capability != "group:team" {
			continue
		}
		var rep struct {
			Index uint64 `json:"index"`
		}
		if err := json.Unmarshal(e.Report, &rep); err != nil {
			t.Fatal(err)
		}
		count[rep.Index]++
	}
	for i := uint64(1); i <= 10; i++ {
		if count[i] != 1 {
			t.Fatalf("index %d audited %d times (all: %v)", i, count[i], count)
		}
	}
}

// TestAdoptedDecisionSaysSo: an entry a member adopted with a snapshot is
// audited like the others, and its report says the result is another
// member's record.
func TestAdoptedDecisionSaysSo(t *testing.T) {
	k, _ := identity.FromSeed(make([]byte, 32))
	g, _ := fsm.NewGroup("team", fsm.ModeRaft, 0, []identity.PublicKey{k.Public()})
	q, _ := fsm.SignRequest(k, g.ID(), 1, fsm.Put("k", []byte("v")))
	a := consensusApplied(4, q.Encode(), fsm.Result{Index: 4})
	a.Adopted = true
	var rep map[string]any
	if err := json.Unmarshal(decisionEntry(g, a).Report, &rep); err != nil || rep["adopted"] != true || rep["index"] != 4.0 {
		t.Fatalf("report: %v %v", rep, err)
	}
	a.Adopted = false
	var plain map[string]any
	if err := json.Unmarshal(decisionEntry(g, a).Report, &plain); err != nil {
		t.Fatal(err)
	}
	if _, ok := plain["adopted"]; ok {
		t.Fatal("an applied entry reported as adopted")
	}
}
