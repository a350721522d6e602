// Package fsm is the deterministic state machine that treaty's consensus
// groups replicate, shared by the Raft and the BFT engine.
//
// It guarantees that replicas applying the same entries in the same order end
// in byte-identical states (equal Digest): apply reads no clock, draws no
// randomness and never depends on map order. Time comes only from agreed
// entries. Every request is signed by the member that made it and carries a
// per-member sequence number, so a leader cannot forge another member's
// request and a replayed request is never applied twice. It does no I/O; the
// engines own the logs, the network and the timers, and serialize calls to a
// Machine (a Machine is not safe for concurrent use).
package fsm

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Limits of a group definition.
const (
	MaxNameLen = 64  // bytes of a group name
	MaxMembers = 128 // members of one group
)

// Mode is a group's fault model.
type Mode string

const (
	// ModeRaft tolerates crashed members, not lying ones (inside one organisation).
	ModeRaft Mode = "raft"
	// ModeBFT tolerates f lying members out of n ≥ 3f+1 (across organisations).
	ModeBFT Mode = "bft"
)

func (m Mode) code() uint8 {
	switch m {
	case ModeRaft:
		return 1
	case ModeBFT:
		return 2
	}
	return 0
}

func modeFromCode(c uint8) (Mode, bool) {
	switch c {
	case 1:
		return ModeRaft, true
	case 2:
		return ModeBFT, true
	}
	return "", false
}

// ID names one epoch of a group: the SHA-256 of the group's canonical
// encoding. Two members agree on a group exactly when they compute the same ID.
type ID [32]byte

// String is the lowercase hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler (hex).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (64 hex digits).
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(id) {
		return fmt.Errorf("fsm: group ID is %d hex digits, want %d", len(b), 2*len(id))
	}
	if _, err := hex.Decode(id[:], b); err != nil {
		return fmt.Errorf("fsm: group ID: %w", err)
	}
	return nil
}

// Group is one epoch of a group's definition. Members are kept sorted by key
// bytes, so the definition has one canonical form whatever order they were
// listed in. Epoch starts at 0 and grows by one with every membership change
// the group applies, and the ID changes with it: a request signed for an
// earlier epoch no longer matches and is refused.
//
// Nonce, when set, is a random value the group's creator chose: it is part
// of the ID, so a group created again with the same name, mode and members
// but a new nonce has another ID, and no request signed for the earlier one
// is valid in it. A zero Nonce (a group created without one) keeps the
// encoding, and so the ID, that groups had before nonces existed.
type Group struct {
	Name    string
	Mode    Mode
	Epoch   uint64
	Members []identity.PublicKey
	Nonce   Nonce
}

// Nonce is a group's creation nonce (see Group).
type Nonce [16]byte

// NewNonce draws a random nonce.
func NewNonce() (Nonce, error) {
	var n Nonce
	if _, err := rand.Read(n[:]); err != nil {
		return Nonce{}, fmt.Errorf("fsm: nonce: %w", err)
	}
	return n, nil
}

// ParseNonce reads the hex form String gives ("" is the zero nonce).
func ParseNonce(s string) (Nonce, error) {
	var n Nonce
	if s == "" {
		return n, nil
	}
	if len(s) != 2*len(n) {
		return Nonce{}, fmt.Errorf("fsm: group nonce is %d hex digits, want %d", len(s), 2*len(n))
	}
	if _, err := hex.Decode(n[:], []byte(s)); err != nil {
		return Nonce{}, fmt.Errorf("fsm: group nonce: %w", err)
	}
	if n.IsZero() {
		return Nonce{}, errors.New("fsm: group nonce: all zero; omit it instead")
	}
	return n, nil
}

// IsZero reports whether no nonce is set.
func (n Nonce) IsZero() bool { return n == Nonce{} }

// String is the lowercase hex form; "" for the zero nonce.
func (n Nonce) String() string {
	if n.IsZero() {
		return ""
	}
	return hex.EncodeToString(n[:])
}

