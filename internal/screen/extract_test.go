package screen

import (
	"strings"
	"testing"
)

// The one-walk extraction must give the text the strings of a document would give
// one by one, whatever way a string is nested, escaped or not JSON after all.
func TestExtractJSONText(t *testing.T) {
	deep := strings.Repeat("[", maxFastDepth+1) + `"deep \"q\""` + strings.Repeat("]", maxFastDepth+1)
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
