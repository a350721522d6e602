package bftengine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleFrames is one valid frame of every kind.
func sampleFrames() []frame {
	d := &decision{payload: batch{time: 7, items: [][]byte{[]byte("a"), []byte("bc")}}.encode(), header: []byte("h"),
		metadata: []byte("m"), verSeq: 0, sigs: []sig{{id: 1, value: []byte("v1"), msg: []byte("x")}, {id: 2, value: []byte("v2")}}}
	return []frame{
		{kind: kindConsensus, body: []byte{0x0a, 0x00}},
		{kind: kindRequest, body: []byte("request")},
		{kind: kindAttest, attests: []attest{{index: 3, sig: bytes.Repeat([]byte{1}, 64)}, {index: 4, sig: []byte{}}}},
		{kind: kindAttestReq, seq: 9},
		{kind: kindHeightReq},
		{kind: kindHeight, seq: 1 << 40},
		{kind: kindDecisionReq, seq: 5},
		{kind: kindDecision, seq: 5, dec: d},
		{kind: kindDecision, seq: 6},
		{kind: kindWitness, wit: witness{view: 1, seq: 2, payloadHash: [32]byte{1}, mdHash: [32]byte{2}, sig: bytes.Repeat([]byte{3}, 64)}},
		{kind: kindRefusal, ref: refusalOf{hash: [32]byte{7}, stage: refBudget, reason: "rate: 10/s"}},
		{kind: kindRefusal, ref: refusalOf{hash: [32]byte{8}, stage: refTrust}},
	}
}