// NewGroup validates a definition and returns it with members sorted.
//
// A BFT group of n members tolerates f = (n-1)/3 lying members, so n = 1..3
// gives f = 0: such a group orders requests and certifies them with member
// signatures, but tolerates no lying member and no crashed one beyond what
// its quorum allows. It is accepted (three organisations are a real case);
// callers show F() so the operator sees it.
func NewGroup(name string, mode Mode, epoch uint64, members []identity.PublicKey) (Group, error) {
	g := Group{Name: name, Mode: mode, Epoch: epoch, Members: slices.Clone(members)}
	slices.SortFunc(g.Members, comparePub)
	if err := g.Validate(); err != nil {
		return Group{}, err
	}
	return g, nil
}

func comparePub(a, b identity.PublicKey) int { return bytes.Compare(a.Bytes(), b.Bytes()) }

// Validate checks the name, the mode and the members (non-empty, sorted,
// distinct, no zero key, at most MaxMembers).
func (g Group) Validate() error {
	if err := validName(g.Name); err != nil {
		return err
	}
	if g.Mode.code() == 0 {
		return fmt.Errorf("fsm: group mode %q: want %q or %q", g.Mode, ModeRaft, ModeBFT)
	}
	if len(g.Members) == 0 {
		return errors.New("fsm: group members: none; list every member, self included")
	}
	if len(g.Members) > MaxMembers {
		return fmt.Errorf("fsm: group members: %d, limit %d", len(g.Members), MaxMembers)
	}
	for i, m := range g.Members {
		if m.IsZero() {
			return fmt.Errorf("fsm: group member %d: zero key", i)
		}
		if i > 0 {
			switch c := comparePub(g.Members[i-1], m); {
			case c == 0:
				return fmt.Errorf("fsm: group member %s listed twice", m)
			case c > 0:
				return errors.New("fsm: group members: not in canonical (sorted) order")
			}
		}
	}
	return nil
}

func validName(s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("fsm: group name: %d bytes, want 1..%d", len(s), MaxNameLen)
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("fsm: group name %q: only a-z 0-9 - _ . are allowed", s)
		}
	}
	return nil
}

// N is the number of members.
func (g Group) N() int { return len(g.Members) }

// F is the number of lying members a BFT group tolerates, (n-1)/3; 0 for Raft,
// which tolerates crashes, not lies.
func (g Group) F() int {
	if g.Mode != ModeBFT {
		return 0
	}
	return (g.N() - 1) / 3
}

// Quorum is the number of members that must agree for the engine to commit
// and for a membership change to pass: a majority, n/2+1, for Raft; for BFT
// ceil((n+f+1)/2), which is 2f+1 when n = 3f+1 (any two quorums share an
// honest member), the rule SmartBFT uses. A BFT certificate needs Quorum
// distinct member signatures.
func (g Group) Quorum() int {
	n := g.N()
	if g.Mode == ModeBFT {
		return (n + g.F() + 2) / 2
	}
	return n/2 + 1
}

// IsMember reports whether k is a member of this epoch.
func (g Group) IsMember(k identity.PublicKey) bool {
	_, ok := slices.BinarySearchFunc(g.Members, k, comparePub)
	return ok
}

// groupMagic separates a group encoding from every other signed or hashed
// encoding in treaty; groupMagicNonce is that of a group with a nonce.
const (
	groupMagic      = "treaty/consensus/group/v1\x00"
	groupMagicNonce = "treaty/consensus/group/v2\x00"
)

// Canonical is the encoding the ID hashes: magic, name, mode, epoch, the
// nonce if there is one, member count and the sorted member keys.
func (g Group) Canonical() []byte {
	var w writer
	if g.Nonce.IsZero() {
		w.raw([]byte(groupMagic))
	} else {
		w.raw([]byte(groupMagicNonce))
	}
	w.str(g.Name)
	w.u8(g.Mode.code())
	w.u64(g.Epoch)
	if !g.Nonce.IsZero() {
		w.raw(g.Nonce[:])
	}
	w.u32(uint32(len(g.Members)))
	for _, m := range g.Members {
		w.raw(m.Bytes())
	}
	return w.b
}

// ID is the digest of Canonical.
func (g Group) ID() ID { return sha256.Sum256(g.Canonical()) }

func (g Group) encode(w *writer) { w.bytes(g.Canonical()) }

