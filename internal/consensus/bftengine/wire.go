package bftengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits of what a member reads from another. Every length is checked before
// anything is allocated.
const (
	maxFrame      = 4 << 20 // one frame: a proposal batch (maxBatchBytes) and its signatures fit with room
	maxBatchBytes = 1 << 20 // SmartBFT's RequestBatchMaxBytes
	maxBatchCount = 512     // SmartBFT's RequestBatchMaxCount
	maxSigs       = 256     // signatures on one decision (≥ fsm.MaxMembers)
	maxSigBytes   = 1 << 10 // one signature's value
	maxAuxBytes   = 4 << 10 // one signature's auxiliary data (SmartBFT's PreparesFrom)
	maxAttests    = maxBatchCount
	maxItemBytes  = 80 << 10 // fsm.MaxRequestSize
	maxHeader     = 1 << 10
	maxMetadata   = 64 << 10
)

// kind is a frame's type byte.
type kind uint8

const (
	kindConsensus   kind = 1  // a SmartBFT protocol message (protobuf)
	kindRequest     kind = 2  // a batch item forwarded to the leader
	kindAttest      kind = 3  // the sender's attestations: count, then (index, signature) pairs
	kindAttestReq   kind = 4  // "send me your attestation of index"
	kindHeightReq   kind = 5  // "what is your last decided sequence?"
	kindHeight      kind = 6  // the sender's last decided sequence
	kindDecisionReq kind = 7  // "send me decision seq"
	kindDecision    kind = 8  // seq and the encoded decision (empty: not held)
	kindWitness     kind = 9  // a leader-signed proposal header the sender received
	kindRefusal     kind = 10 // the leader's gate refused a forwarded request: its hash, stage, reason (gate.go)
)

// frame is one decoded message between members. Only the fields of its kind
// are set.
type frame struct {
	kind    kind
	body    []byte    // consensus, request: opaque to the codec
	seq     uint64    // height, decision-req, decision; attest-req: the index
	attests []attest  // attest
	dec     *decision // decision (nil: the sender does not hold it)
	wit     witness   // witness
	ref     refusalOf // refusal
}

type attest struct {
	index uint64
	sig   []byte
}

// witness is what a follower saw the leader of a view propose at a sequence;
// two witnesses of one leader, view and sequence with different hashes prove
// that it equivocated.
type witness struct {
	view, seq   uint64
	payloadHash [32]byte
	mdHash      [32]byte
	sig         []byte
}

// FrameError says why bytes from a member were refused.
type FrameError struct{ Err error }

func (e *FrameError) Error() string { return "bftengine: malformed frame: " + e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

var (
	errTruncated = errors.New("truncated")
	errTrailing  = errors.New("trailing bytes")
)

// wbuf builds the binary encodings: big-endian fixed-width integers and
// u32-length-prefixed byte strings.
type wbuf struct{ b []byte }

func (w *wbuf) u8(v uint8)     { w.b = append(w.b, v) }
func (w *wbuf) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *wbuf) u64(v uint64)   { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *wbuf) raw(p []byte)   { w.b = append(w.b, p...) }
func (w *wbuf) bytes(p []byte) { w.u32(uint32(len(p))); w.raw(p) }

// rbuf is the strict reader: bounds-checked, first failure sticks.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *rbuf) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *rbuf) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *rbuf) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *rbuf) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// bytes reads a length-prefixed string of at most max bytes and copies it.
func (r *rbuf) bytes(what string, max int) []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.fail(fmt.Errorf("%s: %d bytes, limit %d", what, n, max))
		return nil
	}
	p := r.take(int(n))
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

func (r *rbuf) count(what string, max int) int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(max) {
		r.fail(fmt.Errorf("%s: %d, limit %d", what, n, max))
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func (r *rbuf) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(errTrailing)
	}
	return r.err
}

// encodeFrame is the wire form: u32 length of what follows, the kind byte,
// the body.
func encodeFrame(f frame) []byte {
	var w wbuf
	w.u32(0)
	w.u8(uint8(f.kind))
	switch f.kind {
	case kindConsensus, kindRequest:
		w.raw(f.body)
	case kindAttest:
		w.u32(uint32(len(f.attests)))
		for _, a := range f.attests {
			w.u64(a.index)
			w.bytes(a.sig)
		}
	case kindAttestReq, kindHeight, kindDecisionReq:
		w.u64(f.seq)
	case kindHeightReq:
	case kindDecision:
		w.u64(f.seq)
		if f.dec != nil {
			w.raw(f.dec.encode())
		}
	case kindWitness:
		w.u64(f.wit.view)
		w.u64(f.wit.seq)
		w.raw(f.wit.payloadHash[:])
		w.raw(f.wit.mdHash[:])
		w.bytes(f.wit.sig)
	case kindRefusal:
		w.raw(f.ref.hash[:])
		w.u8(uint8(f.ref.stage))
		w.bytes([]byte(f.ref.reason))
	}
	binary.BigEndian.PutUint32(w.b, uint32(len(w.b)-4))
	return w.b
}

