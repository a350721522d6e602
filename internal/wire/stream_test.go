package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/identity"
)

// streamFixture returns the lines of a signed stream of n events answering
// alice's request, and the Sent alice keeps.
func streamFixture(t *testing.T, k keys, n int, failure *Failure) ([]string, Sent, Request) {
	t.Helper()
	r, sent := signedRequest(t, k, testBody, nil)
	req, err := newVerifier(t, k.bob.Public()).VerifyRequest(serverView(t, r), testBody, k.alice.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	flushes := 0
	w := NewStreamWriter(&buf, func() { flushes++ }, req, k.bob)
	for i := 1; i <= n; i++ {
		if err := w.Write(json.RawMessage(fmt.Sprintf(`{"obs": %d, "note": "n%d"}`, i, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(failure); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(nil); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if flushes != n+1 {
		t.Fatalf("flushes = %d, want %d", flushes, n+1)
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	return lines[:len(lines)-1], sent, req
}

// readAll drains a stream and returns the data events and the first error
// other than io.EOF.
func readAll(t *testing.T, s string, sent Sent, callee keys, lim Limits) ([]Event, error) {
	t.Helper()
	return readAllFrom(t, NewStreamReader(strings.NewReader(s), sent, callee.bob.Public(), lim))
}

func readAllFrom(t *testing.T, r *StreamReader) ([]Event, error) {
	t.Helper()
	var evs []Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			if _, again := r.Next(); !errors.Is(again, err) && again != err {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func TestStreamRoundTrip(t *testing.T) {
	k := testKeys(t)
	lines, sent, _ := streamFixture(t, k, 3, nil)
	if lines[0] != `{"seq":1,"data":{"obs":1,"note":"n1"}}`+"\n" {
		t.Fatalf("first line %q", lines[0])
	}
	evs, err := readAll(t, strings.Join(lines, ""), sent, k, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 || !evs[3].End || evs[3].Failure != nil || evs[3].Seq != 4 {
		t.Fatalf("events %+v", evs)
	}
	for i, ev := range evs[:3] {
		if ev.Seq != uint64(i+1) || string(ev.Data) != fmt.Sprintf(`{"obs":%d,"note":"n%d"}`, i+1, i+1) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	// An empty stream is just the signed End.
	lines, sent, _ = streamFixture(t, k, 0, nil)
	if evs, err := readAll(t, strings.Join(lines, ""), sent, k, Limits{}); err != nil || len(evs) != 1 {
		t.Fatalf("empty stream: %v %+v", err, evs)
	}
	// A failure in the End event is signed and delivered.
	f := &Failure{Stage: "backend", Reason: "cancelled"}
	lines, sent, _ = streamFixture(t, k, 2, f)
	evs, err = readAll(t, strings.Join(lines, ""), sent, k, Limits{})
	if err != nil || len(evs) != 3 || evs[2].Failure == nil || *evs[2].Failure != *f {
		t.Fatalf("failure stream: %v %+v", err, evs)
	}
}

func reline(t *testing.T, line string, edit func(*Event)) string {
	t.Helper()
	var ev Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	edit(&ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestStreamAdversarial: each case fails if its check is deleted.
func TestStreamAdversarial(t *testing.T) {
	k := testKeys(t)
	_, otherSent := signedRequest(t, k, []byte(`{"x":1}`), func(p *SignParams) { p.Rand = seededRand(42) })
	// malloryEnd re-signs the End event of lines with mallory's key.
	malloryEnd := func(t *testing.T, lines []string, req Request) []string {
		var buf bytes.Buffer
		w := NewStreamWriter(&buf, nil, req, k.mallory)
		for _, l := range lines[:len(lines)-1] {
			var ev Event
			_ = json.Unmarshal([]byte(l), &ev)
			_ = w.Write(ev.Data)
		}
		_ = w.Close(nil)
		out := strings.SplitAfter(buf.String(), "\n")
		return out[:len(out)-1]
	}
	tests := []struct {
		name   string
		edit   func(t *testing.T, lines []string, req Request) []string
		sent   *Sent
		lim    Limits
		want   Reason
		limit  string // want a *LimitError with this name instead
		events int    // events delivered before the error
	}{
		{name: "valid", edit: func(_ *testing.T, l []string, _ Request) []string { return l }, events: 5},
		{name: "gap", edit: func(_ *testing.T, l []string, _ Request) []string {
			return append([]string{l[0]}, l[2:]...)
		}, want: ReasonStreamGap, events: 1},
		{name: "swap is seen as a gap", edit: func(_ *testing.T, l []string, _ Request) []string {
			return []string{l[0], l[2], l[1], l[3], l[4]}
		}, want: ReasonStreamGap, events: 1},
		{name: "reorder: an old event arrives late", edit: func(_ *testing.T, l []string, _ Request) []string {
			return []string{l[0], l[1], l[2], l[0], l[3], l[4]}
		}, want: ReasonStreamReorder, events: 3},
		{name: "duplicate", edit: func(_ *testing.T, l []string, _ Request) []string {
			return []string{l[0], l[1], l[1], l[2], l[3], l[4]}
		}, want: ReasonStreamDuplicate, events: 2},
		{name: "duplicate End", edit: func(_ *testing.T, l []string, _ Request) []string {
			return append(l, l[4])
		}, want: ReasonMalformed, events: 5},
		{name: "truncated before End", edit: func(_ *testing.T, l []string, _ Request) []string { return l[:4] },
			want: ReasonStreamTruncated, events: 4},
		{name: "truncated inside an event", edit: func(_ *testing.T, l []string, _ Request) []string {
			return []string{l[0], l[1][:10]}
		}, want: ReasonStreamTruncated, events: 1},
		{name: "truncated inside End", edit: func(_ *testing.T, l []string, _ Request) []string {
			return append(l[:4], strings.TrimSuffix(l[4], "\n"))
		}, want: ReasonStreamTruncated, events: 4},
		{name: "empty", edit: func(_ *testing.T, _ []string, _ Request) []string { return nil }, want: ReasonStreamTruncated},
		{name: "End signed by another key", edit: malloryEnd, want: ReasonBadSignature, events: 4},
		{name: "data tampered", edit: func(t *testing.T, l []string, _ Request) []string {
			l[1] = reline(t, l[1], func(e *Event) { e.Data = json.RawMessage(`{"obs":99}`) })
			return l
		}, want: ReasonBadSignature, events: 4},
		{name: "event dropped and renumbered", edit: func(t *testing.T, l []string, _ Request) []string {
			l2 := reline(t, l[2], func(e *Event) { e.Seq = 2 })
			l3 := reline(t, l[3], func(e *Event) { e.Seq = 3 })
			end := reline(t, l[4], func(e *Event) { e.Seq = 4 })
			return []string{l[0], l2, l3, end}
		}, want: ReasonBadSignature, events: 3},
		{name: "End failure added", edit: func(t *testing.T, l []string, _ Request) []string {
			l[4] = reline(t, l[4], func(e *Event) { e.Failure = &Failure{Stage: "backend", Reason: "timeout"} })
			return l
		}, want: ReasonBadSignature, events: 4},
		{name: "stream for another request", edit: func(_ *testing.T, l []string, _ Request) []string { return l },
			sent: &otherSent, want: ReasonBadSignature, events: 4},
		{name: "oversize event", edit: func(t *testing.T, l []string, _ Request) []string {
			l[1] = reline(t, l[1], func(e *Event) { e.Data = json.RawMessage(`"` + strings.Repeat("a", 200) + `"`) })
			return l
		}, lim: Limits{MaxEventBytes: 128}, limit: LimitMaxEventBytes, events: 1},
		{name: "too many events", edit: func(_ *testing.T, l []string, _ Request) []string { return l },
			lim: Limits{MaxStreamEvents: 3}, limit: LimitMaxStreamEvents, events: 3},
		{name: "data after End", edit: func(_ *testing.T, l []string, _ Request) []string { return append(l, "\n") },
			want: ReasonMalformed, events: 5},
		{name: "data event with sig", edit: func(t *testing.T, l []string, _ Request) []string {
			l[0] = reline(t, l[0], func(e *Event) { e.Sig = "AAAA" })
			return l
		}, want: ReasonMalformed},
		{name: "End with data", edit: func(t *testing.T, l []string, _ Request) []string {
			l[4] = reline(t, l[4], func(e *Event) { e.Data = json.RawMessage(`1`) })
			return l
		}, want: ReasonMalformed, events: 4},
		{name: "End sig not base64", edit: func(t *testing.T, l []string, _ Request) []string {
			l[4] = reline(t, l[4], func(e *Event) { e.Sig = "!!" })
			return l
		}, want: ReasonMalformed, events: 4},
		{name: "seq zero", edit: func(t *testing.T, l []string, _ Request) []string {
			l[0] = reline(t, l[0], func(e *Event) { e.Seq = 0 })
			return l
		}, want: ReasonMalformed},
		{name: "not JSON", edit: func(_ *testing.T, l []string, _ Request) []string {
			return append([]string{"hello\n"}, l...)
		}, want: ReasonMalformed},
		{name: "End failure invalid", edit: func(t *testing.T, l []string, _ Request) []string {
			l[4] = reline(t, l[4], func(e *Event) { e.Failure = &Failure{Stage: "Backend!", Reason: "x"} })
			return l
		}, want: ReasonMalformed, events: 4},
	}
	// The Verifier's reader, with bob's key expanded once and kept across the
	// cases, must refuse exactly what the package's reader does.
	v := newVerifier(t, k.alice.Public())
	for _, tc := range tests {
		for _, open := range []struct {
			name string
			fn   func(io.Reader, Sent, identity.PublicKey, Limits) *StreamReader
		}{{"NewStreamReader", NewStreamReader}, {"Verifier.NewStreamReader", v.NewStreamReader}} {
			t.Run(tc.name+"/"+open.name, func(t *testing.T) {
				lines, sent, req := streamFixture(t, k, 4, nil)
				lines = tc.edit(t, lines, req)
				if tc.sent != nil {
					sent = *tc.sent
				}
				evs, err := readAllFrom(t, open.fn(strings.NewReader(strings.Join(lines, "")), sent, k.bob.Public(), tc.lim))
				if len(evs) != tc.events {
					t.Errorf("delivered %d events before the error, want %d", len(evs), tc.events)
				}
				if tc.limit != "" {
					var le *LimitError
					if !errors.As(err, &le) || le.Limit != tc.limit {
						t.Fatalf("err = %v, want LimitError %s", err, tc.limit)
					}
					return
				}
				wantReason(t, err, tc.want)
			})
		}
	}
	if n := v.keys.len(); n != 1 {
		t.Errorf("the Verifier keeps %d expanded keys, want 1 (bob)", n)
	}
}

func TestStreamWriterMisuse(t *testing.T) {
	k := testKeys(t)
	_, _, req := streamFixture(t, k, 0, nil)
	var buf bytes.Buffer
	w := NewStreamWriter(&buf, nil, req, k.bob)
	if err := w.Write(json.RawMessage(`{"a":`)); err == nil {
		t.Fatal("wrote invalid JSON")
	}
	if err := w.Write(nil); err == nil {
		t.Fatal("wrote empty data")
	}
	if err := w.Close(&Failure{Stage: "x"}); err == nil {
		t.Fatal("closed with an invalid failure")
	}
	if err := w.Write(json.RawMessage(`1`)); err == nil {
		t.Fatal("wrote after close")
	}
	w = NewStreamWriter(&buf, nil, Request{}, k.bob)
	if err := w.Write(json.RawMessage(`1`)); err == nil {
		t.Fatal("wrote a stream bound to no request")
	}
	w = NewStreamWriter(failWriter{}, nil, req, k.bob)
	if err := w.Write(json.RawMessage(`1`)); err == nil {
		t.Fatal("write error swallowed")
	}
	if err := w.Close(nil); err == nil {
		t.Fatal("sticky write error swallowed by Close")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestStreamReadError: a transport error is reported as such (wrapped),
// not disguised as truncation.
func TestStreamReadError(t *testing.T) {
	k := testKeys(t)
	lines, sent, _ := streamFixture(t, k, 2, nil)
	boom := errors.New("connection reset")
	r := NewStreamReader(io.MultiReader(strings.NewReader(lines[0]), errReader{boom}), sent, k.bob.Public(), Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapped %v", err, boom)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestStreamDataLinesAreCanonical: the End signature covers the data lines
// as bytes, and Go's decoder reads some bytes differently from others (keys
// match case-insensitively, the last duplicate wins). A callee signing such
// a line would have the caller act on one value while the signed stream,
// read by any other JSON parser, says another; so a data line must be
// exactly what StreamWriter writes for the event it decodes to.
func TestStreamDataLinesAreCanonical(t *testing.T) {
	k := testKeys(t)
	_, sent, req := streamFixture(t, k, 0, nil)
	binding, err := requestBinding(req.Signature)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(line string) string {
		h := sha256.New()
		h.Write([]byte(line + "\n"))
		end := Event{Seq: 2, End: true}
		msg, err := streamSigningInput(binding, h.Sum(nil), end)
		if err != nil {
			t.Fatal(err)
		}
		end.Sig = base64.StdEncoding.EncodeToString(k.bob.Sign(msg))
		b, _ := json.Marshal(end)
		return line + "\n" + string(b) + "\n"
	}
	if _, err := readAll(t, signed(`{"seq":1,"data":{"x":1}}`), sent, k, Limits{}); err != nil {
		t.Fatalf("canonical line refused: %v", err)
	}
	for name, line := range map[string]string{
		"case-folded key":  `{"seq":1,"data":{"x":1},"DATA":{"x":2}}`,
		"duplicate key":    `{"seq":1,"data":{"x":1},"data":{"x":2}}`,
		"duplicate seq":    `{"seq":9,"seq":1,"data":{"x":1}}`,
		"keys reordered":   `{"data":{"x":1},"seq":1}`,
		"spaces":           `{"seq":1, "data":{"x":1}}`,
		"data not compact": `{"seq":1,"data":{"x": 1}}`,
		"unknown field":    `{"seq":1,"data":{"x":1},"note":"hi"}`,
		"explicit end":     `{"seq":1,"data":{"x":1},"end":false}`,
		"escaped key":      `{"seq":1,"d\u0061ta":{"x":1}}`,
		"unescaped html":   `{"seq":1,"data":"<b>"}`,
		"no data":          `{"seq":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(t, signed(line), sent, k, Limits{})
			wantReason(t, err, ReasonMalformed)
		})
	}
}

// TestStreamEndLineIsCanonical: the End signature covers the End event as
// json.Marshal writes it; a line that decodes to it through case-folded or
// duplicate keys would say something else to another parser.
func TestStreamEndLineIsCanonical(t *testing.T) {
	k := testKeys(t)
	lines, sent, _ := streamFixture(t, k, 1, &Failure{Stage: "backend", Reason: "exited"})
	if _, err := readAll(t, strings.Join(lines, ""), sent, k, Limits{}); err != nil {
		t.Fatal(err)
	}
	limited, sentLimited, _ := streamFixture(t, k, 0, FailureOf("wire", &LimitError{Limit: LimitMaxStreamEvents, Max: 10, Got: -1}).ptr())
	if _, err := readAll(t, strings.Join(limited, ""), sentLimited, k, Limits{}); err != nil {
		t.Fatalf("End with a limit failure: %v", err)
	}
	end := lines[1]
	for name, edit := range map[string]func(string) string{
		"case-folded key": func(s string) string { return strings.Replace(s, `"failure"`, `"Failure"`, 1) },
		"duplicate key":   func(s string) string { return strings.Replace(s, `"end":true`, `"end":false,"end":true`, 1) },
		"spaces":          func(s string) string { return strings.Replace(s, `,"end"`, `, "end"`, 1) },
		"unknown field":   func(s string) string { return strings.Replace(s, `"end":true`, `"end":true,"note":1`, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(t, lines[0]+edit(end), sent, k, Limits{})
			wantReason(t, err, ReasonMalformed)
		})
	}
}

func (f Failure) ptr() *Failure { return &f }
