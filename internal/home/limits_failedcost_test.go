package home

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/budget"
)

// TestLimitChangeCostZeroClearsFailedCost: "--cost 0" turns a cost budget
// off, failed_cost (which needs a cost) with it, instead of failing
// validation.
func TestLimitChangeCostZeroClearsFailedCost(t *testing.T) {
	t.Parallel()
	l := LimitChange{Cost: ptr(0.0)}.apply(budget.Limit{Cost: 10, FailedCost: 2})
	if err := l.Validate("rule"); err != nil || l.FailedCost != 0 {
		t.Fatalf("after --cost 0: %+v, %v", l, err)
	}
}
