package fsm

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/treaty-dev/treaty/internal/identity"
)

// Snapshot formats: v2 records each key's owner; v1 (earlier versions) did
// not, and Restore still reads it.
const (
	snapshotMagic   = "treaty/consensus/snapshot/v2\x00"
	snapshotMagicV1 = "treaty/consensus/snapshot/v1\x00"
)

// Snapshot is the canonical encoding of the whole state: keys sorted, members
// and proposers sorted by key bytes, motions by ID. Equal states give equal
// bytes on every replica.
func (m *Machine) Snapshot() []byte {
	var w writer
	w.raw([]byte(snapshotMagic))
	m.group.encode(&w)
	w.u64(m.lastIndex)
	w.i64(m.clock)

	keys := m.Keys("")
	w.u32(uint32(len(keys)))
	for _, k := range keys {
		it := m.kv[k]
		w.str(k)
		w.bytes(it.Value)
		w.u64(it.Version)
		w.u64(it.Index)
		w.boolean(!it.Owner.IsZero())
		if !it.Owner.IsZero() {
			w.raw(it.Owner.Bytes())
		}
	}

	props := make([]identity.PublicKey, 0, len(m.seq))
	for k := range m.seq {
		props = append(props, k)
	}
	slices.SortFunc(props, comparePub)
	w.u32(uint32(len(props)))
	for _, k := range props {
		w.raw(k.Bytes())
		w.u64(m.seq[k])
	}

	ids := make([]uint64, 0, len(m.motions))
	for id := range m.motions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.u32(uint32(len(ids)))
	for _, id := range ids {
		encodeMotion(&w, m.motions[id])
	}
	return w.b
}

// Digest is the SHA-256 of Snapshot: replicas compare it to detect divergence.
func (m *Machine) Digest() [32]byte { return sha256.Sum256(m.Snapshot()) }

func encodeMotion(w *writer, mo *Motion) {
	w.u64(mo.ID)
	w.str(mo.Name)
	w.u8(uint8(mo.Kind))
	if mo.Kind != MotionPlain {
		w.raw(mo.Subject.Bytes())
	}
	w.raw(mo.Proposer.Bytes())
	w.u32(mo.Quorum)
	w.i64(mo.Deadline)
	w.str(mo.Text)
	for _, vs := range [][]identity.PublicKey{mo.Yes, mo.No} {
		w.u32(uint32(len(vs)))
		for _, k := range vs {
			w.raw(k.Bytes())
		}
	}
	w.str(string(mo.Outcome))
	w.str(mo.Reason)
	w.u64(mo.Decided)
}

func (r *reader) key(what string) identity.PublicKey {
	p := r.take(32)
	if r.err != nil {
		return identity.PublicKey{}
	}
	k, err := identity.PublicKeyFromEd25519(p)
	if err != nil {
		r.fail(fmt.Errorf("%s: %w", what, err))
	}
	return k
}

func (r *reader) count(what string, max int) int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(max) {
		r.fail(fmt.Errorf("%s: %d, limit %d", what, n, max))
		return 0
	}
	return int(n)
}

func decodeMotion(r *reader) *Motion {
	mo := &Motion{ID: r.u64(), Name: r.text("motion name", MaxMotionNameLen), Kind: MotionKind(r.u8())}
	switch mo.Kind {
	case MotionPlain:
		if r.err == nil && ValidMotionName(mo.Name) != nil {
			r.fail(fmt.Errorf("motion %d: bad name", mo.ID))
		}
	case MotionAdd, MotionRemove:
		mo.Subject = r.key("motion subject")
		if r.err == nil && mo.Name != fmt.Sprintf("#%d", mo.ID) {
			r.fail(fmt.Errorf("motion %d: membership motion named %q", mo.ID, mo.Name))
		}
	default:
		r.fail(fmt.Errorf("motion %d: unknown kind %d", mo.ID, mo.Kind))
	}
	mo.Proposer = r.key("motion proposer")
	mo.Quorum = r.u32()
	mo.Deadline = r.i64()
	mo.Text = r.text("motion text", MaxTextLen)
	for _, vs := range []*[]identity.PublicKey{&mo.Yes, &mo.No} {
		n := r.count("votes", MaxMembers)
		for i := 0; i < n && r.err == nil; i++ {
			k := r.key("voter")
			if len(*vs) > 0 && comparePub((*vs)[len(*vs)-1], k) >= 0 {
				r.fail(errors.New("votes not sorted or repeated"))
			}
			*vs = append(*vs, k)
		}
	}
	mo.Outcome = Outcome(r.text("motion outcome", 16))
	mo.Reason = r.text("motion reason", 1024)
	mo.Decided = r.u64()
	if r.err == nil {
		switch mo.Outcome {
		case OutcomeOpen, OutcomePassed, OutcomeFailed:
		default:
			r.fail(fmt.Errorf("motion %d: unknown outcome %q", mo.ID, mo.Outcome))
		}
	}
	return mo
}

