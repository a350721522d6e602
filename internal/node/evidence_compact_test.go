package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/audit"
	"github.com/treaty-dev/treaty/internal/wire"
)

// entriesOf returns n's entries of kind, oldest first.
func entriesOf(t *testing.T, n *Node, kind string) []audit.Entry {
	t.Helper()
	es, err := n.audit.List(context.Background(), audit.Filter{Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// The caller keeps neither the signature base nor the receipt's request half
// twice, yet the whole signed receipt and the callee's checkpoint come back
// from its call.sent and call.completed entries and verify offline; the
// callee's call.served keeps the request so that its base comes back too.
func TestEvidenceKeptOnceAndRebuilt(t *testing.T) {
	caller, callee := pairNodes(t)
	ctx := context.Background()
	res, err := caller.Call(ctx, "callee", "echo", []byte(`{"q":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	sent, done := entriesOf(t, caller, audit.KindCallSent), entriesOf(t, caller, audit.KindCallCompleted)
	if len(sent) != 1 || len(done) != 1 {
		t.Fatalf("caller has %d call.sent and %d call.completed entries, want 1 and 1", len(sent), len(done))
	}
	for _, e := range []audit.Entry{sent[0], done[0]} {
		for _, dup := range []string{"signature_input", "request_base", "\\\"@method\\\""} {
			if bytes.Contains(e.Evidence, []byte(dup)) {
				t.Errorf("%s evidence keeps %s: %s", e.Kind, dup, e.Evidence)
			}
		}
	}
	receipt, note, err := receiptFromLog(caller.ID(), sent[0], done[0])
	if err != nil {
		t.Fatal(err)
	}
	if receipt != res.Receipt {
		t.Fatalf("rebuilt receipt differs from the one the call returned:\n got %+v\nwant %+v", receipt, res.Receipt)
	}
	if err := receipt.Verify(); err != nil {
		t.Fatalf("rebuilt receipt does not verify: %v", err)
	}
	if res.PeerAudit == nil || string(note) != res.PeerAudit.Checkpoint {
		t.Fatalf("rebuilt checkpoint note %q, want %+v", note, res.PeerAudit)
	}
	if _, err := audit.OpenCheckpoint(note, callee.ID()); err != nil {
		t.Fatalf("rebuilt checkpoint note: %v", err)
	}

	// Tampering with what is kept is caught.
	bad := sent[0]
	bad.Evidence = bytes.Replace(bad.Evidence, []byte(`"nonce":"`), []byte(`"nonce":"x`), 1)
	if _, _, err := receiptFromLog(caller.ID(), bad, done[0]); err == nil {
		t.Fatal("a changed nonce still rebuilt a receipt")
	}
	other := done[0]
	other.RequestDigest = make([]byte, 32)
	if _, _, err := receiptFromLog(caller.ID(), sent[0], other); err == nil {
		t.Fatal("entries of two calls made one receipt")
	}
	forged := done[0]
	forged.Evidence = bytes.Replace(forged.Evidence, []byte(`"status":200`), []byte(`"status":201`), 1)
	if r, _, err := receiptFromLog(caller.ID(), sent[0], forged); err == nil && r.Verify() == nil {
		t.Fatal("a receipt with a changed status verifies")
	}

	// The callee's call.served: the base comes back from the kept values.
	served := entriesOf(t, callee, audit.KindCallServed)
	if len(served) != 1 {
		t.Fatalf("callee has %d call.served entries", len(served))
	}
	var re requestEvidence
	if err := json.Unmarshal(served[0].Evidence, &re); err != nil {
		t.Fatal(err)
	}
	if re.Base != "" || re.Digest == "" {
		t.Fatalf("call.served keeps %s, want the compact form with the request's content digest", served[0].Evidence)
	}
	base := plainRequestBase(caller.ID(), callee.ID(), "echo", nil, re)
	if d := sha256.Sum256([]byte(base)); !bytes.Equal(d[:], served[0].RequestDigest) || base != res.Receipt.RequestBase {
		t.Fatalf("base rebuilt from call.served is not the signed one:\n%s", base)
	}
}

// A base that is not of the plain form (here a delegated call's, with a
// chain component) is kept whole, and entries written before the compact
// form (the whole receipt in call.completed) still give their receipt.
func TestEvidenceOtherForms(t *testing.T) {
	caller, callee := pairNodes(t)
	res, err := caller.Call(context.Background(), "callee", "echo", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Receipt
	odd := r.RequestBase + "\n"
	if _, ok := compactRequest(odd, r.RequestSignature, caller.ID(), callee.ID(), "echo", nil); ok {
		t.Fatal("a base of another form was compacted")
	}
	var re requestEvidence
	if err := json.Unmarshal(requestEvidenceJSON(odd, r.RequestSignature, caller.ID(), callee.ID(), "echo", nil), &re); err != nil || re.Base != odd {
		t.Fatalf("a base of another form is not kept whole: %+v %v", re, err)
	}
	chained := strings.Replace(r.RequestBase, `"treaty-capability"`, `"treaty-capability" "treaty-chain"`, 1)
	if _, ok := compactRequest(chained, r.RequestSignature, caller.ID(), callee.ID(), "echo", nil); ok {
		t.Fatal("a delegated base was compacted")
	}
	if rs := compactResponse(wire.Receipt{Callee: r.Callee, SignatureInput: r.SignatureInput + ";x=1"}); rs.SignatureInput == "" {
		t.Fatal("a Signature-Input of another form was compacted")
	}

	old, _ := json.Marshal(map[string]any{"receipt": r, "peer_audit": map[string]any{"index": 3, "checkpoint": "note"}})
	done := entriesOf(t, caller, audit.KindCallCompleted)[0]
	done.Evidence = old
	got, note, err := receiptFromLog(caller.ID(), entriesOf(t, caller, audit.KindCallSent)[0], done)
	if err != nil || got != r || string(note) != "note" {
		t.Fatalf("old-form entry: %+v %q %v", got, note, err)
	}
}
