package api

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
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

// randomText mixes what json.Marshal escapes (quotes, backslashes, control
// bytes, HTML characters, U+2028 and U+2029, bytes that are not UTF-8) with
// plain ASCII and multi-byte runes.
func randomText(r *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", `"`, `\`, "\n", "\t", "\x00", "\x1f", "\x7f", "<", ">", "&", "é", "日", "😀",
		"\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", `\u0041`, "did:key:z6Mk", "\"@method\": POST\n"}
	var s strings.Builder
	for range r.IntN(40) {
		s.WriteString(pieces[r.IntN(len(pieces))])
	}
	return s.String()
}

// randomOutput is JSON (sometimes spaced, sometimes not JSON at all) holding
// randomText strings.
func randomOutput(r *rand.Rand) json.RawMessage {
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		return json.RawMessage(randomText(r)) // mostly not JSON
	}
	v := map[string]any{"s": randomText(r), "n": r.NormFloat64(), "l": []any{randomText(r), true, nil}}
	b, _ := json.Marshal(v)
	if r.IntN(2) == 0 {
		var buf bytes.Buffer
		json.Indent(&buf, b, " ", "\t")
		b = buf.Bytes()
	}
	if r.IntN(3) == 0 { // unescaped HTML and separators, as a peer may send them
		b = bytes.ReplaceAll(b, []byte(`\u003c`), []byte("<"))
		b = bytes.ReplaceAll(b, []byte(`\u2028`), []byte("\u2028"))
	}
	return b
}

// appendJSON writes exactly what json.Marshal writes for a callAnswer, and
// fails where it fails.
func TestCallAnswerAppendJSONIsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 29))
	elapsed := []float64{0, 0.001, 1.25, 1e-7, 3e21, 123456.789, math.NaN(), math.Inf(1)}
	for i := range 3000 {
		a := callAnswer{
			Output: randomOutput(r),
			Receipt: wire.Receipt{Version: randomText(r), Caller: randomText(r), Callee: randomText(r),
				RequestBase: randomText(r), RequestSignature: randomText(r), Status: r.IntN(1000) - 1,
				ContentDigest: randomText(r), SignatureInput: randomText(r), Signature: randomText(r)},
			ElapsedMS: float64(r.Int64N(1e8)) / 1000,
		}
		if i < len(elapsed) {
			a.ElapsedMS = elapsed[i]
		}
		want, werr := json.Marshal(a)
		got, gerr := a.appendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%+v: appendJSON error %v, json.Marshal error %v", a, gerr, werr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("appendJSON\n%q\njson.Marshal\n%q", got, want)
		}
	}
}

// writeCallAnswer writes what writeJSON wrote for the same answer: status,
// content type and body, newline included.
func TestWriteCallAnswerIsWriteJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for range 200 {
		a := callAnswer{Output: randomOutput(r), Receipt: wire.Receipt{RequestBase: randomText(r), Status: 200}, ElapsedMS: r.Float64()}
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeJSON(want, http.StatusOK, a)
		writeCallAnswer(got, a)
		if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || got.Body.String() != want.Body.String() {
			t.Fatalf("writeCallAnswer: %d %q %q, writeJSON: %d %q %q", got.Code, got.Header().Get("Content-Type"), got.Body,
				want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}
