package fsm

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Entry is what an engine orders: a signed request (empty for a tick that only
// advances time) and the time its proposer (the Raft leader, the BFT leader of
// the view) stamped on it, in unix nanoseconds. The engine checks the stamp
// against its own clock before agreeing; apply only takes the maximum.
//
// LeaderVerified says the leader that appended the entry verified the
// request's signature first (a Raft engine records it in its log entry, so
// every replica sees the same flag). Apply honours it only on a Machine built
// with SignaturesVerifiedByLeader. It is not part of Digest.
type Entry struct {
	Time           int64
	Request        []byte
	LeaderVerified bool
}

const entryMagic = "treaty/consensus/entry/v1\x00"

// TimeSkewError is CheckProposedTime's refusal.
type TimeSkewError struct{ Proposed, Local, MaxSkew int64 }

func (e *TimeSkewError) Error() string {
	return fmt.Sprintf("fsm: proposed entry time %d is more than %d ns ahead of local time %d", e.Proposed, e.MaxSkew, e.Local)
}

// CheckProposedTime is the check a replica makes on a proposal's time before
// agreeing to it (the engine calls it with its own clock; apply never does).
// A stamp ahead of local time by more than maxSkew is refused: it would let a
// lying leader expire motions early, and the agreed clock never moves back. A
// stamp behind is harmless, since the agreed clock is a maximum.
func CheckProposedTime(proposed, local, maxSkew int64) error {
	// The unsigned difference cannot overflow when proposed > local.
	if proposed > local && uint64(proposed)-uint64(local) > uint64(max(maxSkew, 0)) {
		return &TimeSkewError{Proposed: proposed, Local: local, MaxSkew: maxSkew}
	}
	return nil
}

// Digest binds the entry's time and request bytes.
func (e Entry) Digest() [32]byte {
	var w writer
	w.raw([]byte(entryMagic))
	w.i64(e.Time)
	w.bytes(e.Request)
	return sha256.Sum256(w.b)
}

// Code says why an entry's request was refused. A refused request changes
// nothing but what the entry's index and time do anyway (the clock, motions
// whose deadline it passes) and, for an authenticated request refused on its
// merits, the proposer's sequence number (the request was really made and is
// spent). An index refusal changes nothing at all.
type Code string

const (
	CodeOK           Code = ""
	CodeIndex        Code = "index-not-increasing" // the engine repeated or reordered an index
	CodeMalformed    Code = "malformed"            // request bytes do not decode
	CodeWrongGroup   Code = "wrong-group"          // signed for another group or epoch
	CodeNotMember    Code = "not-member"           // proposer is not a member of this epoch
	CodeBadSignature Code = "bad-signature"        // signature is not the proposer's
	CodeReplay       Code = "replay"               // seq not above the proposer's last applied seq
	CodeCASMismatch  Code = "cas-mismatch"         // if-version did not match; Version holds the current one
	CodeNotFound     Code = "not-found"            // delete of an absent key, vote on an unknown motion
	CodeInvalid      Code = "invalid"              // quorum out of range, deadline passed, bad member change
	CodeClosed       Code = "motion-closed"        // vote on a decided motion
	CodeAlreadyVoted Code = "already-voted"        // votes are final; a second vote is refused
	CodeShare        Code = "member-share"         // the write would take the proposer past its share of the store
)

// Outcome is a motion's state.
type Outcome string

const (
	OutcomeOpen   Outcome = "open"
	OutcomePassed Outcome = "passed"
	OutcomeFailed Outcome = "failed"
)

// Closure reports a motion decided while applying an entry.
type Closure struct {
	Motion  string  `json:"motion"`
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason"`
}

// Result is what applying one entry did. Every replica computes the same one.
type Result struct {
	Index   uint64
	Time    int64 // the agreed clock after this entry
	Code    Code
	Reason  string
	Version uint64  // put/delete: the key's version after (or, on cas-mismatch, its current one; 0 = absent)
	Motion  string  // motion-open, member-add/remove, vote: the motion's name
	Outcome Outcome // of Motion after this entry
	Closed  []Closure
}

// OK reports whether the request was applied.
func (r Result) OK() bool { return r.Code == CodeOK }

// RejectedError is Result's refusal as an error, for callers that branch with errors.As.
type RejectedError struct {
	Code   Code
	Reason string
	Index  uint64
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("fsm: entry %d refused (%s): %s", e.Index, e.Code, e.Reason)
}

// Err is nil when the request was applied, a *RejectedError otherwise.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	return &RejectedError{Code: r.Code, Reason: r.Reason, Index: r.Index}
}

