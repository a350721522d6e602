package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// refusedEntry is an honest entry the group refused, and the state it was
// applied in.
type refusedEntry struct {
	name string
	code Code
	req  func(d *driver, ks []identity.PrivateKey) []byte
}

// refusedEntries covers every refusal code an ordered request can get.
func refusedEntries(t *testing.T) []refusedEntry {
	outsider := key(t, 77)
	next := func(d *driver, k identity.PrivateKey, op Op) []byte {
		d.seq[k.Public()]++
		return signed(t, k, d.m.Group().ID(), d.seq[k.Public()], op)
	}
	return []refusedEntry{
		{"malformed", CodeMalformed, func(*driver, []identity.PrivateKey) []byte { return []byte("not a request") }},
		{"stale epoch", CodeWrongGroup, func(d *driver, ks []identity.PrivateKey) []byte {
			old := d.m.Group().ID()
			mo := must(t, d.do(ks[0], RemoveMember(ks[3].Public(), 0, ""))).Motion
			for _, k := range ks[:3] {
				must(t, d.do(k, Vote(mo, true)))
			}
			if d.m.Group().IsMember(ks[3].Public()) {
				t.Fatal("removal did not pass")
			}
			return signed(t, ks[1], old, 99, Put("k", []byte("v")))
		}},
		{"other group", CodeWrongGroup, func(_ *driver, ks []identity.PrivateKey) []byte {
			return signed(t, ks[1], ID{7}, 1, Put("k", []byte("v")))
		}},
		{"not a member", CodeNotMember, func(d *driver, _ []identity.PrivateKey) []byte {
			return signed(t, outsider, d.m.Group().ID(), 1, Put("k", []byte("v")))
		}},
		{"bad signature", CodeBadSignature, func(d *driver, ks []identity.PrivateKey) []byte {
			b := next(d, ks[1], Put("k", []byte("v")))
			b[len(b)-1] ^= 1
			return b
		}},
		{"replay", CodeReplay, func(d *driver, ks []identity.PrivateKey) []byte {
			b := next(d, ks[1], Put("k", []byte("v")))
			d.raw(b)
			return b
		}},
		{"cas mismatch", CodeCASMismatch, func(d *driver, ks []identity.PrivateKey) []byte {
			return next(d, ks[1], CAS("k", []byte("v"), 3))
		}},
		{"delete absent", CodeNotFound, func(d *driver, ks []identity.PrivateKey) []byte {
			return next(d, ks[1], Delete("absent"))
		}},
		{"store bound", CodeInvalid, func(d *driver, ks []identity.PrivateKey) []byte {
			d.m.lim.keys = 1
			d.do(ks[0], Put("first", nil))
			return next(d, ks[1], Put("second", []byte("v")))
		}},
		{"vote on closed", CodeClosed, func(d *driver, ks []identity.PrivateKey) []byte {
			d.do(ks[0], OpenMotion("done", 1, 0, ""))
			d.do(ks[0], Vote("done", true))
			return next(d, ks[1], Vote("done", true))
		}},
		{"second vote", CodeAlreadyVoted, func(d *driver, ks []identity.PrivateKey) []byte {
			d.do(ks[0], OpenMotion("open", 4, 0, ""))
			d.do(ks[1], Vote("open", true))
			return next(d, ks[1], Vote("open", false))
		}},
	}
}

// refusedRecord applies c's request in a fresh 4-member group of mode and
// returns its record (BFT: certified by three members) after a JSON round trip.
func refusedRecord(t *testing.T, mode Mode, c refusedEntry) (Record, []identity.PrivateKey) {
	t.Helper()
	ks := keys(t, 4)
	d := newDriver(t, group(t, mode, ks))
	req := c.req(d, ks)
	g := d.m.Group()
	d.index++
	e := Entry{Time: d.now + 1, Request: req}
	res := d.m.Apply(d.index, e)
	wantCode(t, res, c.code)
	var certs []Attestation
	if mode == ModeBFT {
		for _, k := range ks[:3] {
			if g.IsMember(k.Public()) {
				certs = append(certs, Attest(k, g, d.index, e, res))
			}
		}
	}
	return roundTrip(t, NewRecord(g, d.index, e, res, certs)), ks
}

