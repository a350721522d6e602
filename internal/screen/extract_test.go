package screen

import (
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/treaty-dev/treaty/internal/jsonsyntax"
)

// The one-walk extraction must give the text the strings of a document would give
// one by one, whatever way a string is nested, escaped or not JSON after all.
func TestExtractJSONText(t *testing.T) {
	deep := strings.Repeat("[", jsonsyntax.MaxDepth+1) + `"deep \"q\""` + strings.Repeat("]", jsonsyntax.MaxDepth+1)
	cases := []struct{ name, in, want string }{
		{"keys and values in order", `{"a":"x","b":[1,"y",true,null],"c":{"d":"z"}}`, "a\nx\nb\ny\nc\nd\nz\n"},
		{"escapes", `["tab\there","\u00fcber","\ud83d\ude00","q\"\\\/"]`, "tab\there\nüber\n😀\nq\"\\/\n"},
		{"plain nested document", `{"data":" {\n} "}`, "data\n"},
		{"escaped nested document", `{"data":"{\"msg\":\"hi\",\"n\":[\"a\\\"b\"]}"}`, "data\nmsg\nhi\nn\na\"b\n"},
		{"escaped text starting like JSON", `{"data":"{\"not json"}`, "data\n{\"not json\n"},
		{"plain text starting like JSON", `{"data":"[not json"}`, "data\n[not json\n"},
		{"nested beyond the depth", `{"a":"{\"b\":\"{\\\"c\\\":\\\"{\\\\\\\"d\\\\\\\":1}\\\"}\"}"}`, "a\nb\nc\n{\"d\":1}\n"},
		{"deeper than the fast validator", deep, "deep \"q\"\n"},
		{"bare string", `"just text"`, "just text\n"},
	}
	sc := new(jsonScratch)
	for _, c := range cases {
		got, ok := extractJSONText([]byte(c.in), 3, sc)
		if !ok || string(got) != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, ok, c.want)
		}
		if len(sc.spans) != 0 {
			t.Errorf("%s: %d spans left in the scratch", c.name, len(sc.spans))
		}
	}
	for _, in := range []string{`{"a":`, `not json`, `{"a":"b"} x`, ``, `  `} {
		if got, ok := extractJSONText([]byte(in), 3, sc); ok {
			t.Errorf("%q: extracted %q from invalid JSON", in, got)
		}
	}
}

// The scanner jumps to the lowest byte its word mask flags, so that byte must be
// exactly the first byte the byte-at-a-time test would stop at.
func TestWordMasksFirstHit(t *testing.T) {
	first := func(w uint64, special func(byte) bool) int {
		for k := 0; k < 8; k++ {
			if special(byte(w >> (8 * k))) {
				return k
			}
		}
		return 8
	}
	at := func(m uint64) int { return bits.TrailingZeros64(m) / 8 }
	unplain := func(c byte) bool { return c < 0x20 || c >= 0x7f }
	r := rand.New(rand.NewPCG(3, 4))
	for range 300000 {
		w := r.Uint64()
		if r.IntN(2) == 0 { // mostly printable, with a few odd bytes
			w = w&0x3f3f3f3f3f3f3f3f | 0x2020202020202020
			for range r.IntN(3) {
				w ^= uint64(r.IntN(256)) << (8 * r.IntN(8))
			}
		}
		if got, want := at(unplainASCII8(w)), first(w, unplain); got != want {
			t.Fatalf("unplainASCII8(%#x) flags byte %d first, want %d", w, got, want)
		}
	}
}