const resultMagic = "treaty/consensus/result/v1\x00"

func (r Result) encode(w *writer) {
	w.u64(r.Index)
	w.i64(r.Time)
	w.str(string(r.Code))
	w.str(r.Reason)
	w.u64(r.Version)
	w.str(r.Motion)
	w.str(string(r.Outcome))
	w.u32(uint32(len(r.Closed)))
	for _, c := range r.Closed {
		w.str(c.Motion)
		w.str(string(c.Outcome))
		w.str(c.Reason)
	}
}

// Digest is the SHA-256 of the result's canonical encoding.
func (r Result) Digest() [32]byte {
	var w writer
	w.raw([]byte(resultMagic))
	r.encode(&w)
	return sha256.Sum256(w.b)
}

// Item is one key's value and version. Versions start at 1 when a key is
// created and grow by one per put; a deleted key is absent (version 0), and a
// key created again starts at 1.
type Item struct {
	Value   []byte
	Version uint64
	Index   uint64 // entry that last wrote it
	// Owner is the member whose write set it last: its key and value count
	// in that member's share of the store. Zero for a key restored from a
	// snapshot of a version that did not record owners: it counts in no
	// member's share.
	Owner identity.PublicKey
}

// usage is what one member owns in the store.
type usage struct{ keys, bytes int }

// MotionKind says what passing a motion does.
type MotionKind uint8

const (
	MotionPlain  MotionKind = 0
	MotionAdd    MotionKind = 1
	MotionRemove MotionKind = 2
)

// Motion is a question put to the group, named by its opener (membership
// motions are named "#ID"). Its ID is the index of the entry that opened it
// and orders motions; a name is unique among the motions the state keeps. Votes are final: a member's second vote is refused, so a
// tally never moves backwards and a "passed" can be read off the votes alone.
type Motion struct {
	ID       uint64
	Name     string
	Kind     MotionKind
	Subject  identity.PublicKey // member to add or remove
	Proposer identity.PublicKey
	Quorum   uint32
	Deadline int64
	Text     string
	Yes      []identity.PublicKey // sorted
	No       []identity.PublicKey // sorted
	Outcome  Outcome
	Reason   string
	Decided  uint64 // index at which it was decided; 0 while open
}

func (m *Motion) voted(k identity.PublicKey) bool {
	_, y := slices.BinarySearchFunc(m.Yes, k, comparePub)
	_, n := slices.BinarySearchFunc(m.No, k, comparePub)
	return y || n
}

// Machine is the replicated state. It is not safe for concurrent use.
type Machine struct {
	group     Group
	lastIndex uint64
	clock     int64
	kv        map[string]Item
	seq       map[identity.PublicKey]uint64
	motions   map[uint64]*Motion
	names     map[string]uint64 // motion name -> ID
	open      []uint64          // IDs of open motions, ascending
	decided   []uint64          // IDs of decided motions, ascending; the oldest are forgotten past MaxDecidedMotions
	bytes     int               // sum of key and value lengths in kv
	owned     map[identity.PublicKey]usage
	lim       limits
	opts      options
}

// limits are the Max constants; tests lower them to reach them quickly.
type limits struct{ keys, bytes, open, openPer, decided int }

var defaultLimits = limits{keys: MaxKeys, bytes: MaxStoreBytes, open: MaxOpenMotions, openPer: MaxOpenMotionsPerMember, decided: MaxDecidedMotions}

// Limits of the replicated state. Apply refuses what would exceed them, so
// every state a group can reach is one Restore accepts.
const (
	MaxKeys        = 1 << 16  // keys in the store
	MaxStoreBytes  = 64 << 20 // key plus value bytes in the store
	MaxOpenMotions = 1024     // motions open at once
	// MaxOpenMotionsPerMember bounds the open motions one member opened, so
	// that one member (a lying one) cannot take every slot of the group's.
	MaxOpenMotionsPerMember = 256
	MaxDecidedMotions       = 4096 // decided motions kept for show; older ones are forgotten
)

