package main

import (
	"testing"

	"github.com/treaty-dev/treaty/internal/budget"
)

// TestLimitJSONShowsFailedCost: `treaty limit ls --json` shows a rule's
// failed_cost, set in treaty.yaml, and its summary names it.
func TestLimitJSONShowsFailedCost(t *testing.T) {
	t.Parallel()
	j := toLimitJSON(budget.Limit{Cost: 10, FailedCost: 2})
	if j.FailedCost != 2 || j.Summary != "cost 10/1h (a failed call at least 2)" {
		t.Fatalf("limit ls: %+v", j)
	}
}
