package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/localapi"
)

// TestGroupsBFTRemovedWhileDown: a member down while the others remove it
// from a BFT group learns its removal when it comes back (the others' checked
// network still lets it fetch the decision that removed it): its requests
// are refused as a non-member's (exit 3), not left to time out.
func TestGroupsBFTRemovedWhileDown(t *testing.T) {
	c := NewCluster(t, 4, Options{Names: []string{"acme", "globex", "initech", "umbrella"}})
	createGroup(t, "reviews", "bft", c.Members...)
	acme, gone := c.Members[0], c.Members[3]
	ctx := context.Background()
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return acme.Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "before", Value: "1"})
	})
	gone.Stop(t)
	rm := commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return acme.Client().GroupMember(ctx, localapi.GroupMemberRequest{Group: "reviews", Peer: "umbrella", Remove: true, Text: "left while away"})
	})
	var last localapi.Decision
	for _, m := range c.Members[:3] {
		last = commit(t, func(ctx context.Context) (localapi.Decision, error) {
			return m.Client().MotionVote(ctx, "reviews", rm.Motion, true)
		})
	}
	if last.Outcome != "passed" {
		t.Fatalf("removal motion: %+v", last)
	}
	gone.Start(t)
	Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := gone.Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "k", Value: "v"})
		if exitOf(err) != localapi.ExitDenied {
			return fmt.Errorf("removed member proposes: %v (exit %d)", err, exitOf(err))
		}
		return nil
	})
	commit(t, func(ctx context.Context) (localapi.Decision, error) {
		return c.Members[1].Client().KVPut(ctx, localapi.KVPutRequest{Group: "reviews", Key: "k", Value: "v"})
	})
}
