package home

// The operator's limits on peers: budget rules in treaty.yaml (`treaty limit`) and
// trust bounds in the trust book (`treaty trust set`).

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/budget"
	"github.com/treaty-dev/treaty/internal/config"
	"github.com/treaty-dev/treaty/internal/homedir"
	"github.com/treaty-dev/treaty/internal/identity"
	"github.com/treaty-dev/treaty/internal/trust"
)

// UnknownPeerError is returned when a peer reference is neither a nickname nor a
// did:key in the peer book.
type UnknownPeerError struct{ Ref string }

func (e *UnknownPeerError) Error() string {
	return fmt.Sprintf("home: no peer %q in the peer book (see 'treaty peer ls')", e.Ref)
}

// Is makes an unknown peer an invalid argument (errors.Is(err, ErrInvalid)).
func (e *UnknownPeerError) Is(target error) bool { return target == ErrInvalid }

// ErrBadLimit is wrapped by SetLimit and RemoveLimit when the rule asked for is
// invalid: a capability name, a direction, or a value out of range. The CLI maps
// it to a usage error.
var ErrBadLimit = errors.New("home: bad limit")

// LimitChange is what `treaty limit set` changes in one budget rule; nil fields keep
// the rule's current value (zero for a new rule). A zero value means unlimited, as
// in budget.Limit. Setting Rate to zero also clears Burst, Cost to zero clears
// CostWindow (and FailedCost), and both byte budgets to zero clears Window, unless the change sets
// those too, so "--rate 0" alone turns a rate limit off instead of failing
// validation.
type LimitChange struct {
	Rate        *float64       // calls per second
	Burst       *int           // bucket size; needs a Rate
	Concurrency *int           // calls in flight
	BytesIn     *int64         // bytes per Window
	BytesOut    *int64         // bytes per Window
	Window      *time.Duration // for BytesIn and BytesOut; zero: budget.DefaultWindow
	Cost        *float64       // cost units per CostWindow
	CostWindow  *time.Duration // zero: budget.DefaultCostWindow
}

// IsZero reports whether c changes nothing.
func (c LimitChange) IsZero() bool { return c == LimitChange{} }

func (c LimitChange) apply(l budget.Limit) budget.Limit {
	if c.Rate != nil {
		l.Rate = *c.Rate
		if l.Rate == 0 && c.Burst == nil {
			l.Burst = 0
		}
	}
	if c.Burst != nil {
		l.Burst = *c.Burst
	}
	if c.Concurrency != nil {
		l.Concurrency = *c.Concurrency
	}
	if c.BytesIn != nil {
		l.BytesIn = *c.BytesIn
	}
	if c.BytesOut != nil {
		l.BytesOut = *c.BytesOut
	}
	if l.BytesIn == 0 && l.BytesOut == 0 && c.Window == nil {
		l.Window = 0
	}
	if c.Window != nil {
		l.Window = *c.Window
	}
	if c.Cost != nil {
		l.Cost = *c.Cost
		if l.Cost == 0 && c.CostWindow == nil {
			l.CostWindow = 0
		}
		if l.Cost == 0 {
			l.FailedCost = 0 // it needs a cost budget to charge
		}
	}
	if c.CostWindow != nil {
		l.CostWindow = *c.CostWindow
	}
	return l
}

// limitPeer resolves ref to the form budget rules use: "*", or a did:key from the
// peer book. With stale, a did:key outside the peer book is accepted too, so a rule
// left behind by a removed peer can still be removed.
func limitPeer(c *config.Config, ref string, stale bool) (string, error) {
	if ref == "*" {
		return "*", nil
	}
	if p, ok := c.Peer(ref); ok {
		return p.ID, nil
	}
	if stale && strings.HasPrefix(ref, "did:key:") {
		if _, err := identity.ParseDID(ref); err == nil {
			return ref, nil
		}
	}
	return "", &UnknownPeerError{Ref: ref}
}

func checkRuleKey(capability string, dir budget.Dir) error {
	if capability != "" && !config.ValidBudgetCapability(capability) {
		return fmt.Errorf("%w: capability %q must be lower-case letters, digits, '.', '_' or '-' (at most 64, not starting with \"treaty.\"), or group:GROUP", ErrBadLimit, capability)
	}
	if dir > budget.Out {
		return fmt.Errorf("%w: direction %v is not in, out or both", ErrBadLimit, dir)
	}
	return nil
}