// TestRefusalFrameIsStrict: a refusal comes from a peer that may lie.
func TestRefusalFrameIsStrict(t *testing.T) {
	good := encodeFrame(frame{kind: kindRefusal, ref: refusalOf{hash: [32]byte{1}, stage: refTrust, reason: "q"}})[4:]
	if _, err := decodeFrame(good); err != nil {
		t.Fatal(err)
	}
	stageAt := 1 + 32
	bad := map[string][]byte{
		"unknown stage": func() []byte { b := bytes.Clone(good); b[stageAt] = 3; return b }(),
		"zero stage":    func() []byte { b := bytes.Clone(good); b[stageAt] = 0; return b }(),
		"short hash":    good[:20],
		"trailing":      append(bytes.Clone(good), 0),
		"oversized reason": encodeFrame(frame{kind: kindRefusal, ref: refusalOf{stage: refBudget,
			reason: string(bytes.Repeat([]byte{'x'}, maxRefReason+1))}})[4:],
		"length past end": func() []byte { b := bytes.Clone(good); b[stageAt+4] = 0xff; return b }(),
	}
	for name, b := range bad {
		var fe *FrameError
		if _, err := decodeFrame(b); !errors.As(err, &fe) {
			t.Errorf("%s: decoded, want a FrameError (err %v)", name, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		b := encodeFrame(f)
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 {
			t.Fatalf("kind %d: length prefix %d, body %d", f.kind, n, len(b)-4)
		}
		raw, err := readFrame(bytes.NewReader(b), make([]byte, 4))
		if err != nil {
			t.Fatal(err)
		}
		g, err := decodeFrame(raw)
		if err != nil {
			t.Fatalf("kind %d: %v", f.kind, err)
		}
		if !bytes.Equal(encodeFrame(g), b) {
			t.Fatalf("kind %d does not re-encode to itself", f.kind)
		}
	}
}

func TestFrameRefusals(t *testing.T) {
	att := encodeFrame(frame{kind: kindAttest, attests: []attest{{index: 1, sig: []byte("s")}}})[4:]
	tooMany := binary.BigEndian.AppendUint32([]byte{byte(kindAttest)}, maxAttests+1)
	bigSig := append([]byte{byte(kindAttest)}, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1)
	bigSig = binary.BigEndian.AppendUint32(bigSig, maxSigBytes+1)
	for name, b := range map[string][]byte{
		"empty":               {},
		"unknown kind":        {0xee},
		"kind zero":           {0},
		"empty consensus":     {byte(kindConsensus)},
		"oversized request":   append([]byte{byte(kindRequest)}, make([]byte, maxItemBytes+1)...),
		"truncated seq":       {byte(kindHeight), 0, 0},
		"trailing after seq":  append(encodeFrame(frame{kind: kindHeight, seq: 1})[4:], 0),
		"trailing height-req": {byte(kindHeightReq), 0},
		"truncated attest":    att[:len(att)-1],
		"too many attests":    tooMany,
		"oversized sig":       bigSig,
		"bad decision":        append(encodeFrame(frame{kind: kindDecision, seq: 1})[4:], 1, 2, 3),
		"short witness":       {byte(kindWitness), 0, 0, 0, 0, 0, 0, 0, 1},
	} {
		var fe *FrameError
		if _, err := decodeFrame(b); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FrameError", name, err)
		}
	}
	// A length over the limit is refused before the body is read.
	hdr := binary.BigEndian.AppendUint32(nil, maxFrame+1)
	var fe *FrameError
	if _, err := readFrame(bytes.NewReader(hdr), make([]byte, 4)); !errors.As(err, &fe) {
		t.Fatalf("oversized length: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), make([]byte, 4)); !errors.As(err, &fe) {
		t.Fatalf("zero length: %v", err)
	}
}

func TestBatchRefusals(t *testing.T) {
	good := batch{time: 1, items: [][]byte{[]byte("x")}}.encode()
	if _, err := decodeBatch(good); err != nil {
		t.Fatal(err)
	}
	many := batch{time: 1}
	for range maxBatchCount + 1 {
		many.items = append(many.items, []byte("x"))
	}
	for name, b := range map[string][]byte{
		"no magic":    good[1:],
		"trailing":    append(append([]byte{}, good...), 0),
		"truncated":   good[:len(good)-1],
		"no items":    batch{time: 1}.encode(),
		"too many":    many.encode(),
		"big item":    batch{time: 1, items: [][]byte{make([]byte, maxItemBytes+1)}}.encode(),
		"wrong magic": append([]byte(strings.Replace(batchMagic, "v1", "v2", 1)), good[len(batchMagic):]...),
	} {
		if _, err := decodeBatch(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeFrame: every frame comes from another member, who may lie.
// Decoding never panics, allocates no more than its limits allow, and a
// frame that decodes re-encodes to the same bytes (one encoding per value).
func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		f.Add(encodeFrame(fr)[4:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeFrame(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeFrame(g)[4:], b) {
			t.Fatalf("kind %d does not re-encode to its bytes", g.kind)
		}
	})
}

// FuzzDecodeBatch: a proposal's payload comes from the leader, who may lie.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(batch{time: 1, items: [][]byte{[]byte("x"), {}}}.encode())
	f.Add([]byte(batchMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		bt, err := decodeBatch(b)
		if err != nil {
			return
		}
		if !bytes.Equal(bt.encode(), b) {
			t.Fatal("batch does not re-encode to its bytes")
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from sampleFrames when
// BFT_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("BFT_WRITE_SEEDS") == "" {
		t.Skip("set BFT_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	write := func(fuzz, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, fr := range sampleFrames() {
		b := encodeFrame(fr)[4:]
		write("FuzzDecodeFrame", fmt.Sprintf("kind%d-%d", fr.kind, i), b)
		write("FuzzDecodeFrame", fmt.Sprintf("kind%d-%d-truncated", fr.kind, i), b[:len(b)/2])
	}
	write("FuzzDecodeBatch", "two-items", batch{time: 1, items: [][]byte{[]byte("x"), []byte("yz")}}.encode())
	write("FuzzDecodeBatch", "barrier", batch{time: 2, items: [][]byte{append([]byte(barrierMagic), make([]byte, 48)...)}}.encode())
}
