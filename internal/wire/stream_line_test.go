package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// dataEventStdlib is StreamWriter's data line as it was: json.Valid, then
// json.Marshal. It is the reference appendDataEvent must match byte for byte
// and BenchmarkStreamDataEvent's same-run baseline.
func dataEventStdlib(seq uint64, data json.RawMessage) ([]byte, error) {
	if len(data) == 0 || !json.Valid(data) {
		return nil, errors.New("not JSON")
	}
	return json.Marshal(Event{Seq: seq, Data: data})
}

var dataEventSeeds = []string{
	`{"obs":1,"note":"n1"}`, `{"obs": 1}`, ` {"a":1} `, `"x"`, `null`, `0`, `[]`, `{}`, ``, ` `, `{"a":1`, `{"a":1}{}`,
	`{"html":"<b>&amp;</b>"}`, "{\"sep\":\"a\u2028b\u2029c\"}", `{"esc":"\u003c\u2028"}`, "\"\xff\xfe\"", `{"k":"v w"}`,
	`[1,2,3]`, "[1,\n2]", `{"deep":[[[[{"x":[true,false,null]}]]]]}`,
}

// checkDataEvent fails unless appendDataEvent refuses what the reference
// refuses and otherwise writes exactly its bytes.
func checkDataEvent(t *testing.T, seq uint64, data []byte) {
	t.Helper()
	want, werr := dataEventStdlib(seq, data)
	got, err := appendDataEvent(nil, seq, data)
	if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("data %q: appendDataEvent = %q, %v; json.Marshal gives %q, %v", data, got, err, want, werr)
	}
	if err != nil {
		return
	}
	// StreamReader accepts a data line only when it is what appendDataEvent
	// writes for the event the line decodes to: every line written must be.
	var ev Event
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatalf("line %q does not decode: %v", got, err)
	}
	if again, err := appendDataEvent(nil, ev.Seq, ev.Data); err != nil || !bytes.Equal(again, got) {
		t.Fatalf("line %q decodes to an event written as %q, %v", got, again, err)
	}
}

func TestDataEventMatchesMarshal(t *testing.T) {
	for i, s := range dataEventSeeds {
		checkDataEvent(t, uint64(i+1), []byte(s))
	}
	checkDataEvent(t, 1<<63, []byte(`{"a":1}`))
}

// FuzzDataEvent holds appendDataEvent to json.Marshal's line on any bytes
// a handler may emit.
func FuzzDataEvent(f *testing.F) {
	for i, s := range dataEventSeeds {
		f.Add(uint64(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, seq uint64, data []byte) { checkDataEvent(t, seq, data) })
}

// BenchmarkStreamDataEvent compares one data line through appendDataEvent
// and through json.Valid + json.Marshal, in one run.
func BenchmarkStreamDataEvent(b *testing.B) {
	data := json.RawMessage(fmt.Sprintf(`{"obs":12,"text":"%s"}`, bytes.Repeat([]byte("x"), 1000)))
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dataEventStdlib(7, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonsyntax", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			if _, err := appendDataEvent(buf[:0], 7, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
