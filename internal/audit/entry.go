package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// Kinds of entries that treaty writes. Kind is free text (at most maxShort bytes);
// these are the names the rest of treaty uses.
const (
	KindCallSent         = "call.sent"
	KindCallServed       = "call.served"
	KindCallCompleted    = "call.completed"
	KindCallRefused      = "call.refused"
	KindHandshakeRefused = "handshake.refused"
	KindPolicyChanged    = "policy.changed"
	KindTrustLevel       = "trust.level"
	KindFork             = "audit.fork" // written by Witness.Observe
)

// Kinds of consensus groups' entries (internal/node/groups.go writes them).
const (
	KindDecision      = "decision"       // an entry a consensus group committed, on each member
	KindGroupEvidence = "group.evidence" // a group member's misbehaviour an engine detected
	KindGroupRefused  = "group.refused"  // a group proposal refused before it left the node
)

// Kinds lists every kind treaty writes, for filters that must name one.
func Kinds() []string {
	return append([]string{KindCallSent, KindCallServed, KindCallCompleted, KindCallRefused, KindHandshakeRefused,
		KindPolicyChanged, KindTrustLevel, KindFork, KindPruned, KindHighWater,
		KindDecision, KindGroupEvidence, KindGroupRefused}, append(admissionKinds(), witnessKinds()...)...) // kinds_admission.go, gap.go
}

// Size limits of one entry. Append rejects larger fields with ErrInvalidEntry.
const (
	maxShort   = 1024     // Kind, Peer, Direction, Capability, Outcome, Stage
	maxDigest  = 64       // RequestDigest, ResponseDigest
	maxRaw     = 1 << 20  // Report, Evidence (compacted JSON)
	maxContent = 16 << 20 // Content
)

// Entry is one action that crossed the trust boundary. Callers fill every field
// but Index and Time, which Append assigns. Content must already be sanitized:
// the log keeps what it is given, forever or until Prune drops it.
type Entry struct {
	Index      uint64    // position in the log, from 0; set by Append
	Time       time.Time // commit time of the entry's batch (UTC, ns); set by Append
	Kind       string    // KindCallSent, ...; required
	Peer       string    // the peer's did:key, or "" when no peer is involved
	Direction  string    // "in", "out" or ""
	Capability string
	Outcome    string // "ok", "refused", "failed", ...
	Stage      string // the stage that refused, when Outcome is "refused"

	RequestDigest  []byte          // at most 64 bytes
	ResponseDigest []byte          // at most 64 bytes
	Report         json.RawMessage // sanitizer report (never values); nil or valid JSON
	// Content is the sanitized content, or nil when only its digest is kept.
	// Get and List return nil for content removed by Prune. Append keeps
	// Content, not a copy, until the entry is written: the caller must not
	// change it after handing it over (one copy fewer per call; the node
	// hands over a fresh copy of each call's sanitized bytes).
	Content []byte
	// ContentDigest is SHA-256(Content). Append computes it when nil and Content
	// is set, and rejects a mismatch. With Content nil it may still be set: the
	// log then keeps only the digest.
	ContentDigest []byte
	Evidence      json.RawMessage // signed request, receipt or peer checkpoint; nil or valid JSON
	// ContentKept is set by Get, List and ParseLeaf: the content was stored
	// with the entry (with Content nil, a recorded pruning dropped it since).
	// Append ignores it.
	ContentKept bool
}

// ErrInvalidEntry is wrapped by Append's error for an entry it refuses to log.
var ErrInvalidEntry = errors.New("audit: invalid entry")

// Leaf encoding.
//
// A leaf is the exact byte string hashed into the Merkle tree (RFC 6962
// leaf hash: SHA-256(0x00 || leaf)). It is one line of JSON with a fixed key
// order and no insignificant whitespace:
//
//	{"v":2,"index":N,"time":"2006-01-02T15:04:05.000000000Z","content_digest":"HEX",
//	 "content_kept":B,"kind":S,"peer":S,"direction":S,"capability":S,"outcome":S,
//	 "stage":S,"request_digest":"HEX","response_digest":"HEX","report":R,"evidence":R}
//
// (shown wrapped). Strings are escaped as by encodeString; digests are lowercase
// hex ("" when absent); B is true when the content was stored with the entry;
// R is the compacted JSON given by the caller, or null. The leaf carries its
// own index, so moving a row to another index changes its hash; it carries the
// content's digest, not the content, so Prune can drop the content and every
// proof stays valid; and it says whether content was kept, so content removed
// outside a recorded pruning is caught. Version 1 leaves (written before
// content_kept existed) are the same without that key; they are still read.
const (
	leafVersionPrefix = `{"v":2,"index":`
	leafV1Prefix      = `{"v":1,"index":`
	timeLayout        = "2006-01-02T15:04:05.000000000Z"
	timeLen           = len(timeLayout)
)

