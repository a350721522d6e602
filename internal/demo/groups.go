package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus"
	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/internal/home"
	"github.com/treaty-dev/treaty/internal/refusal"
)

// approveByMotion is the consensus step: the three organisations form a BFT
// group (no one of them trusts the others not to lie), approve the reviewed
// pull request by motion, and one of them exports the decision record, which
// is then checked offline as `treaty decision verify` does.
func approveByMotion(ctx context.Context, say func(string, ...any), dir string, orgs ...*org) error {
	// BFT members talk to each other directly: the two that had not met yet
	// exchange IDs too.
	a, c := orgs[0], orgs[2]
	for _, e := range [][2]*org{{a, c}, {c, a}} {
		if err := home.AddPeer(e[0].home, e[1].name, e[1].n.Addr().String(), e[1].n.ID().String()); err != nil {
			return err
		}
		if err := e[0].n.Reload(); err != nil {
			return err
		}
	}
	var names []string
	mgrs := make([]*consensus.Manager, len(orgs))
	for _, o := range orgs {
		names = append(names, o.name)
	}
	for i, o := range orgs {
		g, err := o.n.GroupDefinition("reviews", "bft", names)
		if err != nil {
			return err
		}
		if mgrs[i], err = o.n.Groups(); err != nil {
			return err
		}
		if err := mgrs[i].Create(g); err != nil {
			return err
		}
		if i == 0 {
			say("   group reviews: bft, %d members, f = %d, quorum %d, id %s…", g.N(), g.F(), g.Quorum(), g.ID().String()[:16])
		}
	}
	// The first request waits for the members to form their first view.
	var open consensus.Applied
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		open, err = mgrs[0].OpenMotion(ctx, "reviews", "merge-pr-42", 3, time.Hour, "merge acme's PR 42 as reviewed by globex-review-bot")
		if err == nil {
			break
		}
		if refusal.ExitCode(err) != refusal.ExitUnreachable || time.Now().After(deadline) {
			return fmt.Errorf("demo: motion open: %w", err)
		}
	}
	say("   acme opens motion merge-pr-42 (quorum 3 of 3, deadline 1h) at index %d", open.Index)
	var last consensus.Applied
	for i, o := range orgs {
		var err error
		if last, err = mgrs[i].Vote(ctx, "reviews", "merge-pr-42", true); err != nil {
			return fmt.Errorf("demo: %s's vote: %w", o.name, err)
		}
		say("   %-8s votes yes: motion %s (index %d)", o.name, last.Result.Outcome, last.Index)
	}
	if last.Result.Outcome != fsm.OutcomePassed {
		return fmt.Errorf("demo: motion is %s after three yes votes", last.Result.Outcome)
	}
	rec, err := mgrs[1].Record(ctx, "reviews", last.Index)
	if err != nil {
		return fmt.Errorf("demo: export: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "decision.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	say("   globex exports the record (treaty decision export reviews %d): %d bytes, %d member signatures", last.Index, len(b), len(rec.Certificate))
	// Offline, as `treaty decision verify` does: no node, no network.
	r, err := fsm.ParseRecord(b)
	if err == nil {
		err = fsm.Verify(r)
	}
	if err != nil {
		return fmt.Errorf("demo: the exported record does not verify: %w", err)
	}
	say("   verified offline: the definition hashes to the group ID, the request is a member's, %d of %d signed the outcome", len(r.Certificate), len(r.Group.Members))
	r.Result.Outcome = fsm.OutcomeFailed
	err = fsm.Verify(r)
	if err == nil {
		return fmt.Errorf("demo: a record with a changed outcome verifies")
	}
	say("   the same record with its outcome changed to failed: %v", err)
	return nil
}