// New returns the state of a group before its first entry.
func New(g Group, opts ...Option) (*Machine, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{
		group:   cloneGroup(g),
		kv:      map[string]Item{},
		owned:   map[identity.PublicKey]usage{},
		seq:     map[identity.PublicKey]uint64{},
		motions: map[uint64]*Motion{},
		names:   map[string]uint64{},
		lim:     defaultLimits,
	}
	if err := m.setOptions(opts); err != nil {
		return nil, err
	}
	return m, nil
}

func cloneGroup(g Group) Group {
	g.Members = slices.Clone(g.Members)
	return g
}

// Group is the current epoch's definition.
func (m *Machine) Group() Group { return cloneGroup(m.group) }

// Epoch is the current epoch, without copying the group.
func (m *Machine) Epoch() uint64 { return m.group.Epoch }

// LastIndex is the index of the last applied entry (0 before the first).
func (m *Machine) LastIndex() uint64 { return m.lastIndex }

// Clock is the agreed time: the largest entry time applied so far.
func (m *Machine) Clock() int64 { return m.clock }

// LastSeq is the last applied sequence number of k (0: none).
func (m *Machine) LastSeq(k identity.PublicKey) uint64 { return m.seq[k] }

// Get returns key's item.
func (m *Machine) Get(key string) (Item, bool) {
	it, ok := m.kv[key]
	it.Value = slices.Clone(it.Value)
	return it, ok
}

