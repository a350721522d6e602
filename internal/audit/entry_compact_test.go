package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
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

// compactRawStdlib is compactRaw as it was with encoding/json.Valid, kept as
// the same-run baseline of BenchmarkCompactRaw and as a second opinion.
func compactRawStdlib(raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	if len(raw) > maxRaw {
		return nil, fmt.Errorf("%d bytes, at most %d", len(raw), maxRaw)
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		return nil, errors.New("not valid UTF-8 JSON")
	}
	if bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if bytes.IndexAny(raw, " \t\n\r") < 0 {
		return raw, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// The Report and Evidence of one call's entries, as the node marshals them.
var callRaws = []json.RawMessage{
	[]byte(`{"path":"/v1/call/echo","created":1765017600,"expires":1765017660,"nonce":"q2Yb7m0bX1c3kQe5a8ZsFw","signature":"treaty=:n4ZpA3p0oXoKq7bq8pE0m1yB6S0nYVh0mW4m2Yc2b4H3jv2nQmXbJ0r1W4fV6cQ3kK9m2y1pS7oP0a1sZ5t6Aw==:"}`),
	[]byte(`{"sanitizer":{"counts":{},"action":""},"screen":{"action":"pass","score":0,"reasons":[]}}`),
	[]byte(`{"response":{"status":200,"created":1765017600,"signature":"treaty=:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYg==:"},"peer_audit":{"index":18422,"size":18423,"root":"3q2+7w0bX1c3kQe5a8ZsFwq2Yb7m0bX1c3kQe5a8ZsE=","sig":"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AbCdEfGhIjKlMnOpQrSt=="}}`),
	[]byte(`{"reason":"backend: timed out after 30s","screen":{"action":"mark","score":0.61,"reasons":["instruction override: ignore previous"]}}`),
}

// Both versions agree on the node's own values, and on whitespace, null and
// invalid input.
func TestCompactRawMatchesStdlib(t *testing.T) {
	ins := append([]json.RawMessage{[]byte(" null "), []byte("{ }"), []byte(`{"a":1`), []byte("\"\xff\"")}, callRaws...)
	for _, in := range ins {
		got, err := compactRaw(in)
		want, werr := compactRawStdlib(in)
		if !bytes.Equal(got, want) || (err == nil) != (werr == nil) {
			t.Errorf("compactRaw(%q) = %q, %v; encoding/json gives %q, %v", in, got, err, want, werr)
		}
	}
}

// BenchmarkCompactRaw is one call's Report and Evidence values through
// compactRaw and through the encoding/json version, in one run.
func BenchmarkCompactRaw(b *testing.B) {
	for _, c := range []struct {
		name string
		fn   func(json.RawMessage) ([]byte, error)
	}{{"encoding-json", compactRawStdlib}, {"jsonsyntax", compactRaw}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, raw := range callRaws {
					if _, err := c.fn(raw); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
