package screen

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// These tests attack ValidJSON (commits 87eb371 and 93727b1), which now
// decides whether a peer's call input is JSON at all: any input where it
// and encoding/json.Valid disagree is a verdict difference. They also check
// the string spans the same walk records against encoding/json's decoder,
// since the screen reads those strings.

// Every input of up to three bytes over the bytes JSON's grammar cares
// about, and of four bytes over a smaller set, gets json.Valid's verdict.
func TestValidJSONReviewExhaustiveShort(t *testing.T) {
	t.Parallel()
	check := func(d []byte) {
		if got, want := ValidJSON(d), json.Valid(d); got != want {
			t.Fatalf("ValidJSON(%q) = %v, json.Valid %v", d, got, want)
		}
	}
	wide := []byte("{}[]\",:\\ \t\n\r\x00\x1f\x7f\x80\xff0159-+.eEtfnuabx/")
	var d [4]byte
	for _, a := range wide {
		d[0] = a
		check(d[:1])
		for _, b := range wide {
			d[1] = b
			check(d[:2])
			for _, c := range wide {
				d[2] = c
				check(d[:3])
			}
		}
	}
	narrow := []byte("{}[]\",:\\ 01-.eu")
	for _, a := range narrow {
		for _, b := range narrow {
			for _, c := range narrow {
				for _, e := range narrow {
					d = [4]byte{a, b, c, e}
					check(d[:])
				}
			}
		}
	}
}

