package budget

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckChain(t *testing.T) {
	t.Parallel()
	self, a, b, c := peerID(t, 40), peerID(t, 41), peerID(t, 42), peerID(t, 43)
	for _, tc := range []struct {
		name     string
		chain    []string
		maxDepth int
		depth    bool // want *Exceeded depth
		loop     string
		loopAt   int
		bad      bool
	}{
		{"direct call", []string{a}, 4, false, "", 0, false},
		{"no chain", nil, 4, false, "", 0, false},
		{"at the limit", []string{a, b, c}, 3, false, "", 0, false},
		{"one too deep", []string{a, b, c}, 2, true, "", 0, false},
		{"depth below 1 counts as 1", []string{a, b}, 0, true, "", 0, false},
		{"depth 0 allows direct", []string{a}, 0, false, "", 0, false},
		{"back to me", []string{a, self, b}, 4, false, self, 1, false},
		{"back to me directly", []string{self}, 4, false, self, 0, false},
		{"repeated peer", []string{a, b, a}, 4, false, a, 2, false},
		{"adjacent repeat", []string{b, b}, 4, false, b, 1, false},
		{"empty entry", []string{a, ""}, 4, false, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckChain(tc.chain, self, tc.maxDepth)
			switch {
			case tc.depth:
				var e *Exceeded
				if !errors.As(err, &e) || e.Budget != BudgetDepth || !strings.Contains(e.Error(), "does not reset") || e.Peer != tc.chain[0] {
					t.Fatalf("err = %v, want depth exceeded", err)
				}
			case tc.loop != "":
				var le *LoopError
				if !errors.As(err, &le) || !errors.Is(err, ErrLoop) || le.Peer != tc.loop || le.Index != tc.loopAt {
					t.Fatalf("err = %v, want loop at %s[%d]", err, tc.loop, tc.loopAt)
				}
				if errors.Is(err, ErrExceeded) {
					t.Fatal("a loop is not a budget refusal")
				}
			case tc.bad:
				if !errors.Is(err, ErrBadChain) {
					t.Fatalf("err = %v, want ErrBadChain", err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			}
		})
	}
	l := newLimiter(t, Config{MaxDepth: 2})
	if err := l.CheckChain([]string{a, b, c}, self); !errors.Is(err, ErrExceeded) {
		t.Fatalf("Limiter.CheckChain ignored MaxDepth: %v", err)
	}
	if err := newLimiter(t, Config{}).CheckChain([]string{a, b, c, peerID(t, 44)}, self); err != nil {
		t.Fatalf("default depth 4 refused 4: %v", err)
	}
}
