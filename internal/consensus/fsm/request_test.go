package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

func TestRequestRoundTrip(t *testing.T) {
	k := key(t, 1)
	id := group(t, ModeBFT, keys(t, 4)).ID()
	ops := []Op{
		Put("pr/42/reviewer", []byte("alice")),
		CAS("pr/42/reviewer", []byte("bob"), 3),
		CAS("new", nil, 0),
		Delete("pr/42/reviewer"),
		{Kind: OpDelete, Key: "k", HasIfVersion: true, IfVersion: 9},
		OpenMotion("pr-42", 3, 5000, "approve PR 42"),
		Vote("pr-42", true),
		Vote("#17", false),
		AddMember(key(t, 9).Public(), 0, "welcome"),
		RemoveMember(key(t, 2).Public(), 77, ""),
	}
	for _, op := range ops {
		q, err := SignRequest(k, id, 5, op)
		if err != nil {
			t.Fatalf("%v: %v", op.Kind, err)
		}
		b := q.Encode()
		d, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("%v: decode: %v", op.Kind, err)
		}
		if !d.VerifySignature() || d.Seq != 5 || d.Group != id || d.Proposer != k.Public() || d.Op.Kind != op.Kind {
			t.Fatalf("%v: decoded %+v", op.Kind, d)
		}
		if !bytes.Equal(d.Encode(), b) {
			t.Fatalf("%v: re-encoding differs", op.Kind)
		}
	}
}

// TestRequestTamper flips every byte of a signed request: each flip must make
// it undecodable or its signature invalid.
func TestRequestTamper(t *testing.T) {
	id := group(t, ModeBFT, keys(t, 4)).ID()
	b := signed(t, key(t, 1), id, 1, CAS("k", []byte("v"), 2))
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		q, err := DecodeRequest(c)
		if err == nil && q.VerifySignature() {
			t.Fatalf("flip at byte %d still verifies", i)
		}
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	id := group(t, ModeBFT, keys(t, 4)).ID()
	good := signed(t, key(t, 1), id, 1, Put("k", []byte("v")))
	body := good[:len(good)-64]
	sig := good[len(good)-64:]
	withBody := func(f func([]byte) []byte) []byte {
		return append(f(bytes.Clone(body)), sig...)
	}
	opAt := len(requestMagic) + 32 + 32 + 8
	cases := map[string][]byte{
		"empty":       nil,
		"truncated":   good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"bad magic":   withBody(func(b []byte) []byte { b[0] ^= 1; return b }),
		"unknown op":  withBody(func(b []byte) []byte { b[opAt] = 99; return b }),
		"zero op":     withBody(func(b []byte) []byte { b[opAt] = 0; return b }),
		"bad bool":    withBody(func(b []byte) []byte { b[len(b)-9] = 2; return b }),
		"stray ifver": withBody(func(b []byte) []byte { b[len(b)-1] = 1; return b }),
		"zero proposer": withBody(func(b []byte) []byte {
			clear(b[len(requestMagic)+32 : len(requestMagic)+64])
			return b
		}),
		"key length past end": withBody(func(b []byte) []byte { b[opAt+1] = 0xff; return b }),
		"oversized":           make([]byte, MaxRequestSize+1),
	}
	for name, b := range cases {
		var de *DecodeError
		if _, err := DecodeRequest(b); !errors.As(err, &de) {
			t.Errorf("%s: err = %v, want *DecodeError", name, err)
		}
	}
}

func TestSignRequestRefusesInvalidOps(t *testing.T) {
	k := key(t, 1)
	var id ID
	cases := map[string]Op{
		"empty key":         Put("", nil),
		"long key":          Put(string(make([]byte, MaxKeyLen+1)), nil),
		"control char key":  Put("a\nb", nil),
		"invalid utf8 key":  Put("\xff", nil),
		"big value":         Put("k", make([]byte, MaxValueLen+1)),
		"long text":         OpenMotion("m", 1, 0, string(make([]byte, MaxTextLen+1))),
		"negative deadline": OpenMotion("m", 1, -1, ""),
		"empty motion name": OpenMotion("", 1, 0, ""),
		"reserved name":     OpenMotion("#1", 1, 0, ""),
		"unicode name":      OpenMotion("prо", 1, 0, ""), // Cyrillic о
		"long motion name":  OpenMotion(string(make([]byte, MaxMotionNameLen+1)), 1, 0, ""),
		"bad vote ref":      Vote("#1a", true),
		"empty vote ref":    Vote("", true),
		"zero member":       AddMember(identity.PublicKey{}, 0, ""),
		"unknown kind":      {Kind: 42},
	}
	for name, op := range cases {
		if _, err := SignRequest(k, id, 1, op); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := SignRequest(identity.PrivateKey{}, id, 1, Put("k", nil)); err == nil {
		t.Error("zero private key: signed")
	}
}
