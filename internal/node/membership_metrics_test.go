package node

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/membership"
)

// TestMembershipEvidenceLabelsBounded: a reason outside the closed set (a
// newer membership package, a corrupt value) is counted as "unknown", never
// indexes out of range or mints a label.
func TestMembershipEvidenceLabelsBounded(t *testing.T) {
	var c membershipCounts
	for _, r := range []membership.Reason{-1, 0, 99, membership.ReasonReplayed, membership.ReasonRejected} {
		c.evidenced(r)
	}
	if got := c.evidence[0].Load(); got != 3 {
		t.Errorf("unknown reasons counted %d, want 3", got)
	}
	if c.evidence[membership.ReasonReplayed].Load() != 1 || c.evidence[membership.ReasonRejected].Load() != 1 {
		t.Errorf("known reasons not counted under their own label")
	}
	if membership.Reason(0).String() != "unknown" {
		t.Errorf("index 0 label %q, want unknown", membership.Reason(0).String())
	}
}
