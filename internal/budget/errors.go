package budget

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Names of the budgets, as in Exceeded.Budget.
const (
	BudgetRate        = "rate"
	BudgetConcurrency = "concurrency"
	BudgetBytesIn     = "bytes_in"
	BudgetBytesOut    = "bytes_out"
	BudgetCost        = "cost"
	BudgetBreaker     = "breaker"
	BudgetDepth       = "depth"
)

// Sentinels for errors.Is. Every *Exceeded matches ErrExceeded; one with Budget
// "breaker" also matches ErrBreakerOpen.
var (
	ErrExceeded    = errors.New("budget exceeded")
	ErrBreakerOpen = errors.New("budget: circuit breaker open")
	ErrLoop        = errors.New("budget: delegation loop")
	ErrBadChain    = errors.New("budget: malformed delegation chain")
)

// Exceeded is the refusal for every budget: it names the budget, the limit and when
// it resets. Its message is safe to send to the peer it concerns.
type Exceeded struct {
	Budget     string        // one of the Budget* names
	Limit      string        // the limit that was hit, for example "10/s burst 20"
	ResetIn    time.Duration // until the call could pass; 0 for "concurrency" (when a running call ends) and "depth" (never)
	Peer       string
	Capability string // the capability called; "" for breaker and depth
	Dir        Dir    // Both for breaker and depth
	PeerWide   bool   // the limit is the peer's, not the capability's
}

func (e *Exceeded) Error() string {
	var b strings.Builder
	b.WriteString("budget: ")
	b.WriteString(e.Budget)
	b.WriteString(" limit ")
	b.WriteString(e.Limit)
	b.WriteString(" exceeded by peer ")
	b.WriteString(e.Peer)
	if e.Capability != "" {
		b.WriteString(" on capability ")
		b.WriteString(e.Capability)
	}
	switch {
	case e.Dir == In && e.PeerWide:
		b.WriteString(" (inbound, peer-wide)")
	case e.Dir == In:
		b.WriteString(" (inbound, this capability)")
	case e.Dir == Out && e.PeerWide:
		b.WriteString(" (outbound, peer-wide)")
	case e.Dir == Out:
		b.WriteString(" (outbound, this capability)")
	}
	switch {
	case e.ResetIn > 0:
		fmt.Fprintf(&b, "; resets in %v", e.ResetIn.Round(time.Millisecond))
	case e.Budget == BudgetConcurrency:
		b.WriteString("; resets when a running call ends")
	case e.Budget == BudgetDepth:
		b.WriteString("; does not reset")
	default:
		b.WriteString("; resets now")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrExceeded) true for every *Exceeded, and
// errors.Is(err, ErrBreakerOpen) for an open breaker.
func (e *Exceeded) Is(target error) bool {
	return target == ErrExceeded || (target == ErrBreakerOpen && e.Budget == BudgetBreaker)
}

// LoopError refuses a call whose delegation chain returns to a peer already on it.
type LoopError struct {
	Peer  string // the peer that appears twice (or is this node)
	Index int    // its position on the chain: the second occurrence, or where this node appears
}

func (e *LoopError) Error() string {
	return fmt.Sprintf("budget: delegation loop: peer %s is already on the chain (position %d)", e.Peer, e.Index)
}

func (e *LoopError) Is(target error) bool { return target == ErrLoop }

// CheckChain checks a delegation chain before serving a call: chain lists the peers
// the call came through, the peer that sent it to this node first and the
// originator last; len(chain) is the call's depth. It returns an *Exceeded with
// Budget "depth" when the chain is longer than maxDepth (a maxDepth below 1 counts
// as 1), and a *LoopError when self or any peer appears on it twice. Verifying the
// chain's signatures is the wire layer's job; this checks only its shape.
func CheckChain(chain []string, self string, maxDepth int) error {
	maxDepth = max(maxDepth, 1)
	if len(chain) > maxDepth {
		return &Exceeded{Budget: BudgetDepth, Limit: fmt.Sprintf("max depth %d (chain of %d)", maxDepth, len(chain)), Peer: chain[0]}
	}
	for i, p := range chain {
		if p == "" {
			return fmt.Errorf("%w: empty peer at position %d", ErrBadChain, i)
		}
		if p == self {
			return &LoopError{Peer: p, Index: i}
		}
		for _, q := range chain[:i] {
			if q == p {
				return &LoopError{Peer: p, Index: i}
			}
		}
	}
	return nil
}

// Over the wire a refusal's reason is a token of [a-z0-9._-] (a peer's text is
// never shown as is), so "rate limit 2/s burst 3 exceeded; resets in 479ms"
// arrives as "rate_limit_2_s_burst_3_exceeded_resets_in_479ms".
var (
	reasonTokenRE = regexp.MustCompile(`^(rate|concurrency|bytes_in|bytes_out|cost|breaker|depth)_limit_(.+?)_exceeded(?:_resets_in_([0-9a-z.]+))?$`)
	rateTokenRE   = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)_([0-9a-z.]+)_burst_([0-9]+)$`)
	durationRE    = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)$`)
)

// ReasonSentence turns the wire token of a budget refusal back into a sentence
// for people, as in "rate limit 2/s (burst 3) exceeded; resets in 479 ms". A
// token of another shape has its underscores turned into spaces.
func ReasonSentence(token string) string {
	m := reasonTokenRE.FindStringSubmatch(token)
	if m == nil {
		return strings.ReplaceAll(token, "_", " ")
	}
	limit := strings.ReplaceAll(m[2], "_", " ")
	if r := rateTokenRE.FindStringSubmatch(m[2]); m[1] == BudgetRate && r != nil {
		limit = r[1] + "/" + r[2] + " (burst " + r[3] + ")"
	}
	s := strings.ReplaceAll(m[1], "_", " ") + " limit " + limit + " exceeded"
	switch reset := m[3]; {
	case reset == "" || reset == "0s":
		switch m[1] {
		case BudgetConcurrency:
			s += "; resets when a running call ends"
		case BudgetDepth:
			s += "; does not reset"
		}
	default:
		if d := durationRE.FindStringSubmatch(reset); d != nil {
			reset = d[1] + " " + d[2]
		}
		s += "; resets in " + reset
	}
	return s
}
