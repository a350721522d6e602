package audit

import (
	"bytes"
	"testing"
)

// compactRaw keeps valid JSON without whitespace as is, compacts whitespace
// outside strings away, keeps it inside strings, and still refuses invalid
// JSON on either path.
func TestCompactRawPaths(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"b","n":[1,2]}`, `{"a":"b","n":[1,2]}`},
		{"{ \"a\" :\t\"b c\",\n\"n\": [1, 2] }", `{"a":"b c","n":[1,2]}`},
		{`null`, ``},
		{` null `, ``},
	} {
		got, err := compactRaw([]byte(tc.in))
		if err != nil || !bytes.Equal(got, []byte(tc.want)) {
			t.Errorf("compactRaw(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1`, `{"a":1}{}`, `{"a":1} x`, "{\"a\":\"\xff\"}", `{"a":01}`} {
		if _, err := compactRaw([]byte(bad)); err == nil {
			t.Errorf("compactRaw(%q) accepted invalid JSON", bad)
		}
	}
}