// formatTime renders t in the fixed-width UTC layout the leaf and the time
// column use; it sorts as text.
func formatTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 1970 || y > 9999 {
		return "", fmt.Errorf("audit: time %v outside years [1970, 9999]", t)
	}
	return t.Format(timeLayout), nil
}

// prepared is an entry validated and encoded by the caller's goroutine; only the
// index and time are left for the writer to fill in.
type prepared struct {
	body     []byte // leaf bytes after the time field: `"content_digest":...}`
	content  []byte // nil when only the digest is kept
	peerKey  string // the peer_key column (store.go)
	rareKind any    // the rare_kind column: the kind, or nil for the call kinds
}

// prepare validates e and encodes everything in its (version 2) leaf but the
// index and time.
func prepare(e Entry) (prepared, error) { return prepareLeaf(e, 2, e.Content != nil) }

// prepareLeaf is prepare for a leaf of version v (1 or 2) whose content_kept is
// kept (ParseLeaf re-encodes leaves it has read).
func prepareLeaf(e Entry, v int, kept bool) (prepared, error) {
	fail := func(format string, args ...any) (prepared, error) {
		return prepared{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidEntry}, args...)...)
	}
	if e.Kind == "" {
		return fail("Kind is empty")
	}
	for _, f := range []struct{ name, v string }{
		{"Kind", e.Kind}, {"Peer", e.Peer}, {"Direction", e.Direction},
		{"Capability", e.Capability}, {"Outcome", e.Outcome}, {"Stage", e.Stage},
	} {
		if len(f.v) > maxShort {
			return fail("%s is %d bytes, at most %d", f.name, len(f.v), maxShort)
		}
		if !utf8.ValidString(f.v) {
			return fail("%s is not valid UTF-8", f.name)
		}
	}
	switch e.Direction {
	case "in", "out", "":
	default:
		return fail("Direction %q is not \"in\", \"out\" or \"\"", e.Direction)
	}
	if len(e.RequestDigest) > maxDigest || len(e.ResponseDigest) > maxDigest {
		return fail("a request or response digest is longer than %d bytes", maxDigest)
	}
	if len(e.Content) > maxContent {
		return fail("Content is %d bytes, at most %d", len(e.Content), maxContent)
	}
	digest := e.ContentDigest
	if e.Content != nil {
		sum := sha256.Sum256(e.Content)
		if digest == nil {
			digest = sum[:]
		} else if !bytes.Equal(digest, sum[:]) {
			return fail("ContentDigest is not SHA-256 of Content")
		}
	} else if digest != nil && len(digest) != sha256.Size {
		return fail("ContentDigest is %d bytes, want %d (SHA-256)", len(digest), sha256.Size)
	}
	if kept && len(digest) == 0 {
		return fail("content kept without a content digest")
	}
	report, err := compactRaw(e.Report)
	if err != nil {
		return fail("Report: %v", err)
	}
	evidence, err := compactRaw(e.Evidence)
	if err != nil {
		return fail("Evidence: %v", err)
	}

	// Room for the whole body when no string needs escaping (the usual case):
	// the keys and quotes take under 256 bytes, a digest twice its length in
	// hex. A short estimate doubled the buffer on every call.
	b := make([]byte, 0, 256+2*(len(digest)+len(e.RequestDigest)+len(e.ResponseDigest))+
		len(e.Kind)+len(e.Peer)+len(e.Direction)+len(e.Capability)+len(e.Outcome)+len(e.Stage)+len(report)+len(evidence))
	b = append(b, `"content_digest":"`...)
	b = hex.AppendEncode(b, digest)
	b = append(b, '"')
	if v == 2 {
		b = append(b, `,"content_kept":`...)
		b = strconv.AppendBool(b, kept)
	}
	b = append(b, `,"kind":`...)
	b = encodeString(b, e.Kind)
	b = append(b, `,"peer":`...)
	b = encodeString(b, e.Peer)
	b = append(b, `,"direction":`...)
	b = encodeString(b, e.Direction)
	b = append(b, `,"capability":`...)
	b = encodeString(b, e.Capability)
	b = append(b, `,"outcome":`...)
	b = encodeString(b, e.Outcome)
	b = append(b, `,"stage":`...)
	b = encodeString(b, e.Stage)
	b = append(b, `,"request_digest":"`...)
	b = hex.AppendEncode(b, e.RequestDigest)
	b = append(b, `","response_digest":"`...)
	b = hex.AppendEncode(b, e.ResponseDigest)
	b = append(b, `","report":`...)
	b = appendRaw(b, report)
	b = append(b, `,"evidence":`...)
	b = appendRaw(b, evidence)
	b = append(b, '}')
	var rare any
	if isRareKind(e.Kind) {
		rare = e.Kind
	}
	return prepared{body: b, content: e.Content, peerKey: string(peerKey([]byte(e.Peer))), rareKind: rare}, nil
}

