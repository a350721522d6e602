package raftengine

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/treaty-dev/treaty/internal/consensus/fsm"
)

// The seed corpora in testdata/fuzz hold a valid frame and entry of each
// kind plus truncated and oversized variants.

// FuzzReadFrame: forwarding frames come from members. readFrame never
// panics, never accepts more than its limit, and what it accepts re-encodes
// to the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	var good bytes.Buffer
	_ = writeFrame(&good, kindPropose, 7, []byte("request"))
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:5])
	f.Add(binary.BigEndian.AppendUint32(nil, maxRequestFrame+1))
	f.Add(binary.BigEndian.AppendUint32(nil, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		tag, id, body, err := readFrame(r, maxRequestFrame)
		if err != nil {
			return
		}
		if len(body)+frameHeader > maxRequestFrame {
			t.Fatalf("accepted a %d-byte body", len(body))
		}
		var again bytes.Buffer
		if err := writeFrame(&again, tag, id, body); err != nil {
			t.Fatal(err)
		}
		if consumed := len(b) - r.Len(); !bytes.Equal(again.Bytes(), b[:consumed]) {
			t.Fatal("frame does not re-encode to the bytes read")
		}
	})
}

// FuzzDecodeEntry: entries come from the leader's log. decodeEntry never
// panics, a well-formed entry re-encodes to itself, and anything else is
// applied as a malformed request at time 0, the same on every replica.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(fsm.Entry{Time: 42, Request: []byte("req")}))
	f.Add(encodeEntry(fsm.Entry{Time: -1}))
	f.Add(encodeEntry(fsm.Entry{Time: 7, Request: []byte("req"), LeaderVerified: true}))
	f.Add([]byte{entryVersion, 0, 0})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e := decodeEntry(b)
		if len(b) >= entryHeader && (b[0] == entryVersion || b[0] == entryVersionVerified) {
			if e.LeaderVerified != (b[0] == entryVersionVerified) {
				t.Fatalf("version %d decoded with LeaderVerified %v", b[0], e.LeaderVerified)
			}
			if !bytes.Equal(encodeEntry(e), b) {
				t.Fatal("entry does not re-encode to itself")
			}
			return
		}
		if e.Time != 0 || e.LeaderVerified || !bytes.Equal(e.Request, b) {
			t.Fatalf("malformed entry decoded as %+v", e)
		}
	})
}

// FuzzDecodeRecords: a catching-up member decodes records another member
// sent. decodeRecords never panics, and what it accepts re-encodes to the
// bytes it was given.
func FuzzDecodeRecords(f *testing.F) {
	one := appendRecord(nil, storedRecord{index: 3, time: 9, group: []byte("g"), req: []byte("req"), res: []byte(`{"code":"ok"}`)})
	f.Add(one)
	f.Add(appendRecord(one, storedRecord{index: 4}))
	f.Add(one[:len(one)-1])
	f.Add(append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1), 2), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeRecords(b)
		if err != nil {
			return
		}
		var again []byte
		for _, r := range recs {
			again = appendRecord(again, r)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("records do not re-encode to the bytes decoded")
		}
	})
}