func decodeGroup(r *reader) Group {
	b := r.bytes("group", len(groupMagicNonce)+4+MaxNameLen+1+8+len(Nonce{})+4+32*MaxMembers)
	if r.err != nil {
		return Group{}
	}
	g, err := ParseGroup(b)
	if err != nil {
		r.fail(err)
	}
	return g
}

// ParseGroup decodes and validates a Canonical encoding.
func ParseGroup(b []byte) (Group, error) {
	r := reader{b: b}
	var withNonce bool
	switch string(r.take(len(groupMagic))) {
	case groupMagic:
	case groupMagicNonce:
		withNonce = true
	default:
		return Group{}, errors.New("fsm: group encoding: bad magic")
	}
	var g Group
	g.Name = r.text("group name", MaxNameLen)
	mode, ok := modeFromCode(r.u8())
	if !ok && r.err == nil {
		r.fail(errors.New("unknown mode"))
	}
	g.Mode = mode
	g.Epoch = r.u64()
	if withNonce {
		copy(g.Nonce[:], r.take(len(g.Nonce)))
		if r.err == nil && g.Nonce.IsZero() {
			r.fail(errors.New("zero nonce in a v2 encoding"))
		}
	}
	n := r.u32()
	if r.err == nil && n > MaxMembers {
		r.fail(fmt.Errorf("%d members, limit %d", n, MaxMembers))
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		k, err := identity.PublicKeyFromEd25519(r.take(32))
		if r.err == nil && err != nil {
			r.fail(err)
		}
		g.Members = append(g.Members, k)
	}
	if err := r.done(); err != nil {
		return Group{}, fmt.Errorf("fsm: group encoding: %w", err)
	}
	if err := g.Validate(); err != nil {
		return Group{}, err
	}
	return g, nil
}

// MismatchError says why two members' definitions of a group differ, so that
// the operator can fix the one that is wrong. Field is "name", "mode", "epoch",
// "nonce" or "member"; for "member", Member is the key only one side lists and
// LocalHas says which side.
type MismatchError struct {
	Field    string
	Local    string
	Remote   string
	Member   identity.PublicKey
	LocalHas bool
}

func (e *MismatchError) Error() string {
	if e.Field == "member" {
		side, other := "local", "remote"
		if !e.LocalHas {
			side, other = other, side
		}
		return fmt.Sprintf("fsm: group definitions differ: member %s is in the %s definition, not the %s one", e.Member, side, other)
	}
	return fmt.Sprintf("fsm: group definitions differ: %s is %q here, %q at the peer", e.Field, e.Local, e.Remote)
}

// Compare returns nil when local and remote define the same group epoch, and a
// *MismatchError naming the first difference otherwise (name, mode, epoch,
// nonce, then the first member in key order that only one side lists).
func Compare(local, remote Group) error {
	switch {
	case local.Name != remote.Name:
		return &MismatchError{Field: "name", Local: local.Name, Remote: remote.Name}
	case local.Mode != remote.Mode:
		return &MismatchError{Field: "mode", Local: string(local.Mode), Remote: string(remote.Mode)}
	case local.Epoch != remote.Epoch:
		return &MismatchError{Field: "epoch", Local: fmt.Sprint(local.Epoch), Remote: fmt.Sprint(remote.Epoch)}
	case local.Nonce != remote.Nonce:
		return &MismatchError{Field: "nonce", Local: local.Nonce.String(), Remote: remote.Nonce.String()}
	}
	for _, m := range local.Members {
		if !remote.IsMember(m) {
			return &MismatchError{Field: "member", Member: m, LocalHas: true}
		}
	}
	for _, m := range remote.Members {
		if !local.IsMember(m) {
			return &MismatchError{Field: "member", Member: m}
		}
	}
	return nil
}

// String is a one-line summary for logs.
func (g Group) String() string {
	keys := make([]string, len(g.Members))
	for i, m := range g.Members {
		keys[i] = m.Short()
	}
	nonce := ""
	if !g.Nonce.IsZero() {
		nonce = " nonce " + g.Nonce.String()
	}
	return fmt.Sprintf("%s/%s epoch %d%s [%s]", g.Name, g.Mode, g.Epoch, nonce, strings.Join(keys, ","))
}
