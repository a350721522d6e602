package membership

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/treaty-dev/treaty/internal/identity"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func signedRecord(t testing.TB, n int, f Fields) Record {
	t.Helper()
	r := Record{Fields: f, Seq: 7, Expires: t0.Add(time.Hour)}
	if err := SignRecord(testKey(t, n), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func fullFields() Fields {
	return Fields{
		Nickname: strings.Repeat("n", MaxNicknameBytes),
		Org:      strings.Repeat("o", MaxOrgBytes),
		Addrs: []string{
			strings.Repeat("a", MaxAddrBytes-6) + ":65535",
			strings.Repeat("b", MaxAddrBytes-6) + ":65535",
			strings.Repeat("c", MaxAddrBytes-6) + ":65535",
			strings.Repeat("d", MaxAddrBytes-6) + ":65535",
		},
		Digest: [32]byte{1, 2, 3},
	}
}

func TestRecordRoundTripAndWorstCaseFitsMeta(t *testing.T) {
	r := signedRecord(t, 1, fullFields())
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxRecordBytes {
		t.Fatalf("worst-case record is %d bytes, memberlist meta allows %d", len(b), MaxRecordBytes)
	}
	got, err := UnmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(t0); err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
}

// relayFields is the worst case with relays: every string at its limit, the
// slots left by MaxRelays relays filled with the longest addresses.
func relayFields(t testing.TB) Fields {
	f := fullFields()
	f.Addrs = f.Addrs[:MaxAddrs-MaxRelays]
	for i := range MaxRelays {
		f.Relays = append(f.Relays, testKey(t, 10+i).Public())
	}
	return f
}

func TestRecordWithRelaysRoundTripsAndFitsMeta(t *testing.T) {
	for name, f := range map[string]Fields{"all addresses": fullFields(), "relays": relayFields(t)} {
		t.Run(name, func(t *testing.T) {
			r := signedRecord(t, 1, f)
			b, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxRecordBytes || len(b) > 508 {
				t.Fatalf("record is %d bytes; the documented worst case is 508, memberlist meta allows %d", len(b), MaxRecordBytes)
			}
			got, err := UnmarshalRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(t0); err != nil {
				t.Fatal(err)
			}
			if len(got.Relays) != len(f.Relays) {
				t.Fatalf("relays %v, want %v", got.Relays, f.Relays)
			}
			for i := range f.Relays {
				if !got.Relays[i].Equal(f.Relays[i]) {
					t.Fatalf("relay %d is %s, want %s", i, got.Relays[i], f.Relays[i])
				}
			}
		})
	}
	// A relay is signed like every other field: swapping one breaks the signature.
	r := signedRecord(t, 1, relayFields(t))
	r.Relays = []identity.PublicKey{r.Relays[1], r.Relays[0]}
	if err := r.Verify(t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("reordered relays: got %v, want ErrBadSignature", err)
	}
}

func TestRecordRefusesBadRelays(t *testing.T) {
	a, b, c := testKey(t, 10).Public(), testKey(t, 11).Public(), testKey(t, 12).Public()
	cases := map[string]Fields{
		"too many relays":        {Relays: []identity.PublicKey{a, b, c}},
		"slots shared":           {Addrs: fullFields().Addrs, Relays: []identity.PublicKey{a}},
		"duplicate relay":        {Relays: []identity.PublicKey{a, a}},
		"zero relay":             {Relays: []identity.PublicKey{{}}},
		"itself as its relay":    {Relays: []identity.PublicKey{testKey(t, 1).Public()}},
		"three slots + 2 relays": {Addrs: fullFields().Addrs[:3], Relays: []identity.PublicKey{a, b}},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			r := Record{Fields: f, Seq: 7, Expires: t0.Add(time.Hour)}
			if err := SignRecord(testKey(t, 1), &r); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// On the wire: counts and keys the encoder would never write.
	good := signedRecord(t, 1, Fields{Addrs: []string{"127.0.0.1:7420"}, Relays: []identity.PublicKey{a}})
	enc, _ := good.Marshal()
	off := len(enc) - 64 - 32 - 1 // the relay count
	wire := map[string][]byte{
		"relay count over the limit":  withByte(enc, off, MaxRelays+1),
		"relay count beyond the data": withByte(enc, off, 2),
		"zero relay key":              withZero(enc, off+1, 32),
		"own key as relay":            append(append(bytes.Clone(enc[:off+1]), good.Key.Bytes()...), enc[off+33:]...),
	}
	for name, b := range wire {
		t.Run(name, func(t *testing.T) {
			if _, err := UnmarshalRecord(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func withByte(enc []byte, off int, v byte) []byte {
	b := bytes.Clone(enc)
	b[off] = v
	return b
}

func withZero(enc []byte, off, n int) []byte {
	b := bytes.Clone(enc)
	clear(b[off : off+n])
	return b
}

func TestRecordVerifyRefuses(t *testing.T) {
	good := signedRecord(t, 1, Fields{Nickname: "alice", Addrs: []string{"127.0.0.1:7420"}})
	t.Run("tampered field", func(t *testing.T) {
		r := good
		r.Nickname = "mallory"
		if err := r.Verify(t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tampered seq", func(t *testing.T) {
		r := good
		r.Seq++
		if err := r.Verify(t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("key swapped", func(t *testing.T) {
		r := good
		r.Key = testKey(t, 2).Public()
		if err := r.Verify(t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		if err := good.Verify(good.Expires); !errors.Is(err, ErrExpired) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("statement signature is not a record signature", func(t *testing.T) {
		// Domain separation: the same key's signature over the same body as a
		// statement must not verify as a record.
		k := testKey(t, 1)
		r := good
		s, err := SignStatement(k, "x", r.body(nil))
		if err != nil {
			t.Fatal(err)
		}
		r.Sig = s.Sig
		if err := r.Verify(t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestUnmarshalRecordRefuses(t *testing.T) {
	good := signedRecord(t, 1, Fields{Nickname: "alice", Addrs: []string{"127.0.0.1:7420"}})
	enc, _ := good.Marshal()
	cases := map[string][]byte{
		"empty":          nil,
		"wrong magic":    append([]byte("TRR1"), enc[4:]...),
		"truncated":      enc[:len(enc)-1],
		"trailing byte":  append(bytes.Clone(enc), 0),
		"oversized":      make([]byte, MaxRecordBytes+1),
		"statement":      mustStatement(t),
		"address count":  withAddrCount(enc, MaxAddrs+1),
		"zero seq":       withSeq(enc, 0),
		"expiry too far": withExpiry(enc, 1<<62),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := UnmarshalRecord(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func mustStatement(t *testing.T) []byte {
	s, err := SignStatement(testKey(t, 1), "revoke", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Marshal()
	return b
}

// offsets in the encoding: magic 4, key 32, seq 8, expires 8, digest 32, then strings.
func withSeq(enc []byte, v byte) []byte {
	b := bytes.Clone(enc)
	for i := 36; i < 44; i++ {
		b[i] = 0
	}
	b[43] = v
	return b
}

func withExpiry(enc []byte, v uint64) []byte {
	b := bytes.Clone(enc)
	for i := range 8 {
		b[44+i] = byte(v >> (56 - 8*i))
	}
	return b
}

func withAddrCount(enc []byte, n byte) []byte {
	b := bytes.Clone(enc)
	off := 84
	off += 1 + int(b[off]) // nickname
	off += 1 + int(b[off]) // org
	b[off] = n
	return b
}

func TestFieldsRefuseUnicodeTricksAndBadAddrs(t *testing.T) {
	bad := map[string]Fields{
		"bidi override":     {Nickname: "alice\u202egnp.exe"},
		"zero width joiner": {Nickname: "al\u200dice"},
		"control":           {Org: "acme\x07"},
		"newline":           {Org: "acme\nEvil: yes"},
		"invalid utf8":      {Nickname: "\xff\xfe"},
		"not NFC":           {Nickname: "e\u0301"},
		"nick too long":     {Nickname: strings.Repeat("x", MaxNicknameBytes+1)},
		"too many addrs":    {Addrs: []string{"a:1", "b:1", "c:1", "d:1", "e:1"}},
		"dup addr":          {Addrs: []string{"a:1", "a:1"}},
		"no port":           {Addrs: []string{"example.com"}},
		"port zero":         {Addrs: []string{"example.com:0"}},
		"port leading zero": {Addrs: []string{"example.com:07420"}},
		"unicode host":      {Addrs: []string{"exаmple.com:7420"}}, // Cyrillic а
		"empty host":        {Addrs: []string{":7420"}},
		"space in host":     {Addrs: []string{"a b:1"}},
		"unbracketed v6":    {Addrs: []string{"::1:7420"}},
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) {
			r := Record{Fields: f, Seq: 1, Expires: t0}
			if err := SignRecord(testKey(t, 1), &r); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	ok := Fields{Nickname: "Zoë's agent", Org: "Ünïcode GmbH", Addrs: []string{"[::1]:7420", "host.example:1"}}
	r := Record{Fields: ok, Seq: 1, Expires: t0}
	if err := SignRecord(testKey(t, 1), &r); err != nil {
		t.Fatalf("valid fields refused: %v", err)
	}
}

func TestStatementRoundTripAndRefusals(t *testing.T) {
	k := testKey(t, 3)
	s, err := SignStatement(k, "revoke", []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalStatement(b)
	if err != nil || got.Verify() != nil || got.Kind != "revoke" || string(got.Body) != "body" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// The kind is signed: relabelling a revocation as another kind breaks it.
	relabelled := got
	relabelled.Kind = "rotate"
	if err := relabelled.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relabelled kind verified: %v", err)
	}
	if _, err := SignStatement(k, "Revoke", nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("upper-case kind: %v", err)
	}
	if _, err := SignStatement(k, "x", make([]byte, MaxStatementBody+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized body: %v", err)
	}
	for name, bad := range map[string][]byte{
		"truncated": b[:len(b)-1],
		"trailing":  append(bytes.Clone(b), 1),
		"record":    mustRecordBytes(t),
		"huge len":  hugeBodyLen(b),
	} {
		if _, err := UnmarshalStatement(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: got %v", name, err)
		}
	}
}

func mustRecordBytes(t *testing.T) []byte {
	r := signedRecord(t, 1, Fields{})
	b, _ := r.Marshal()
	return b
}

func hugeBodyLen(b []byte) []byte {
	c := bytes.Clone(b)
	off := 4 + 1 + int(c[4]) + 32
	c[off], c[off+1] = 0xff, 0xff
	return c
}
