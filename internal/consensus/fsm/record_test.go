package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// bftRecord applies a vote in a 4-member BFT group and certifies it with the
// signatures of signers.
func bftRecord(t *testing.T, signers []int) (Record, []identity.PrivateKey) {
	t.Helper()
	ks := keys(t, 4)
	d := newDriver(t, group(t, ModeBFT, ks))
	id := must(t, d.do(ks[0], OpenMotion(d.name(), 3, 0, "approve PR 42"))).Motion
	must(t, d.do(ks[1], Vote(id, true)))
	g := d.m.Group()
	e := Entry{Time: d.now + 1, Request: signed(t, ks[2], g.ID(), 1, Vote(id, true))}
	d.index++
	res := must(t, d.m.Apply(d.index, e))
	var certs []Attestation
	for _, i := range signers {
		certs = append(certs, Attest(ks[i], g, d.index, e, res))
	}
	return NewRecord(g, d.index, e, res, certs), ks
}

func roundTrip(t *testing.T, r Record) Record {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecordVerifies(t *testing.T) {
	r, _ := bftRecord(t, []int{0, 1, 3})
	if err := Verify(roundTrip(t, r)); err != nil {
		t.Fatal(err)
	}
	r, _ = bftRecord(t, []int{3, 2, 1, 0})
	if err := Verify(roundTrip(t, r)); err != nil {
		t.Fatal(err)
	}
}

func TestRecordCertificateRejects(t *testing.T) {
	outsider := key(t, 99)
	cases := []struct {
		name  string
		edit  func(r *Record, ks []identity.PrivateKey)
		check string
	}{
		{"too few", func(r *Record, _ []identity.PrivateKey) { r.Certificate = r.Certificate[:2] }, "certificate"},
		{"none", func(r *Record, _ []identity.PrivateKey) { r.Certificate = nil }, "certificate"},
		{"repeated signer", func(r *Record, _ []identity.PrivateKey) { r.Certificate[2] = r.Certificate[0] }, "certificate"},
		{"non-member signer", func(r *Record, _ []identity.PrivateKey) {
			s := r.Certificate[0]
			r.Certificate = append(r.Certificate, Attestation{Signer: outsider.Public(), Sig: outsider.Sign([]byte("x"))})
			r.Certificate[0] = s
		}, "membership"},
		{"signature by another member", func(r *Record, _ []identity.PrivateKey) {
			r.Certificate[0].Sig = r.Certificate[1].Sig
		}, "certificate"},
		{"signature over another index", func(r *Record, ks []identity.PrivateKey) {
			g, _ := NewGroup(r.Group.Name, r.Group.Mode, r.Group.Epoch, r.Group.Members)
			e := Entry{Time: r.Time, Request: r.Request}
			r.Certificate[0] = Attestation{Signer: ks[0].Public(), Sig: ks[0].Sign(Statement(g.ID(), r.Index+1, e.Digest(), r.result().Digest()))}
		}, "certificate"},
		{"result changed", func(r *Record, _ []identity.PrivateKey) { r.Result.Outcome = OutcomePassed }, "certificate"},
		{"time changed", func(r *Record, _ []identity.PrivateKey) { r.Time++ }, "certificate"},
		{"claims no certificate", func(r *Record, _ []identity.PrivateKey) { r.NoCertificate = NoCertificateRaft }, "certificate"},
		{"member list changed", func(r *Record, ks []identity.PrivateKey) { r.Group.Members = r.Group.Members[:3] }, "group"},
		{"mode changed to raft", func(r *Record, _ []identity.PrivateKey) {
			r.Group.Mode = ModeRaft
			r.NoCertificate, r.Certificate = NoCertificateRaft, nil
		}, "group"},
		{"wrong format", func(r *Record, _ []identity.PrivateKey) { r.Format = "treaty-decision/v0" }, "format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ks := bftRecord(t, []int{0, 1, 2})
			c.edit(&r, ks)
			var ve *VerifyError
			if err := Verify(r); !errors.As(err, &ve) || ve.Check != c.check {
				t.Fatalf("Verify = %v, want a %q failure", err, c.check)
			}
		})
	}
}

// TestRecordByteFlips flips one bit in every byte of an exported BFT record:
// each flip must make the record unreadable or fail Verify, unless the flip
// left the decoded record identical (field-name or hex case, base64 padding
// bits): what is verified is the decoded record, not its JSON spelling.
func TestRecordByteFlips(t *testing.T) {
	r, _ := bftRecord(t, []int{0, 1, 2})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	neutral := 0
	for i := range b {
		for _, bit := range []byte{0x01} {
			c := bytes.Clone(b)
			c[i] ^= bit
			p, err := ParseRecord(c)
			if err != nil {
				continue
			}
			if Verify(p) == nil {
				again, _ := json.Marshal(p)
				if !bytes.Equal(again, b) {
					t.Fatalf("flip 0x%02x at %d (%q) changed the record and still verifies", bit, i, c[max(0, i-20):min(len(c), i+20)])
				}
				neutral++
			}
		}
	}
	t.Logf("%d of %d flips decoded to the same record (field-name case, hex case, base64 padding bits)", neutral, len(b))
}

func TestRaftRecord(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	g := d.m.Group()
	e := Entry{Time: 5, Request: signed(t, ks[1], g.ID(), 1, Put("pr/42/approved", []byte("yes")))}
	res := must(t, d.m.Apply(1, e))
	r := roundTrip(t, NewRecord(g, 1, e, res, nil))
	if r.NoCertificate != NoCertificateRaft || r.Certificate != nil {
		t.Fatalf("raft record: %+v", r)
	}
	if err := Verify(r); err != nil {
		t.Fatal(err)
	}
	bad := func(name string, edit func(*Record)) {
		c := roundTrip(t, r)
		edit(&c)
		if Verify(c) == nil {
			t.Errorf("%s: verified", name)
		}
	}
	bad("request byte", func(c *Record) { c.Request[len(c.Request)-70] ^= 1 })
	bad("signature byte", func(c *Record) { c.Request[len(c.Request)-1] ^= 1 })
	bad("statement removed", func(c *Record) { c.NoCertificate = "" })
	bad("certificate added", func(c *Record) { c.Certificate = []Attestation{Attest(ks[0], g, 1, e, res)} })
	bad("proposer not member", func(c *Record) {
		o := key(t, 42)
		c.Request = signed(t, o, g.ID(), 1, Put("k", nil))
	})
	bad("request for another group", func(c *Record) {
		c.Request = signed(t, ks[1], ID{1}, 1, Put("k", nil))
	})
}

func TestParseRecordRejects(t *testing.T) {
	r, _ := bftRecord(t, []int{0, 1, 2})
	b, _ := json.Marshal(r)
	cases := map[string][]byte{
		"empty":         nil,
		"trailing":      append(bytes.Clone(b), []byte(" {}")...),
		"unknown field": bytes.Replace(b, []byte(`"format"`), []byte(`"extra":1,"format"`), 1),
		"oversized":     make([]byte, MaxRecordSize+1),
		"bad did":       bytes.Replace(b, []byte(`did:key:z6Mk`), []byte(`did:key:z6MK`), 1),
	}
	for name, c := range cases {
		if _, err := ParseRecord(c); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
