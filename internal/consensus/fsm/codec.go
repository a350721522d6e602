package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// writer builds the canonical binary encodings: fixed-width big-endian
// integers and u32-length-prefixed byte strings, so that one value has exactly
// one encoding.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)   { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) i64(v int64)    { w.u64(uint64(v)) }
func (w *writer) raw(p []byte)   { w.b = append(w.b, p...) }
func (w *writer) bytes(p []byte) { w.u32(uint32(len(p))); w.raw(p) }
func (w *writer) str(s string)   { w.u32(uint32(len(s))); w.b = append(w.b, s...) }
func (w *writer) boolean(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// errTruncated and friends are the decoder's reasons; DecodeError wraps them.
var (
	errTruncated = errors.New("truncated")
	errTrailing  = errors.New("trailing bytes")
)

// reader is the strict counterpart of writer: every read is bounds-checked,
// every length is checked against its limit before anything is allocated, and
// the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() uint8 {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) u32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *reader) u64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (r *reader) i64() int64 { return int64(r.u64()) }

func (r *reader) boolean(what string) bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(fmt.Errorf("%s: not 0 or 1", what))
		return false
	}
}

// bytes reads a length-prefixed string of at most max bytes and copies it.
func (r *reader) bytes(what string, max int) []byte {
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

// text reads a length-prefixed UTF-8 string of at most max bytes.
func (r *reader) text(what string, max int) string {
	p := r.bytes(what, max)
	if r.err == nil && !utf8.Valid(p) {
		r.fail(fmt.Errorf("%s: not valid UTF-8", what))
	}
	return string(p)
}

// done fails unless every byte was consumed.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(errTrailing)
	}
	return r.err
}
