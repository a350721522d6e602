package trust

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

// ClearBound is the CLI's spelling of "remove this bound" for --floor and
// --ceiling; Override accepts it and "" alike, and sends "" on the wire.
const ClearBound = "none"

// ErrBadOverride is wrapped by Override.Validate.
var ErrBadOverride = errors.New("trust: bad override")

// Override is an operator's change to one peer's trust: the body of the local
// API's POST /v1/trust/set, as JSON, for example
//
//	{"peer":"did:key:z6Mk…","floor":"trusted","ceiling":"","lift":true}
//
// A nil Floor or Ceiling (omitted in JSON) leaves that bound as it is; "" (or
// ClearBound, "none") removes it; otherwise it is a level name as ParseLevel
// accepts, in any case.
type Override struct {
	Peer    string  `json:"peer"` // did:key
	Floor   *string `json:"floor,omitempty"`
	Ceiling *string `json:"ceiling,omitempty"`
	Lift    bool    `json:"lift"` // end a quarantine
}

// parsedOverride is a validated Override: a Set flag reports whether the bound
// changes, and a nil level with it set means clear.
type parsedOverride struct {
	floorSet, ceilingSet bool
	floor, ceiling       *Level
}

func parseBound(field string, s *string) (bool, *Level, error) {
	if s == nil {
		return false, nil, nil
	}
	if *s == "" || strings.EqualFold(*s, ClearBound) {
		return true, nil, nil
	}
	l, err := ParseLevel(*s)
	if err != nil {
		return false, nil, fmt.Errorf("%w: %s %q: want %s, or %s to clear it", ErrBadOverride, field, *s, LevelNames(), ClearBound)
	}
	return true, &l, nil
}

// LevelNames lists the trust levels, lowest first, as "quarantined, untrusted, …".
func LevelNames() string {
	var names []string
	for l := LevelQuarantined; l.Valid(); l++ {
		names = append(names, l.String())
	}
	return strings.Join(names, ", ")
}

func (o Override) parse() (parsedOverride, error) {
	var p parsedOverride
	if _, err := identity.ParseDID(o.Peer); err != nil {
		return p, fmt.Errorf("%w: peer: %w", ErrBadOverride, err)
	}
	var err error
	if p.floorSet, p.floor, err = parseBound("floor", o.Floor); err != nil {
		return p, err
	}
	if p.ceilingSet, p.ceiling, err = parseBound("ceiling", o.Ceiling); err != nil {
		return p, err
	}
	if !p.floorSet && !p.ceilingSet && !o.Lift {
		return p, fmt.Errorf("%w: nothing to change (set floor, ceiling or lift)", ErrBadOverride)
	}
	if p.floor != nil && p.ceiling != nil && *p.floor > *p.ceiling {
		return p, fmt.Errorf("%w: floor %v is above ceiling %v", ErrBadOverride, *p.floor, *p.ceiling)
	}
	return p, nil
}

// Validate checks the peer is a did:key, the levels parse, something changes, and
// a floor and ceiling given together are in order. It does not know the bounds
// already set; Apply refuses a floor above an existing ceiling
// (ErrFloorAboveCeiling).
func (o Override) Validate() error {
	_, err := o.parse()
	return err
}

// Apply makes the change on b: it lifts the quarantine first, then sets the bounds
// in the order that never puts the floor above the ceiling in between (raising
// both above an old ceiling sets the ceiling first). now is used only to read the
// bounds already set. Each step is written by b before the next, so an error
// leaves the earlier steps done.
func (o Override) Apply(b *Book, now time.Time) error {
	p, err := o.parse()
	if err != nil {
		return err
	}
	if o.Lift {
		if err := b.Lift(o.Peer); err != nil {
			return err
		}
	}
	setFloor := func() error {
		if !p.floorSet {
			return nil
		}
		return b.SetFloor(o.Peer, p.floor)
	}
	setCeiling := func() error {
		if !p.ceilingSet {
			return nil
		}
		return b.SetCeiling(o.Peer, p.ceiling)
	}
	first, second := setFloor, setCeiling
	if old := b.Get(o.Peer, now).Ceiling; p.floor != nil && old != nil && *p.floor > *old {
		first, second = setCeiling, setFloor
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}