// SetLimit changes the budget rule for (peer, capability, dir) in treaty.yaml,
// creating it when missing, and returns the rule as written. peerRef is a nickname
// or did:key from the peer book, or "*" for every peer separately; capability ""
// is the peer-wide rule. A running node applies the change when it reloads the
// file.
func SetLimit(dir, peerRef, capability string, d budget.Dir, change LimitChange) (budget.Rule, error) {
	if err := checkRuleKey(capability, d); err != nil {
		return budget.Rule{}, err
	}
	if change.IsZero() {
		return budget.Rule{}, fmt.Errorf("%w: nothing to set", ErrBadLimit)
	}
	var out budget.Rule
	err := edit(dir, func(c *config.Config) error {
		peer, err := limitPeer(c, peerRef, false)
		if err != nil {
			return err
		}
		r, _ := c.Budget.Rule(peer, capability, d)
		r.Peer, r.Capability, r.Dir = peer, capability, d
		r.Limit = change.apply(r.Limit)
		if err := r.Limit.Validate("rule"); err != nil {
			return fmt.Errorf("%w: %w", ErrBadLimit, err)
		}
		c.Budget = c.Budget.WithRule(r)
		out = r
		return nil
	})
	if err != nil {
		return budget.Rule{}, err
	}
	return out, nil
}

// RemoveLimit removes the budget rule for (peer, capability, dir) and reports
// whether there was one. peerRef may also be a did:key no longer in the peer book.
func RemoveLimit(dir, peerRef, capability string, d budget.Dir) (bool, error) {
	if err := checkRuleKey(capability, d); err != nil {
		return false, err
	}
	removed := false
	err := edit(dir, func(c *config.Config) error {
		peer, err := limitPeer(c, peerRef, true)
		if err != nil {
			return err
		}
		if _, ok := c.Budget.Rule(peer, capability, d); !ok {
			return nil
		}
		c.Budget = c.Budget.WithoutRule(peer, capability, d)
		removed = true
		return nil
	})
	return removed, err
}

// LimitEntry is one configured budget rule with the peer's nickname.
type LimitEntry struct {
	Name string // the peer's nickname; "" for "*" or a did:key outside the peer book
	budget.Rule
}

// Limits returns the configured default limit and the rules, sorted by peer,
// capability and direction.
func Limits(dir string) (budget.Limit, []LimitEntry, error) {
	c, err := config.Load(dir)
	if err != nil {
		return budget.Limit{}, nil, err
	}
	out := make([]LimitEntry, 0, len(c.Budget.Rules))
	for _, r := range c.Budget.Rules {
		e := LimitEntry{Rule: r}
		if p, ok := c.Peer(r.Peer); ok && p.ID == r.Peer {
			e.Name = p.Name
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b LimitEntry) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Capability, b.Capability), cmp.Compare(a.Dir, b.Dir))
	})
	return c.Budget.Default, out, nil
}

// TrustOverride is an operator's change to one peer's trust (trust.Override):
// the one type the CLI, the local API and the node use.
type TrustOverride = trust.Override

// ClearBound is the CLI's spelling of "remove this bound" (trust.ClearBound).
const ClearBound = trust.ClearBound

// ErrBadOverride is wrapped by TrustOverride.Validate (trust.ErrBadOverride).
var ErrBadOverride = trust.ErrBadOverride

// LevelNames lists the trust levels, lowest first, as "quarantined, untrusted, …".
func LevelNames() string { return trust.LevelNames() }

// SetTrust applies o to the home's trust book directly, for when no node is
// running. A running node holds the book: SetTrust then fails with an error
// wrapping trust.ErrLocked, and the change must go through the node's local API.
func SetTrust(dir string, o TrustOverride, now time.Time) error {
	if err := o.Validate(); err != nil {
		return err
	}
	c, err := config.Load(dir)
	if err != nil {
		return err
	}
	b, err := trust.Open(c.Trust, filepath.Join(dir, homedir.TrustFile))
	if err != nil {
		return err
	}
	err = o.Apply(b, now)
	return errors.Join(err, b.Close())
}