// decodeFrame parses one frame without its length prefix (what readFrame
// returns). It is strict: known kind, every length within its limit, no
// trailing bytes.
func decodeFrame(b []byte) (frame, error) {
	if len(b) > maxFrame {
		return frame{}, &FrameError{fmt.Errorf("%d bytes, limit %d", len(b), maxFrame)}
	}
	r := rbuf{b: b}
	f := frame{kind: kind(r.u8())}
	switch f.kind {
	case kindConsensus, kindRequest:
		f.body = append([]byte{}, r.take(len(r.b))...)
		if r.err == nil && len(f.body) == 0 {
			r.fail(errors.New("empty body"))
		}
		if f.kind == kindRequest && len(f.body) > maxItemBytes {
			r.fail(fmt.Errorf("request: %d bytes, limit %d", len(f.body), maxItemBytes))
		}
	case kindAttest:
		n := r.count("attestations", maxAttests)
		for range n {
			a := attest{index: r.u64(), sig: r.bytes("attestation", maxSigBytes)}
			if r.err != nil {
				break
			}
			f.attests = append(f.attests, a)
		}
	case kindAttestReq, kindHeight, kindDecisionReq:
		f.seq = r.u64()
	case kindHeightReq:
	case kindDecision:
		f.seq = r.u64()
		if r.err == nil && len(r.b) > 0 {
			d, err := decodeDecision(r.take(len(r.b)))
			if err != nil {
				r.fail(err)
			}
			f.dec = d
		}
	case kindWitness:
		f.wit.view = r.u64()
		f.wit.seq = r.u64()
		copy(f.wit.payloadHash[:], r.take(32))
		copy(f.wit.mdHash[:], r.take(32))
		f.wit.sig = r.bytes("witness signature", maxSigBytes)
	case kindRefusal:
		copy(f.ref.hash[:], r.take(32))
		f.ref.stage = refStage(r.u8())
		if r.err == nil && f.ref.stage != refBudget && f.ref.stage != refTrust {
			r.fail(fmt.Errorf("refusal: unknown stage %d", f.ref.stage))
		}
		f.ref.reason = string(r.bytes("refusal reason", maxRefReason))
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("unknown kind %d", uint8(f.kind)))
		}
	}
	if err := r.done(); err != nil {
		return frame{}, &FrameError{err}
	}
	return f, nil
}

// readFrame reads one length-prefixed frame and returns it without the
// prefix, refusing a length over maxFrame before reading the body.
func readFrame(rd io.Reader, hdr []byte) ([]byte, error) {
	if _, err := io.ReadFull(rd, hdr[:4]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
		return nil, &FrameError{fmt.Errorf("frame length %d, want 1..%d", n, maxFrame)}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return b, nil
}

// decision is a SmartBFT proposal with its commit signatures, as stored and
// as served to a member that synchronizes.
type decision struct {
	payload, header, metadata []byte
	verSeq                    uint64
	sigs                      []sig
}

type sig struct {
	id         uint64
	value, msg []byte
}

func (d *decision) encode() []byte {
	var w wbuf
	w.bytes(d.payload)
	w.bytes(d.header)
	w.bytes(d.metadata)
	w.u64(d.verSeq)
	w.u32(uint32(len(d.sigs)))
	for _, s := range d.sigs {
		w.u64(s.id)
		w.bytes(s.value)
		w.bytes(s.msg)
	}
	return w.b
}

func decodeDecision(b []byte) (*decision, error) {
	r := rbuf{b: b}
	d := &decision{
		payload:  r.bytes("payload", maxBatchBytes+4*maxBatchCount+64),
		header:   r.bytes("header", maxHeader),
		metadata: r.bytes("metadata", maxMetadata),
		verSeq:   r.u64(),
	}
	n := r.count("signatures", maxSigs)
	for range n {
		s := sig{id: r.u64(), value: r.bytes("signature", maxSigBytes), msg: r.bytes("auxiliary data", maxAuxBytes)}
		if r.err != nil {
			break
		}
		d.sigs = append(d.sigs, s)
	}
	if err := r.done(); err != nil {
		return nil, &FrameError{fmt.Errorf("decision: %w", err)}
	}
	return d, nil
}

// batchMagic starts a proposal's payload.
const batchMagic = "treaty/bft/batch/v1\x00"

// batch is a proposal's payload: the leader's time stamp (unix ns) and the
// ordered items, each an fsm request or a read barrier.
type batch struct {
	time  int64
	items [][]byte
}

func (b batch) encode() []byte {
	var w wbuf
	w.raw([]byte(batchMagic))
	w.u64(uint64(b.time))
	w.u32(uint32(len(b.items)))
	for _, it := range b.items {
		w.bytes(it)
	}
	return w.b
}

func decodeBatch(p []byte) (batch, error) {
	r := rbuf{b: p}
	if string(r.take(len(batchMagic))) != batchMagic {
		return batch{}, &FrameError{errors.New("batch: bad magic")}
	}
	b := batch{time: int64(r.u64())}
	n := r.count("batch items", maxBatchCount)
	if r.err == nil && n == 0 {
		r.fail(errors.New("batch: no items"))
	}
	for range n {
		it := r.bytes("batch item", maxItemBytes)
		if r.err != nil {
			break
		}
		b.items = append(b.items, it)
	}
	if err := r.done(); err != nil {
		return batch{}, &FrameError{fmt.Errorf("batch: %w", err)}
	}
	return b, nil
}

// barrierMagic starts a read barrier: an item that applies as an empty entry
// (a tick), so that a Read waits until everything ordered before it is applied.
const barrierMagic = "treaty/bft/barrier/v1\x00"

const barrierLen = len(barrierMagic) + 32 + 16

func isBarrier(item []byte) bool {
	return len(item) == barrierLen && string(item[:len(barrierMagic)]) == barrierMagic
}
