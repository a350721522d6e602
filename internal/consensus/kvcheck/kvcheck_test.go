package kvcheck

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(in Op, call, ret int64, out Result) porcupine.Operation {
	return porcupine.Operation{Input: in, Call: call, Return: ret, Output: out}
}

// TestModelIsNotVacuous: histories that no linearizable store produces are
// refused, and the ones unknown outcomes allow are accepted.
func TestModelIsNotVacuous(t *testing.T) {
	t.Parallel()
	bad := map[string][]porcupine.Operation{
		"stale read": {
			op(Op{Kind: "put", Key: "a", Value: "x"}, 0, 1, Result{OK: true, Version: 1}),
			op(Op{Kind: "put", Key: "a", Value: "y"}, 2, 3, Result{OK: true, Version: 2}),
			op(Op{Kind: "get", Key: "a"}, 4, 5, Result{OK: true, Value: "x", Version: 1}),
		},
		"two CAS at version 0 both applied": {
			op(Op{Kind: "cas", Key: "a", Value: "x"}, 0, 1, Result{OK: true, Version: 1}),
			op(Op{Kind: "cas", Key: "a", Value: "y"}, 2, 3, Result{OK: true, Version: 1}),
		},
		"CAS mismatch at the current version": {
			op(Op{Kind: "put", Key: "a", Value: "x"}, 0, 1, Result{OK: true, Version: 1}),
			op(Op{Kind: "cas", Key: "a", Value: "y", IfVersion: 1}, 2, 3, Result{MismatchVersion: true, Version: 1}),
		},
	}
	for name, h := range bad {
		if porcupine.CheckOperations(Model, h) {
			t.Errorf("%s: accepted", name)
		}
	}
	good := map[string][]porcupine.Operation{
		"an unknown put takes effect late": {
			op(Op{Kind: "put", Key: "a", Value: "x"}, 0, math.MaxInt64, Result{Unknown: true}),
			op(Op{Kind: "get", Key: "a"}, 4, 5, Result{}),
			op(Op{Kind: "get", Key: "a"}, 6, 7, Result{OK: true, Value: "x", Version: 1}),
		},
		"a refused request has no effect": {
			op(Op{Kind: "put", Key: "a", Value: "x"}, 0, 1, Result{Refused: true}),
			op(Op{Kind: "get", Key: "a"}, 2, 3, Result{}),
		},
	}
	for name, h := range good {
		if !porcupine.CheckOperations(Model, h) {
			t.Errorf("%s: refused", name)
		}
	}
}

func TestHistoryCheckDescribesViolation(t *testing.T) {
	t.Parallel()
	h := NewHistory()
	h.Add(0, 0, Op{Kind: "put", Key: "a", Value: "x"}, h.Now(), Result{OK: true, Version: 1})
	h.Mark()
	h.Add(1, 2, Op{Kind: "get", Key: "a"}, h.Now(), Result{OK: true, Value: "z", Version: 1})
	res, lines := h.Check(5e9)
	if res != porcupine.Illegal || len(lines) != 2 {
		t.Fatalf("Check = %v, %q", res, lines)
	}
	if k, after, via := h.Counts(); k != 2 || after != 1 || via[2] != 1 {
		t.Fatalf("Counts = %d %d %v", k, after, via)
	}
}