// Restore rebuilds a Machine from Snapshot bytes. It refuses anything that is
// not exactly a canonical snapshot (Snapshot of the result equals b). A v1
// snapshot (which recorded no owners) is read too: its keys count in no
// member's share, and the machine snapshots as v2.
func Restore(b []byte) (*Machine, error) {
	r := reader{b: b}
	v1 := false
	switch string(r.take(len(snapshotMagic))) {
	case snapshotMagic:
	case snapshotMagicV1:
		v1 = true
	default:
		return nil, errors.New("fsm: snapshot: bad magic")
	}
	m := &Machine{
		group:   decodeGroup(&r),
		kv:      map[string]Item{},
		owned:   map[identity.PublicKey]usage{},
		seq:     map[identity.PublicKey]uint64{},
		motions: map[uint64]*Motion{},
		names:   map[string]uint64{},
		lim:     defaultLimits,
	}
	m.lastIndex = r.u64()
	m.clock = r.i64()
	prev := ""
	for i, n := 0, r.count("keys", MaxKeys); i < n && r.err == nil; i++ {
		k := r.text("key", MaxKeyLen)
		it := Item{Value: r.bytes("value", MaxValueLen), Version: r.u64(), Index: r.u64()}
		if !v1 && r.boolean("owner present") {
			it.Owner = r.key("owner")
		}
		if r.err == nil && (validKey(k) != nil || (i > 0 && strings.Compare(prev, k) >= 0) || it.Version == 0) {
			r.fail(fmt.Errorf("key %d: invalid, unsorted or version 0", i))
		}
		m.kv[k], prev = it, k
		m.bytes += len(k) + len(it.Value)
		m.charge(it.Owner, 1, len(k)+len(it.Value))
	}
	if r.err == nil && m.bytes > MaxStoreBytes {
		r.fail(fmt.Errorf("store holds %d bytes, limit %d", m.bytes, MaxStoreBytes))
	}
	var prevKey identity.PublicKey
	for i, n := 0, r.count("proposers", MaxKeys); i < n && r.err == nil; i++ {
		k := r.key("proposer")
		if i > 0 && comparePub(prevKey, k) >= 0 {
			r.fail(errors.New("proposers not sorted"))
		}
		m.seq[k], prevKey = r.u64(), k
	}
	var prevID uint64
	for i, n := 0, r.count("motions", MaxOpenMotions+MaxDecidedMotions); i < n && r.err == nil; i++ {
		mo := decodeMotion(&r)
		if r.err == nil && (i > 0 && mo.ID <= prevID || mo.ID == 0) {
			r.fail(errors.New("motions not sorted"))
		}
		if _, dup := m.names[mo.Name]; dup && r.err == nil {
			r.fail(fmt.Errorf("motion name %q repeated", mo.Name))
		}
		m.motions[mo.ID], m.names[mo.Name], prevID = mo, mo.ID, mo.ID
		if mo.Outcome == OutcomeOpen {
			m.open = append(m.open, mo.ID)
		} else {
			m.decided = append(m.decided, mo.ID)
		}
	}
	if r.err == nil && (len(m.open) > MaxOpenMotions || len(m.decided) > MaxDecidedMotions) {
		r.fail(fmt.Errorf("%d open and %d decided motions, limits %d and %d", len(m.open), len(m.decided), MaxOpenMotions, MaxDecidedMotions))
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return m, nil
}
