package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/treaty-dev/treaty/internal/wire"
)

// The server's call answer is byte for byte the JSON of CallResponse, which
// clients decode.
func TestCallAnswerIsCallResponse(t *testing.T) {
	r := wire.Receipt{Version: wire.Tag, Caller: "did:key:z6MkA", Callee: "did:key:z6MkB",
		RequestBase: "\"@method\": POST\n\"@signature-params\": (\"@method\")", RequestSignature: "treaty=:AAAA:",
		Status: 200, ContentDigest: "sha-256=:BBBB:", SignatureInput: "treaty=(\"@status\");created=1", Signature: "treaty=:CCCC:"}
	out := json.RawMessage(`{"echo":"<tag> & \u2028"}`)
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(CallResponse{Output: out, Receipt: raw, ElapsedMS: 1.25})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(callAnswer{Output: out, Receipt: r, ElapsedMS: 1.25})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("call answer\n%s\nwant\n%s", got, want)
	}
}
