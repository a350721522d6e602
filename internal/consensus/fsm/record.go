package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/treaty-dev/treaty/internal/identity"
)

// RecordFormat is the format field of a decision record.
const RecordFormat = "treaty-decision/v1"

// NoCertificateRaft is the statement a Raft record carries instead of a
// certificate: Raft members trust each other not to lie, so no member signs
// the decision and the record proves only who asked for it.
const NoCertificateRaft = "raft group: no quorum certificate exists; this record proves the proposer's signed request and membership, not that the group committed it"

// MaxRecordSize bounds the JSON a verifier reads.
const MaxRecordSize = 1 << 20

// Record is a self-contained, offline-verifiable account of one decision.
// Group is the definition in force when the entry was applied; Request is the
// proposer's signed request in wire form (empty for a tick).
type Record struct {
	Format        string        `json:"format"`
	Group         RecordGroup   `json:"group"`
	Index         uint64        `json:"index"`
	Time          int64         `json:"time"`
	Request       []byte        `json:"request"`
	Result        RecordResult  `json:"result"`
	Certificate   []Attestation `json:"certificate"`
	NoCertificate string        `json:"no_certificate,omitempty"`
}

// RecordGroup is a group definition in JSON.
type RecordGroup struct {
	ID      ID                   `json:"id"`
	Name    string               `json:"name"`
	Mode    Mode                 `json:"mode"`
	Epoch   uint64               `json:"epoch"`
	Members []identity.PublicKey `json:"members"`
	Nonce   string               `json:"nonce,omitempty"` // hex; absent for a group created without one
}

// RecordResult is Result in JSON.
type RecordResult struct {
	Code    Code      `json:"code"`
	Reason  string    `json:"reason"`
	Time    int64     `json:"time"`
	Version uint64    `json:"version"`
	Motion  string    `json:"motion"`
	Outcome Outcome   `json:"outcome"`
	Closed  []Closure `json:"closed"`
}

// Attestation is one member's signature over Statement.
type Attestation struct {
	Signer identity.PublicKey `json:"signer"`
	Sig    []byte             `json:"sig"`
}

const statementMagic = "treaty/consensus/decision/v1\x00"

// Statement is what a BFT member signs for the certificate: the group ID, the
// index, the entry's digest and the result's digest. Each member signs it
// after applying the entry itself, so the certificate attests the outcome as
// well as the order.
func Statement(group ID, index uint64, entry, result [32]byte) []byte {
	var w writer
	w.raw([]byte(statementMagic))
	w.raw(group[:])
	w.u64(index)
	w.raw(entry[:])
	w.raw(result[:])
	return w.b
}

// Attest is a member's certificate signature for the entry at index.
func Attest(k identity.PrivateKey, g Group, index uint64, e Entry, res Result) Attestation {
	return Attestation{Signer: k.Public(), Sig: k.Sign(Statement(g.ID(), index, e.Digest(), res.Digest()))}
}

// NewRecord assembles a record. g is the group before the entry applied; certs
// must be nil for Raft.
func NewRecord(g Group, index uint64, e Entry, res Result, certs []Attestation) Record {
	r := Record{
		Format:  RecordFormat,
		Group:   RecordGroup{ID: g.ID(), Name: g.Name, Mode: g.Mode, Epoch: g.Epoch, Members: g.Members, Nonce: g.Nonce.String()},
		Index:   index,
		Time:    e.Time,
		Request: e.Request,
		Result: RecordResult{Code: res.Code, Reason: res.Reason, Time: res.Time, Version: res.Version,
			Motion: res.Motion, Outcome: res.Outcome, Closed: res.Closed},
		Certificate: certs,
	}
	if g.Mode == ModeRaft {
		r.NoCertificate = NoCertificateRaft
	}
	return r
}

func (r Record) result() Result {
	x := r.Result
	return Result{Index: r.Index, Time: x.Time, Code: x.Code, Reason: x.Reason, Version: x.Version,
		Motion: x.Motion, Outcome: x.Outcome, Closed: x.Closed}
}