// Keys returns the keys with the given prefix, sorted.
func (m *Machine) Keys(prefix string) []string {
	var out []string
	for k := range m.kv {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Motion returns a copy of the motion called name.
func (m *Machine) Motion(name string) (Motion, bool) {
	mo, ok := m.motions[m.names[name]]
	if !ok {
		return Motion{}, false
	}
	c := *mo
	c.Yes, c.No = slices.Clone(mo.Yes), slices.Clone(mo.No)
	return c, true
}

// Apply applies the entry at index. It never fails: a refused entry is a
// deterministic no-op whose Result says why, so every replica agrees on it.
// Indexes must grow (an engine may skip some, e.g. Raft's configuration
// entries); a repeated or lower index is refused and changes nothing.
func (m *Machine) Apply(index uint64, e Entry) Result {
	if index <= m.lastIndex {
		return Result{Index: index, Time: m.clock, Code: CodeIndex,
			Reason: fmt.Sprintf("index %d not above last applied %d", index, m.lastIndex)}
	}
	m.lastIndex = index
	m.clock = max(m.clock, e.Time)
	res := Result{Index: index, Time: m.clock}
	m.expire(index, &res)
	if len(e.Request) == 0 {
		return res // a tick
	}
	reject := func(c Code, format string, args ...any) Result {
		res.Code, res.Reason = c, fmt.Sprintf(format, args...)
		return res
	}
	// The signature binds the body, group ID (name and epoch) and seq
	// included; a verified signature stays valid, so the leader's check
	// before appending is as good as one here in a crash-fault group.
	q, code, reason := attribute(m.group, e.Request, !(m.opts.trustLeaderSig && e.LeaderVerified))
	if code != CodeOK {
		return reject(code, "%s", reason)
	}
	if last := m.seq[q.Proposer]; q.Seq <= last {
		return reject(CodeReplay, "seq %d of %s not above its last applied %d", q.Seq, q.Proposer, last)
	}
	m.seq[q.Proposer] = q.Seq
	switch q.Op.Kind {
	case OpPut, OpDelete:
		m.applyKV(index, q.Proposer, q.Op, &res)
	case OpMotionOpen, OpMemberAdd, OpMemberRemove:
		m.applyOpen(index, q, &res)
	case OpMotionVote:
		m.applyVote(index, q, &res)
	}
	return res
}

// Unattributed reports whether c refuses a request before it could be
// attributed to a member of the group: its bytes do not decode, it names
// another group or epoch, its proposer is not a member, or its signature is
// not the proposer's. Such a request proves nothing about its proposer.
func (c Code) Unattributed() bool {
	switch c {
	case CodeMalformed, CodeWrongGroup, CodeNotMember, CodeBadSignature:
		return true
	}
	return false
}

// attribute runs the checks that make req a request of a member of g, in
// Apply's order, and returns the refusal Apply gives when one fails (a code
// for which Unattributed holds, and its reason). Verify runs the same checks,
// so a record of such a refusal is checked against what every replica
// computed.
func attribute(g Group, req []byte, checkSig bool) (Request, Code, string) {
	q, err := DecodeRequest(req)
	switch {
	case err != nil:
		return q, CodeMalformed, err.Error()
	case q.Group != g.ID():
		return q, CodeWrongGroup, fmt.Sprintf("request is for group %s, this is %s epoch %d (%s)", q.Group, g.Name, g.Epoch, g.ID())
	case !g.IsMember(q.Proposer):
		return q, CodeNotMember, fmt.Sprintf("proposer %s is not a member", q.Proposer)
	case checkSig && !q.VerifySignature():
		return q, CodeBadSignature, fmt.Sprintf("signature is not %s's", q.Proposer)
	}
	return q, CodeOK, ""
}

// Share is what each member may own of the store: an equal share of its
// keys and bytes, MaxKeys/n and MaxStoreBytes/n for n members (at least one
// key and one byte). It follows the membership, so every replica computes it
// from the replicated definition; a member above it after the group grew
// keeps what it owns but may not grow.
func (m *Machine) Share() (keys, bytes int) {
	n := m.group.N()
	return max(1, m.lim.keys/n), max(1, m.lim.bytes/n)
}

// Owned is what member k owns of the store: the keys its writes set last,
// and their key and value bytes.
func (m *Machine) Owned(k identity.PublicKey) (keys, bytes int) {
	u := m.owned[k]
	return u.keys, u.bytes
}

// charge moves n keys and b bytes to (n, b > 0) or from (< 0) k's usage.
func (m *Machine) charge(k identity.PublicKey, n, b int) {
	if k.IsZero() {
		return
	}
	u := m.owned[k]
	u.keys, u.bytes = u.keys+n, u.bytes+b
	if u.keys == 0 && u.bytes == 0 {
		delete(m.owned, k)
		return
	}
	m.owned[k] = u
}

func (m *Machine) applyKV(index uint64, proposer identity.PublicKey, o Op, res *Result) {
	cur, exists := m.kv[o.Key]
	if o.HasIfVersion && o.IfVersion != cur.Version {
		res.Code, res.Version = CodeCASMismatch, cur.Version
		res.Reason = fmt.Sprintf("key %+q is at version %d, not %d", o.Key, cur.Version, o.IfVersion)
		return
	}
	if o.Kind == OpDelete {
		if !exists {
			res.Code, res.Reason = CodeNotFound, fmt.Sprintf("key %+q is absent", o.Key)
			return
		}
		delete(m.kv, o.Key)
		m.bytes -= len(o.Key) + len(cur.Value)
		m.charge(cur.Owner, -1, -(len(o.Key) + len(cur.Value)))
		return
	}
	grow := len(o.Value) - len(cur.Value)
	if !exists {
		grow += len(o.Key)
	}
	switch {
	case !exists && len(m.kv) >= m.lim.keys:
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("store holds %d keys, limit %d", len(m.kv), m.lim.keys)
		return
	case m.bytes+grow > m.lim.bytes:
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("store would hold %d bytes, limit %d", m.bytes+grow, m.lim.bytes)
		return
	}
	// The proposer's share: what it would own after the write. A write
	// that does not grow what it owns is never refused for its share.
	size := len(o.Key) + len(o.Value)
	addKeys, addBytes := 1, size
	if exists && cur.Owner == proposer {
		addKeys, addBytes = 0, size-len(o.Key)-len(cur.Value)
	}
	own := m.owned[proposer]
	shareKeys, shareBytes := m.Share()
	switch {
	case addKeys > 0 && own.keys+addKeys > shareKeys:
		res.Code, res.Reason = CodeShare, fmt.Sprintf("%s owns %d keys, its share is %d (%d keys / %d members)", proposer, own.keys, shareKeys, m.lim.keys, m.group.N())
		return
	case addBytes > 0 && own.bytes+addBytes > shareBytes:
		res.Code, res.Reason = CodeShare, fmt.Sprintf("%s would own %d bytes, its share is %d (%d bytes / %d members)", proposer, own.bytes+addBytes, shareBytes, m.lim.bytes, m.group.N())
		return
	}
	m.bytes += grow
	if exists {
		m.charge(cur.Owner, -1, -(len(o.Key) + len(cur.Value)))
	}
	m.charge(proposer, 1, size)
	v := cur.Version + 1
	m.kv[o.Key] = Item{Value: slices.Clone(o.Value), Version: v, Index: index, Owner: proposer}
	res.Version = v
}

func (m *Machine) applyOpen(index uint64, q Request, res *Result) {
	o := q.Op
	if len(m.open) >= m.lim.open {
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("%d motions are open, limit %d", len(m.open), m.lim.open)
		return
	}
	if n := m.openBy(q.Proposer); n >= m.lim.openPer {
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("%s has %d motions open, limit %d per member", q.Proposer, n, m.lim.openPer)
		return
	}
	mo := &Motion{ID: index, Name: o.Name, Proposer: q.Proposer, Quorum: o.Quorum, Deadline: o.Deadline, Text: o.Text, Outcome: OutcomeOpen}
	n := m.group.N()
	switch o.Kind {
	case OpMotionOpen:
		if o.Quorum < 1 || int(o.Quorum) > n {
			res.Code, res.Reason = CodeInvalid, fmt.Sprintf("quorum %d: want 1..%d (members)", o.Quorum, n)
			return
		}
	case OpMemberAdd, OpMemberRemove:
		mo.Kind, mo.Subject, mo.Name = MotionAdd, o.Member, fmt.Sprintf("#%d", index)
		if o.Kind == OpMemberRemove {
			mo.Kind = MotionRemove
		}
		if err := m.checkChange(mo); err != nil {
			res.Code, res.Reason = CodeInvalid, err.Error()
			return
		}
		mo.Quorum = uint32(m.group.Quorum())
	}
	if o.Deadline != 0 && o.Deadline <= m.clock {
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("deadline %d is not after the agreed time %d", o.Deadline, m.clock)
		return
	}
	if _, taken := m.names[mo.Name]; taken {
		res.Code, res.Reason = CodeInvalid, fmt.Sprintf("motion %q exists", mo.Name)
		return
	}
	m.motions[index] = mo
	m.names[mo.Name] = index
	m.open = append(m.open, index)
	res.Motion, res.Outcome = mo.Name, OutcomeOpen
}

// openBy counts the open motions k opened.
func (m *Machine) openBy(k identity.PublicKey) int {
	n := 0
	for _, id := range m.open {
		if m.motions[id].Proposer == k {
			n++
		}
	}
	return n
}

// checkChange says whether a membership motion could still take effect.
func (m *Machine) checkChange(mo *Motion) error {
	in := m.group.IsMember(mo.Subject)
	switch {
	case mo.Kind == MotionAdd && in:
		return fmt.Errorf("%s is already a member", mo.Subject)
	case mo.Kind == MotionAdd && m.group.N() >= MaxMembers:
		return fmt.Errorf("group has %d members, limit %d", m.group.N(), MaxMembers)
	case mo.Kind == MotionRemove && !in:
		return fmt.Errorf("%s is not a member", mo.Subject)
	case mo.Kind == MotionRemove && m.group.N() == 1:
		return fmt.Errorf("cannot remove the last member")
	}
	return nil
}

func (m *Machine) applyVote(index uint64, q Request, res *Result) {
	id, ok := m.names[q.Op.Motion]
	if !ok {
		res.Code, res.Reason = CodeNotFound, fmt.Sprintf("no motion %q", q.Op.Motion)
		return
	}
	mo := m.motions[id]
	res.Motion, res.Outcome = mo.Name, mo.Outcome
	if mo.Outcome != OutcomeOpen {
		res.Code, res.Reason = CodeClosed, fmt.Sprintf("motion %q is %s", mo.Name, mo.Outcome)
		return
	}
	if mo.voted(q.Proposer) {
		res.Code, res.Reason = CodeAlreadyVoted, fmt.Sprintf("%s already voted on motion %q; votes are final", q.Proposer, mo.Name)
		return
	}
	if q.Op.Yes {
		mo.Yes = insertSorted(mo.Yes, q.Proposer)
	} else {
		mo.No = insertSorted(mo.No, q.Proposer)
	}
	m.tally(index, mo, res)
	res.Outcome = mo.Outcome
}

func insertSorted(s []identity.PublicKey, k identity.PublicKey) []identity.PublicKey {
	i, _ := slices.BinarySearchFunc(s, k, comparePub)
	return slices.Insert(s, i, k)
}

func removeSorted(s []identity.PublicKey, k identity.PublicKey) []identity.PublicKey {
	if i, ok := slices.BinarySearchFunc(s, k, comparePub); ok {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// tally decides mo if its yes votes reach the quorum or can no longer reach it.
// Only votes of current members count.
func (m *Machine) tally(index uint64, mo *Motion, res *Result) {
	yes, no := 0, 0
	for _, k := range mo.Yes {
		if m.group.IsMember(k) {
			yes++
		}
	}
	for _, k := range mo.No {
		if m.group.IsMember(k) {
			no++
		}
	}
	switch {
	case yes >= int(mo.Quorum):
		m.decide(index, mo, OutcomePassed, fmt.Sprintf("%d yes of quorum %d", yes, mo.Quorum), res)
	case m.group.N()-no < int(mo.Quorum):
		m.decide(index, mo, OutcomeFailed, fmt.Sprintf("%d no of %d members: quorum %d unreachable", no, m.group.N(), mo.Quorum), res)
	}
}

func (m *Machine) decide(index uint64, mo *Motion, o Outcome, reason string, res *Result) {
	if o == OutcomePassed && mo.Kind != MotionPlain {
		if err := m.checkChange(mo); err != nil {
			o, reason = OutcomeFailed, "passed but cannot take effect: "+err.Error()
		}
	}
	mo.Outcome, mo.Reason, mo.Decided = o, reason, index
	if i, ok := slices.BinarySearch(m.open, mo.ID); ok {
		m.open = slices.Delete(m.open, i, i+1)
	}
	res.Closed = append(res.Closed, Closure{Motion: mo.Name, Outcome: o, Reason: reason})
	m.forgetOld(mo.ID)
	if o == OutcomePassed && mo.Kind != MotionPlain {
		m.changeMembers(index, mo, res)
	}
}

// changeMembers applies a passed membership motion: the epoch grows, so the
// ID changes and requests signed for the old epoch are refused; open motions
// are tallied again under the new membership, in ID order. An open
// membership motion takes the new group's quorum: a change passes with the
// quorum in force when it is decided, so one opened in a smaller group
// cannot pass with fewer votes than the grown group requires. A removed
// member's votes on open motions are dropped: they no longer count, and an
// open motion never holds more votes than the group has members, which
// keeps every reachable state one that Restore accepts.
func (m *Machine) changeMembers(index uint64, mo *Motion, res *Result) {
	g := m.group
	members := slices.Clone(g.Members)
	if mo.Kind == MotionAdd {
		members = insertSorted(members, mo.Subject)
	} else {
		i, _ := slices.BinarySearchFunc(members, mo.Subject, comparePub)
		members = slices.Delete(members, i, i+1)
	}
	m.group = Group{Name: g.Name, Mode: g.Mode, Epoch: g.Epoch + 1, Members: members, Nonce: g.Nonce}
	for _, id := range slices.Clone(m.open) {
		if o := m.motions[id]; o.Outcome == OutcomeOpen {
			if mo.Kind == MotionRemove {
				o.Yes = removeSorted(o.Yes, mo.Subject)
				o.No = removeSorted(o.No, mo.Subject)
			}
			if o.Kind != MotionPlain {
				o.Quorum = uint32(m.group.Quorum())
			}
			if int(o.Quorum) > m.group.N() {
				m.decide(index, o, OutcomeFailed, fmt.Sprintf("quorum %d exceeds the %d members after a membership change", o.Quorum, m.group.N()), res)
				continue
			}
			m.tally(index, o, res)
		}
	}
}

// expire fails every open motion whose deadline the agreed clock has reached,
// in ID order, before the entry's own request is applied.
func (m *Machine) expire(index uint64, res *Result) {
	for _, id := range slices.Clone(m.open) {
		mo := m.motions[id]
		if mo.Outcome == OutcomeOpen && mo.Deadline != 0 && mo.Deadline <= m.clock {
			m.decide(index, mo, OutcomeFailed, fmt.Sprintf("deadline %d passed at agreed time %d", mo.Deadline, m.clock), res)
		}
	}
}

// forgetOld records id as decided and forgets the oldest decided motions past
// MaxDecidedMotions, lowest ID first, so state stays bounded and every replica
// forgets the same ones. A vote on a forgotten motion is refused as not-found.
func (m *Machine) forgetOld(id uint64) {
	i, _ := slices.BinarySearch(m.decided, id)
	m.decided = slices.Insert(m.decided, i, id)
	for len(m.decided) > m.lim.decided {
		delete(m.names, m.motions[m.decided[0]].Name)
		delete(m.motions, m.decided[0])
		m.decided = m.decided[1:]
	}
}
