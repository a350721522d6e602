package testnet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
	"github.com/treaty-dev/treaty/localapi"
)

// TestGroupsBFTAddMemberByMotion: a BFT group of four organisations adds a
// fifth by motion; its node joins with the founding definition, catches up,
// proposes, and a record decided after the change verifies offline with the
// five-member definition.
func TestGroupsBFTAddMemberByMotion(t *testing.T) {
	c := NewCluster(t, 5, Options{Names: []string{"acme", "globex", "initech", "umbrella", "hooli"}})
	founders, newcomer := c.Members[:4], c.Members[4]
	createGroup(t, "reviews", "bft", founders...)
	ctx := context.Background()
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return founders[0].Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "before", Value: "1"})
	})
	add := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return founders[0].Client().GroupMember(ctx, localapi.GroupMemberRequest{Group: "reviews", Peer: "hooli", Text: "a fifth reviewer"})
	})
	if !strings.HasPrefix(add.Motion, "#") {
		t.Fatalf("group add: %+v", add)
	}
	for _, m := range founders[:3] {
		commit(t, func(ctx context.Context) (localapi.Decision, error) {
			return m.Client().MotionVote(ctx, "reviews", add.Motion, true)
		})
	}
	// Until the newcomer runs, the five-member group (quorum 4) needs every
	// founder: a founder that lags behind stalls it until a view change, so
	// the read waits for that.
	Eventually(t, 60*time.Second, func() error {
		mo, err := founders[3].Client().MotionShow(ctx, "reviews", add.Motion)
		if err != nil {
			return err
		}
		if mo.Outcome != "passed" || mo.Kind != "add-member" {
			return fmt.Errorf("membership motion: %+v", mo)
		}
		return nil
	})
	if err := newcomer.Client().GroupCreate(ctx, localapi.GroupCreateRequest{Name: "reviews", Mode: "bft", Members: []string{"acme", "globex", "initech", "umbrella"}, Join: true}); err != nil {
		t.Fatalf("join: %v", err)
	}
	Eventually(t, 60*time.Second, func() error {
		it, err := newcomer.Client().KVGet(ctx, "reviews", "before")
		if err != nil {
			return err
		}
		if it.Value != "1" {
			return fmt.Errorf("value %q", it.Value)
		}
		return nil
	})
	put := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return newcomer.Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "after", Value: "2"})
	})
	if it, err := founders[1].Client().KVGet(ctx, "reviews", "after"); err != nil || it.Value != "2" || it.Index != put.Index {
		t.Fatalf("the newcomer's write on a founder: %+v %v", it, err)
	}
	gs, err := newcomer.Client().Groups(ctx)
	if err != nil || gs[0].Epoch != 1 || gs[0].N != 5 || gs[0].Quorum != 4 || gs[0].Source != "join" {
		t.Fatalf("group ls on the newcomer: %+v %v", gs, err)
	}
	var rec []byte
	Eventually(t, 15*time.Second, func() error {
		var err error
		rec, err = founders[2].Client().DecisionExport(ctx, "reviews", put.Index)
		return err
	})
	r, err := fsm.ParseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsm.Verify(r); err != nil || r.Group.Epoch != 1 || len(r.Group.Members) != 5 || len(r.Certificate) < 4 {
		t.Fatalf("record after the change: epoch %d, %d members, %d signatures: %v", r.Group.Epoch, len(r.Group.Members), len(r.Certificate), err)
	}
}