// TestRefusedRecordsVerify: the record of every entry an honest group
// refused verifies, in both modes, whatever the refusal.
func TestRefusedRecordsVerify(t *testing.T) {
	for _, mode := range []Mode{ModeRaft, ModeBFT} {
		for _, c := range refusedEntries(t) {
			t.Run(string(mode)+"/"+c.name, func(t *testing.T) {
				r, _ := refusedRecord(t, mode, c)
				if err := Verify(r); err != nil {
					t.Fatalf("honest record of a %s refusal: %v", c.code, err)
				}
			})
		}
	}
}

// TestRefusedRecordsAlteredReject: a record of a request the group could not
// attribute to a member must say exactly why it was refused; one that claims
// another result, or claims the request was applied, is refused.
func TestRefusedRecordsAlteredReject(t *testing.T) {
	edits := map[string]func(r *Record, ks []identity.PrivateKey){
		"claims applied":    func(r *Record, _ []identity.PrivateKey) { r.Result.Code, r.Result.Reason = CodeOK, "" },
		"other code":        func(r *Record, _ []identity.PrivateKey) { r.Result.Code = CodeInvalid },
		"altered reason":    func(r *Record, _ []identity.PrivateKey) { r.Result.Reason += "!" },
		"altered outcome":   func(r *Record, _ []identity.PrivateKey) { r.Result.Outcome = OutcomePassed },
		"altered version":   func(r *Record, _ []identity.PrivateKey) { r.Result.Version = 1 },
		"altered motion":    func(r *Record, _ []identity.PrivateKey) { r.Result.Motion = "merge" },
		"truncated request": func(r *Record, _ []identity.PrivateKey) { r.Request = r.Request[:len(r.Request)-1] },
		"request dropped":   func(r *Record, _ []identity.PrivateKey) { r.Request = nil },
		"wrong signer": func(r *Record, _ []identity.PrivateKey) {
			o := key(t, 78)
			if len(r.Certificate) > 0 {
				r.Certificate[0] = Attestation{Signer: o.Public(), Sig: r.Certificate[0].Sig}
			} else {
				r.Certificate = []Attestation{{Signer: o.Public(), Sig: make([]byte, 64)}}
			}
		},
	}
	for _, mode := range []Mode{ModeRaft, ModeBFT} {
		for _, c := range refusedEntries(t) {
			// A Raft record of an attributable refusal is the exporting
			// node's word (no certificate); a BFT one is certified.
			if mode == ModeRaft && !c.code.Unattributed() {
				continue
			}
			for name, edit := range edits {
				t.Run(string(mode)+"/"+c.name+"/"+name, func(t *testing.T) {
					r, ks := refusedRecord(t, mode, c)
					before, _ := json.Marshal(r)
					edit(&r, ks)
					if after, _ := json.Marshal(r); bytes.Equal(before, after) {
						t.Skip("edit changed nothing")
					}
					if mode == ModeRaft && c.code == CodeMalformed && name == "truncated request" {
						// Other garbage, refused for the same reason: a Raft
						// record of bytes nobody signed proves nothing either way.
						t.Skip("no one is bound by a raft record of garbage")
					}
					var ve *VerifyError
					if err := Verify(r); !errors.As(err, &ve) {
						t.Fatalf("altered record verified (err %v)", err)
					}
				})
			}
		}
	}
}

// TestAppliedRecordClaimingRefusalRejects: a member's valid request cannot be
// passed off as unattributable (so that its proposer could deny it).
func TestAppliedRecordClaimingRefusalRejects(t *testing.T) {
	ks := keys(t, 3)
	d := newDriver(t, group(t, ModeRaft, ks))
	g := d.m.Group()
	e := Entry{Time: 5, Request: signed(t, ks[1], g.ID(), 1, Put("k", []byte("v")))}
	res := must(t, d.m.Apply(1, e))
	for _, c := range []Code{CodeMalformed, CodeWrongGroup, CodeNotMember, CodeBadSignature} {
		r := roundTrip(t, NewRecord(g, 1, e, res, nil))
		r.Result.Code, r.Result.Reason = c, "forged"
		var ve *VerifyError
		if err := Verify(r); !errors.As(err, &ve) || ve.Check != "result" {
			t.Errorf("%s claimed for a valid request: Verify = %v, want a result failure", c, err)
		}
	}
}