// verifyAttribution checks the request against the result: a request that
// decodes, names the group and carries a member's signature may have any
// result but one saying it could not be attributed; any other request must
// carry exactly the refusal every replica gave it (same code and reason, and
// nothing applied), since the group orders such requests too and refuses
// them, and a record of that refusal is honest.
func verifyAttribution(g Group, r Record) error {
	res := r.Result
	if len(r.Request) == 0 {
		if res.Code != CodeOK || res.Version != 0 || res.Motion != "" || res.Outcome != "" {
			return &VerifyError{"result", errors.New("an entry without a request (a tick) cannot have a request's result")}
		}
		return nil
	}
	q, code, reason := attribute(g, r.Request, true)
	if code == CodeOK {
		if res.Code.Unattributed() {
			return &VerifyError{"result", fmt.Errorf("the request is %s's, validly signed for this group, but the result says %s", q.Proposer, res.Code)}
		}
		return nil
	}
	check := map[Code]string{CodeMalformed: "request", CodeWrongGroup: "request", CodeNotMember: "membership", CodeBadSignature: "signature"}[code]
	switch {
	case res.Code != code:
		return &VerifyError{check, fmt.Errorf("%s, but the result says %q, not %s", reason, res.Code, code)}
	case res.Reason != reason:
		return &VerifyError{check, fmt.Errorf("%s, but the result gives another reason (%+q)", reason, res.Reason)}
	case res.Version != 0 || res.Motion != "" || res.Outcome != "":
		return &VerifyError{"result", fmt.Errorf("a request refused as %s applied nothing, but the result names a version, motion or outcome", code)}
	}
	return nil
}

// VerifyError says which check of a record failed.
type VerifyError struct {
	Check string // "format", "group", "request", "signature", "membership", "result", "certificate"
	Err   error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("fsm: decision record: %s: %v", e.Check, e.Err)
}
func (e *VerifyError) Unwrap() error { return e.Err }

// ParseRecord decodes a record strictly: one JSON object of at most
// MaxRecordSize bytes, no unknown fields, nothing after it.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxRecordSize {
		return r, &VerifyError{"format", fmt.Errorf("%d bytes, limit %d", len(b), MaxRecordSize)}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Record{}, &VerifyError{"format", err}
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return Record{}, &VerifyError{"format", errors.New("data after the record")}
	}
	return r, nil
}

// Verify checks a record offline: the group definition hashes to its ID; the
// request decodes, names that group, was made by a member and carries that
// member's valid signature, or else the result is exactly the refusal the
// group gives such a request (an honest group orders and refuses it: a
// request signed for an epoch that ended while it waited, a forgery a lying
// member sent); and, for BFT, the certificate holds at least
// Quorum distinct members' valid signatures over Statement, which binds the
// entry (time and request) and the result. A Raft record must carry no
// certificate and the NoCertificateRaft statement; its result is not
// attested by anyone, and Verify says so only through that statement.
func Verify(r Record) error {
	if r.Format != RecordFormat {
		return &VerifyError{"format", fmt.Errorf("format %q, want %q", r.Format, RecordFormat)}
	}
	g, err := NewGroup(r.Group.Name, r.Group.Mode, r.Group.Epoch, r.Group.Members)
	if err != nil {
		return &VerifyError{"group", err}
	}
	if g.Nonce, err = ParseNonce(r.Group.Nonce); err != nil {
		return &VerifyError{"group", err}
	}
	if g.ID() != r.Group.ID {
		return &VerifyError{"group", fmt.Errorf("definition hashes to %s, record says %s", g.ID(), r.Group.ID)}
	}
	if r.Index == 0 {
		return &VerifyError{"format", errors.New("index 0")}
	}
	if err := verifyAttribution(g, r); err != nil {
		return err
	}
	switch g.Mode {
	case ModeRaft:
		if len(r.Certificate) != 0 {
			return &VerifyError{"certificate", errors.New("a raft record carries no certificate")}
		}
		if r.NoCertificate != NoCertificateRaft {
			return &VerifyError{"certificate", errors.New("raft record lacks the no-certificate statement")}
		}
		return nil
	}
	if r.NoCertificate != "" {
		return &VerifyError{"certificate", errors.New("a bft record must not claim to have no certificate")}
	}
	e := Entry{Time: r.Time, Request: r.Request}
	stmt := Statement(g.ID(), r.Index, e.Digest(), r.result().Digest())
	seen := map[identity.PublicKey]bool{}
	for i, a := range r.Certificate {
		switch {
		case !g.IsMember(a.Signer):
			return &VerifyError{"membership", fmt.Errorf("certificate signer %d (%s) is not a member", i, a.Signer)}
		case seen[a.Signer]:
			return &VerifyError{"certificate", fmt.Errorf("signer %s appears twice", a.Signer)}
		case !a.Signer.Verify(stmt, a.Sig):
			return &VerifyError{"certificate", fmt.Errorf("signature %d is not %s's", i, a.Signer)}
		}
		seen[a.Signer] = true
	}
	if len(seen) < g.Quorum() {
		return &VerifyError{"certificate", fmt.Errorf("%d valid signatures, need %d (n=%d, f=%d)", len(seen), g.Quorum(), g.N(), g.F())}
	}
	return nil
}
