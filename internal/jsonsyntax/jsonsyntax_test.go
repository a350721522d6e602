package jsonsyntax

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

var seeds = []string{
	``, ` `, `{}`, `[]`, `""`, `"a"`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e5`, `1E+5`, `1e`, `.5`, `-a`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, ` {"a" : [1, 2.5e-3, "x\n", true, false, null, {}] } `,
	`{"a":1,}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":1}}`, `[[]`, `[]]`,
	`"\u00e9\ud83d\ude00"`, `"\u00g0"`, `"\u12"`, `"\x"`, `"\/\b\f\r\t\"\\"`, "\"a\tb\"", "\"\x7f\xff\xfe\"",
	`"unterminated`, `"\`, `{"a":"b"`, `[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 71),
	strings.Repeat(`{"a":`, 80) + `1` + strings.Repeat(`}`, 80), strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	"\ufeff{}", "{}\x00", "[1]\n\r\t ", "\v[]",
}

// Valid must agree with json.Valid on every input: the screen, the audit log,
// the backends and the caller all let it decide what is JSON.
func TestValidMatchesStdlib(t *testing.T) {
	for _, s := range seeds {
		checkValid(t, []byte(s))
	}
	// Valid documents, then each with one byte changed, dropped or repeated.
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte(`{}[]":,0123456789-+.eEtrufalsn \t\r\n\\/bu` + "\x00\x1f\x80")
	for range 30000 {
		doc := []byte(randomJSON(r, 0))
		if !Valid(doc) || !json.Valid(doc) {
			t.Fatalf("generated document %q: Valid %v, json.Valid %v", doc, Valid(doc), json.Valid(doc))
		}
		checkValid(t, doc)
		if len(doc) == 0 {
			continue
		}
		k := r.IntN(len(doc))
		var mut []byte
		switch r.IntN(3) {
		case 0:
			mut = append(append(append(mut, doc[:k]...), alphabet[r.IntN(len(alphabet))]), doc[k+1:]...)
		case 1:
			mut = append(append(mut, doc[:k]...), doc[k+1:]...)
		default:
			mut = append(append(append(mut, doc[:k+1]...), doc[k]), doc[k+1:]...)
		}
		checkValid(t, mut)
	}
}

func randomJSON(r *rand.Rand, depth int) string {
	ws := func() string { return []string{"", "", " ", "\n", "\t ", "\r\n"}[r.IntN(6)] }
	switch k := r.IntN(9); {
	case k < 2 && depth < 5:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, ws()+randomJSON(r, depth+1)+ws())
		}
		return "[" + strings.Join(parts, ",") + "]"
	case k < 4 && depth < 5:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, ws()+`"k\u00e9y"`+ws()+":"+ws()+randomJSON(r, depth+1)+ws())
		}
		return "{" + strings.Join(parts, ",") + "}"
	case k == 4:
		return []string{`""`, `"plain"`, `"esc \" \\ \/ \b \f \n \r \t \u0041"`, `"ünïcode"`}[r.IntN(4)]
	case k == 5:
		return []string{"0", "-0", "12", "-3.25", "1e9", "2.5E-7", "6e+1"}[r.IntN(7)]
	default:
		return []string{"true", "false", "null"}[r.IntN(3)]
	}
}

// FuzzValid compares Valid with json.Valid, and Walk's spans with the string
// literals encoding/json reads, on any bytes. More seeds live in
// testdata/fuzz/FuzzValid.
func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkValid)
}

// checkValid fails when Valid or Walk disagrees with json.Valid on data, or
// when a complete walk of valid data reports a span that is not the body of
// one of its string literals, in order, with the right Escaped flag.
func checkValid(t *testing.T, data []byte) {
	t.Helper()
	want := json.Valid(data)
	if got := Valid(data); got != want {
		t.Fatalf("Valid(%.200q) = %v, json.Valid %v", data, got, want)
	}
	var spans []Span
	valid, complete := Walk(data, &spans)
	if valid != want {
		t.Fatalf("Walk(%.200q) = %v, json.Valid %v", data, valid, want)
	}
	valid, compact := ValidCompact(data)
	if valid != want {
		t.Fatalf("ValidCompact(%.200q) = %v, json.Valid %v", data, valid, want)
	}
	if !valid || !complete {
		if compact {
			t.Fatalf("ValidCompact(%.200q) says compact, valid %v, complete %v", data, valid, complete)
		}
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		t.Fatalf("json.Compact(%.200q): %v", data, err)
	}
	if unchanged := bytes.Equal(buf.Bytes(), data); compact != unchanged {
		t.Fatalf("ValidCompact(%.200q) compact %v, json.Compact gives it back unchanged: %v", data, compact, unchanged)
	}
	strs := stdlibStrings(t, data)
	if len(spans) != len(strs) {
		t.Fatalf("Walk(%.200q): %d spans, encoding/json reads %d strings", data, len(spans), len(strs))
	}
	for k, sp := range spans {
		raw := data[sp.Start:sp.End]
		var s string
		if err := json.Unmarshal(data[sp.Start-1:sp.End+1], &s); err != nil || s != strs[k] {
			t.Fatalf("Walk(%.200q): span %d %q is not string %q (%v)", data, k, raw, strs[k], err)
		}
		if sp.Escaped != bytes.Contains(raw, []byte{'\\'}) {
			t.Fatalf("Walk(%.200q): span %d %q Escaped %v", data, k, raw, sp.Escaped)
		}
	}
}

// stdlibStrings lists the keys and string values of valid JSON in document
// order, as encoding/json's tokenizer reads them.
func stdlibStrings(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// str jumps to the lowest byte special8 flags, so that byte must be exactly
// the first byte the byte-at-a-time test would stop at.
func TestSpecial8FirstHit(t *testing.T) {
	first := func(w uint64) int {
		for k := range 8 {
			if c := byte(w >> (8 * k)); c < 0x20 || c == '"' || c == '\\' {
				return k
			}
		}
		return 8
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 300000 {
		w := r.Uint64()
		if r.IntN(2) == 0 { // mostly printable, with a few odd bytes
			w = w&0x3f3f3f3f3f3f3f3f | 0x2020202020202020
			for range r.IntN(3) {
				w ^= uint64(r.IntN(256)) << (8 * r.IntN(8))
			}
		}
		if got, want := bits.TrailingZeros64(special8(w))/8, first(w); got != want {
			t.Fatalf("special8(%#x) flags byte %d first, want %d", w, got, want)
		}
	}
}