// leafBytes assembles the full version 2 leaf for index and the formatted time.
func leafBytes(dst []byte, index uint64, ts string, body []byte) []byte {
	return leafBytesV(dst, leafVersionPrefix, index, ts, body)
}

func leafBytesV(dst []byte, prefix string, index uint64, ts string, body []byte) []byte {
	dst = append(dst, prefix...)
	dst = strconv.AppendUint(dst, index, 10)
	dst = append(dst, `,"time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `",`...)
	return append(dst, body...)
}

// compactRaw checks raw JSON and removes insignificant whitespace, so the leaf
// stays one line. A JSON null becomes nil.
func compactRaw(raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	if len(raw) > maxRaw {
		return nil, fmt.Errorf("%d bytes, at most %d", len(raw), maxRaw)
	}
	valid, compact := jsonsyntax.ValidCompact(raw)
	if !valid || !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8 JSON")
	}
	if compact {
		// json.Marshal's output, the usual case: nothing to compact.
		if bytes.Equal(raw, []byte("null")) {
			return nil, nil
		}
		return raw, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		return nil, nil
	}
	return buf.Bytes(), nil
}

func appendRaw(dst, raw []byte) []byte {
	if raw == nil {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

// encodeString appends s as a JSON string. It escapes only what JSON requires
// ('"', '\\' and bytes below 0x20), so the encoding is a pure function of s and
// decodes back to s. s must be valid UTF-8.
func encodeString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// leafJSON mirrors the leaf encoding for decoding.
type leafJSON struct {
	V              int             `json:"v"`
	Index          uint64          `json:"index"`
	Time           string          `json:"time"`
	ContentDigest  string          `json:"content_digest"`
	ContentKept    *bool           `json:"content_kept"`
	Kind           string          `json:"kind"`
	Peer           string          `json:"peer"`
	Direction      string          `json:"direction"`
	Capability     string          `json:"capability"`
	Outcome        string          `json:"outcome"`
	Stage          string          `json:"stage"`
	RequestDigest  string          `json:"request_digest"`
	ResponseDigest string          `json:"response_digest"`
	Report         json.RawMessage `json:"report"`
	Evidence       json.RawMessage `json:"evidence"`
}

// ParseLeaf decodes leaf bytes (as exported by Prove) into an Entry without
// content. It accepts only the canonical encoding: re-encoding the result must
// give back exactly leaf.
func ParseLeaf(leaf []byte) (Entry, error) {
	var lj leafJSON
	dec := json.NewDecoder(bytes.NewReader(leaf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lj); err != nil {
		return Entry{}, fmt.Errorf("audit: leaf: %w", err)
	}
	if lj.V != 1 && lj.V != 2 {
		return Entry{}, fmt.Errorf("audit: leaf version %d, want 1 or 2", lj.V)
	}
	if (lj.V == 2) != (lj.ContentKept != nil) {
		return Entry{}, errors.New("audit: leaf content_kept is required in version 2 and only there")
	}
	t, err := time.Parse(timeLayout, lj.Time)
	if err != nil || len(lj.Time) != timeLen {
		return Entry{}, fmt.Errorf("audit: leaf time %q is not in the %s layout", lj.Time, timeLayout)
	}
	e := Entry{
		Index: lj.Index, Time: t, Kind: lj.Kind, Peer: lj.Peer, Direction: lj.Direction,
		Capability: lj.Capability, Outcome: lj.Outcome, Stage: lj.Stage,
	}
	for _, f := range []struct {
		dst *[]byte
		s   string
	}{{&e.ContentDigest, lj.ContentDigest}, {&e.RequestDigest, lj.RequestDigest}, {&e.ResponseDigest, lj.ResponseDigest}} {
		if f.s == "" {
			continue
		}
		b, err := hex.DecodeString(f.s)
		if err != nil {
			return Entry{}, fmt.Errorf("audit: leaf digest: %w", err)
		}
		*f.dst = b
	}
	if !bytes.Equal(lj.Report, []byte("null")) {
		e.Report = lj.Report
	}
	if !bytes.Equal(lj.Evidence, []byte("null")) {
		e.Evidence = lj.Evidence
	}
	// Canonical only: a leaf that decodes but does not re-encode to itself is not
	// one this package wrote.
	prefix, kept := leafV1Prefix, false
	if lj.V == 2 {
		prefix, kept = leafVersionPrefix, *lj.ContentKept
		e.ContentKept = kept
	}
	p, err := prepareLeaf(e, lj.V, kept)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: leaf: %w", err)
	}
	if !bytes.Equal(leafBytesV(nil, prefix, e.Index, lj.Time, p.body), leaf) {
		return Entry{}, errors.New("audit: leaf is not in canonical form")
	}
	return e, nil
}

// entryJSON is the export and `ls --json` form of an Entry: digests in hex,
// content in base64, report and evidence as JSON.
type entryJSON struct {
	Index          uint64          `json:"index"`
	Time           string          `json:"time"`
	Kind           string          `json:"kind"`
	Peer           string          `json:"peer"`
	Direction      string          `json:"direction"`
	Capability     string          `json:"capability"`
	Outcome        string          `json:"outcome"`
	Stage          string          `json:"stage"`
	RequestDigest  string          `json:"request_digest"`
	ResponseDigest string          `json:"response_digest"`
	ContentDigest  string          `json:"content_digest"`
	Report         json.RawMessage `json:"report"`
	Content        []byte          `json:"content"`
	Evidence       json.RawMessage `json:"evidence"`
}

// MarshalJSON renders e with hex digests, base64 content and RFC 3339 time.
func (e Entry) MarshalJSON() ([]byte, error) {
	j := entryJSON{
		Index: e.Index, Time: e.Time.UTC().Format(time.RFC3339Nano), Kind: e.Kind, Peer: e.Peer,
		Direction: e.Direction, Capability: e.Capability, Outcome: e.Outcome, Stage: e.Stage,
		RequestDigest:  hex.EncodeToString(e.RequestDigest),
		ResponseDigest: hex.EncodeToString(e.ResponseDigest),
		ContentDigest:  hex.EncodeToString(e.ContentDigest),
		Report:         e.Report, Content: e.Content, Evidence: e.Evidence,
	}
	return json.Marshal(j)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return fmt.Errorf("audit: entry time: %w", err)
	}
	out := Entry{
		Index: j.Index, Time: t.UTC(), Kind: j.Kind, Peer: j.Peer, Direction: j.Direction,
		Capability: j.Capability, Outcome: j.Outcome, Stage: j.Stage,
		Report: j.Report, Content: j.Content, Evidence: j.Evidence,
	}
	for _, f := range []struct {
		dst *[]byte
		s   string
	}{{&out.RequestDigest, j.RequestDigest}, {&out.ResponseDigest, j.ResponseDigest}, {&out.ContentDigest, j.ContentDigest}} {
		if f.s == "" {
			continue
		}
		if *f.dst, err = hex.DecodeString(f.s); err != nil {
			return fmt.Errorf("audit: entry digest: %w", err)
		}
	}
	if bytes.Equal(out.Report, []byte("null")) {
		out.Report = nil
	}
	if bytes.Equal(out.Evidence, []byte("null")) {
		out.Evidence = nil
	}
	*e = out
	return nil
}
