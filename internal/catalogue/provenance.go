package catalogue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"unicode"

	"github.com/treaty-dev/treaty/client"
	"github.com/treaty-dev/treaty/localapi"
)

// Trust is the node's trust in a peer, as the bridges last read it.
type Trust struct {
	Level       string  `json:"level"`
	Score       float64 `json:"score"`
	Quarantined bool    `json:"quarantined,omitempty"`
}

// AuditRef locates a finished call in the node's audit log.
type AuditRef struct {
	// Index is the call.completed entry, which holds the receipt.
	Index uint64 `json:"index"`
	// SentIndex is the call.sent entry.
	SentIndex uint64 `json:"sent_index"`
	// Report is the call.sent entry's report: the sanitizer's report for
	// what was sent (what it found and did, never the values).
	Report json.RawMessage `json:"report,omitempty"`
}

// Marking reports whether out is content the node's screen marked untrusted
// and, for the JSON wrapper, the screen's verdict.
func Marking(out []byte) (bool, json.RawMessage) {
	t := bytes.TrimSpace(out)
	if len(t) == 0 {
		return false, nil
	}
	switch t[0] {
	case '{':
		var env struct {
			U *struct {
				Verdict json.RawMessage `json:"verdict"`
			} `json:"treaty_untrusted"`
		}
		if json.Unmarshal(t, &env) == nil && env.U != nil {
			return true, env.U.Verdict
		}
	case '"':
		var s string
		if json.Unmarshal(t, &s) == nil && strings.HasPrefix(s, "[treaty:untrusted ") {
			return true, nil
		}
	}
	return false, nil
}

// RequestDigest is the audit log's reference of a receipt's request: hex
// SHA-256 of its signature base, or "" when the receipt has none.
func RequestDigest(receipt json.RawMessage) string {
	var rc struct {
		RequestBase string `json:"request_base"`
	}
	if json.Unmarshal(receipt, &rc) != nil || rc.RequestBase == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(rc.RequestBase))
	return hex.EncodeToString(sum[:])
}

// Clean makes peer text fit to show an agent: control and format characters
// (except newline and tab) are dropped, invalid UTF-8 replaced, and s cut to
// max bytes on a rune boundary.
func Clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= max {
		return strings.TrimSpace(s)
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return strings.TrimSpace(s[:cut]) + " [cut]"
}

// ErrorBody turns an error from the node into what a refusal shows the agent.
func ErrorBody(err error) *localapi.ErrorBody {
	var r *localapi.Error
	if errors.As(err, &r) {
		return &localapi.ErrorBody{Stage: r.Stage, Reason: r.Reason, Remote: r.Remote}
	}
	if errors.Is(err, client.ErrNotRunning) {
		return &localapi.ErrorBody{Stage: localapi.StageInternal, Reason: "the treaty node is not running for this home (start it with 'treaty run')"}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &localapi.ErrorBody{Stage: localapi.StageTransport, Reason: "no answer in time: " + err.Error()}
	}
	return &localapi.ErrorBody{Stage: localapi.StageInternal, Reason: err.Error()}
}

// Provenance says where a result came from and what the node did to it.
type Provenance struct {
	PeerID   string `json:"peer_id"`
	PeerName string `json:"peer,omitempty"`
	// Trust is this node's trust in the peer as of the last poll, when known.
	Trust *Trust `json:"trust,omitempty"`
	// Receipt is the callee's signed receipt of this exact request.
	Receipt json.RawMessage `json:"receipt,omitempty"`
	// AuditRequestDigest is hex SHA-256 of the request's signature base:
	// the request digest of this call's entries in the node's audit log.
	AuditRequestDigest string `json:"audit_request_digest,omitempty"`
	// Audit locates the call's entries in the audit log, when found.
	Audit *AuditRef `json:"audit,omitempty"`
	// Untrusted is set when the node's screen marked the output; Screen is
	// its verdict when the marking carries one.
	Untrusted bool            `json:"untrusted,omitempty"`
	Screen    json.RawMessage `json:"screen,omitempty"`
	ElapsedMS float64         `json:"elapsed_ms,omitempty"`
	Events    int             `json:"events,omitempty"`    // stream events received
	Truncated bool            `json:"truncated,omitempty"` // events beyond the bounds were not kept
}

// AuditFunc finds a finished call's entries in the node's audit log by the
// peer's ID and the request digest (hex); nil, nil when they are not there.
type AuditFunc func(ctx context.Context, peerID, requestDigest string) (*AuditRef, error)

// CallProvenance is the provenance of resp, a call to e: its receipt, the
// screen's marking of its output and, when audit is set, where the call's
// entries are in the audit log (a failed lookup is logged, not fatal).
func CallProvenance(ctx context.Context, e Entry, trust *Trust, resp *localapi.CallResponse, audit AuditFunc, log *slog.Logger) Provenance {
	p := Provenance{PeerID: e.PeerID, PeerName: e.PeerName, Trust: trust, Receipt: resp.Receipt,
		ElapsedMS: resp.ElapsedMS, AuditRequestDigest: RequestDigest(resp.Receipt)}
	p.Untrusted, p.Screen = Marking(resp.Output)
	if audit != nil && p.AuditRequestDigest != "" {
		ref, err := audit(ctx, e.PeerID, p.AuditRequestDigest)
		if err != nil {
			log.Warn("cannot find the call in the audit log", "err", err)
		}
		p.Audit = ref
	}
	return p
}

// Event counts one stream event and carries its screen marking over.
func (p *Provenance) Event(ev []byte) {
	p.Events++
	if u, v := Marking(ev); u {
		p.Untrusted = true
		if v != nil {
			p.Screen = v
		}
	}
}