// Strings whose one special byte (a quote, a backslash, each control
// character) sits at every offset of the 8-byte words the walk reads at
// once, after bytes that could disturb the word trick (high bytes, the
// neighbours of the special bytes), get json.Valid's verdict.
func TestValidJSONReviewWordBoundaries(t *testing.T) {
	t.Parallel()
	var specials []byte
	for c := range 0x20 {
		specials = append(specials, byte(c))
	}
	specials = append(specials, '"', '\\', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa0, 0xa2, 0xdc, 0xff)
	fillers := []byte{'a', 0x80, 0xff, 0xa0, 0xa2, 0xdc, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x9f}
	n := 0
	for _, fill := range fillers {
		for _, sp := range specials {
			for pre := range 18 {
				for post := range 10 {
					body := append(append(bytes.Repeat([]byte{fill}, pre), sp), bytes.Repeat([]byte{fill}, post)...)
					for _, doc := range [][]byte{
						append(append([]byte{'"'}, body...), '"'),
						append(append([]byte(`{"k`), body...), `":1}`...),
						append(append([]byte(`["`), body...), `"]`...),
						append([]byte{'"'}, body...), // unterminated
					} {
						if got, want := ValidJSON(doc), json.Valid(doc); got != want {
							t.Fatalf("ValidJSON(%q) = %v, json.Valid %v", doc, got, want)
						}
						n++
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing checked")
	}
}

// Crafted inputs: nesting on both sides of the fast walk's limit and of
// encoding/json's, huge numbers, escaped surrogates, invalid UTF-8 inside
// strings, a BOM, and garbage after the value.
func TestValidJSONReviewCrafted(t *testing.T) {
	t.Parallel()
	nest := func(n int, open, close, inner string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	var cases []string
	// 64 is the fast walk's nesting limit (deeper documents go to
	// encoding/json), 10000 encoding/json's own.
	for _, n := range []int{63, 64, 65, 9999, 10000, 10001} {
		cases = append(cases,
			nest(n, "[", "]", ""), nest(n, "[", "]", "1"), nest(n, "[", "]", "01"), nest(n, "[", "]", "1,"),
			nest(n, `{"a":`, "}", "1"), nest(n, `{"a":`, "}", ""), nest(n, `[{"a":`, "}]", `"x"`),
			nest(n, "[", "]", "")+" x", nest(n, "[", "]", "")[1:], nest(n, "[", "]", "")+"]",
			strings.Repeat("[", n)+strings.Repeat("]", n-1)+"}",
		)
	}
	cases = append(cases,
		strings.Repeat("1", 100000), "-"+strings.Repeat("9", 5000)+"."+strings.Repeat("0", 5000)+"e+"+strings.Repeat("9", 5000),
		"1e999999999", "-0.0e-0", "0.e1", "1.e1", "-01", "--1", "+1", "1e+", "1E-0", "0x10", "Infinity", "NaN", "-Infinity",
		`"\ud800"`, `"\udc00\ud800"`, `"\uD83D\uDE00"`, `"\ud83d\u0041"`, `"\uDFFF"`, `"\u0000"`, `"\u00"`, `"\uzzzz"`, `"\U0041"`,
		`"\u`, `"\u0`, `"\u00`, `"\u004`, `"\u0041`, `"\u0041"`, `["\u004`, `"\`, `"a\`, `"\"`,
		"\"\xff\xfe\"", "\"\xed\xa0\x80\"", "\"\xc0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x80\xa8\"",
		"\ufeff{}", "\ufeff\"x\"", "{}\ufeff", "\xef\xbb", "{} x", "{}{}", "[] []", "1 2", "\"a\" \"b\"", "null\x00", "true false",
		"{\"a\":1}\n\n\n", " \t\r\n1", "\u00a01", "1\u00a0", "\v1", "1\f",
		`{"a":1,"a":2}`, `{"":""}`, `{"a" :1}`, `{"a": 1 , "b" : [ ] }`, `[1,,2]`, `{"a":1,,"b":2}`, `{"a"::1}`, `{1:1}`, `{"a":1`, `[`,
	)
	for _, s := range cases {
		if got, want := ValidJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("ValidJSON(%.100q...) = %v, json.Valid %v", s, got, want)
		}
	}
}

// jsonStringsByDecoder lists the keys and string values of a valid
// document in order, as encoding/json's decoder reads them.
func jsonStringsByDecoder(t testing.TB, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("decoder on %q: %v", data, err)
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// checkSpans checks ValidJSON against json.Valid on data and, for a valid
// UTF-8 document, the strings the one-walk extraction takes out (depth 1: no
// nested documents) against the decoder's, in order. Documents nested past
// the fast walk's limit take the two-pass extraction, checked the same way.
func checkSpans(t testing.TB, data []byte) {
	t.Helper()
	valid := json.Valid(data)
	if got := ValidJSON(data); got != valid {
		t.Fatalf("ValidJSON(%q) = %v, json.Valid %v", data, got, valid)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if !valid || !utf8.Valid(data) || len(trimmed) == 0 || !strings.ContainsRune(`{["`, rune(trimmed[0])) {
		return
	}
	var want strings.Builder
	for _, s := range jsonStringsByDecoder(t, data) {
		want.WriteString(s)
		want.WriteByte('\n')
	}
	got, ok := extractJSONText(data, 1, new(jsonScratch))
	if !ok || string(got) != want.String() {
		t.Fatalf("extractJSONText(%q) = %q, %v; the decoder's strings %q", data, got, ok, want.String())
	}
}

// The strings the walk records are the decoder's, in order, for random
// documents (some nested past the fast walk's limit) with every kind of escape (surrogate pairs, lone and reversed
// surrogates, escaped quotes and backslashes around word boundaries).
func TestValidJSONReviewSpansMatchDecoder(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(31, 32))
	pieces := []string{"a", "é", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\u0041`, `\u00e9`, `\ud83d\ude00`, `\ud800`, `\udc00`, `\udc00\ud800`,
		`\ud83d\u0041`, `\ud83d\\`, `\uD83D\uDE00`, "\u2028", `\u2028`, " ", "{", "}", "[", "]", ":", ","}
	str := func() string {
		var b strings.Builder
		b.WriteByte('"')
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		b.WriteByte('"')
		return b.String()
	}
	var doc func(depth int) string
	doc = func(depth int) string {
		switch k := r.IntN(6); {
		case k == 0 && depth < 6:
			var parts []string
			for range r.IntN(4) {
				parts = append(parts, doc(depth+1))
			}
			return "[" + strings.Join(parts, ",") + "]"
		case k == 1 && depth < 6:
			var parts []string
			for range r.IntN(4) {
				parts = append(parts, str()+":"+doc(depth+1))
			}
			return "{" + strings.Join(parts, ",") + "}"
		case k == 2:
			return "12.5e-3"
		default:
			return str()
		}
	}
	for i := range 20000 {
		d := doc(0)
		if i%100 == 0 {
			d = strings.Repeat("[", 70) + d + strings.Repeat("]", 70)
		}
		checkSpans(t, []byte(d))
	}
}

// FuzzValidJSONSpans compares the walk's verdict with json.Valid and its
// strings with the decoder's on any bytes.
func FuzzValidJSONSpans(f *testing.F) {
	f.Add([]byte(`{"a":["x\ud83d\ude00y",1,{"b\"":"\ud800"}]}`))
	f.Add([]byte(`"\udc00\ud800"`))
	f.Add([]byte(`[` + strings.Repeat(`"aaaaaaa\"`, 3) + `"]`))
	f.Add([]byte("\ufeff{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSpans(t, data)
	})
}
