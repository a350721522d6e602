package mcpframe

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// hostileValue returns a random valid JSON value whose strings hold what
// could fool a bracket counter: brackets, escaped quotes, backslashes right
// before a closing quote, \u escapes of '"' and '\', and whitespace floods
// between tokens.
func hostileValue(r *rand.Rand, depth int) string {
	ws := func() string { return strings.Repeat(" \t\r\n"[r.IntN(4):][:1], r.IntN(4)) }
	pieces := []string{`}`, `]`, `{`, `[`, `\"`, `\\`, `\\\"`, `\u0022`, `\u005c`, `x`, `"`}
	str := func() string {
		var b strings.Builder
		b.WriteByte('"')
		for range r.IntN(8) {
			p := pieces[r.IntN(len(pieces))]
			if p == `"` {
				p = `\"`
			}
			b.WriteString(p)
		}
		b.WriteString(`\\`[:r.IntN(2)*2]) // an escaped backslash before the closing quote
		b.WriteByte('"')
		return b.String()
	}
	if depth == 0 || r.IntN(3) == 0 {
		return []string{str(), "12", "true", "null"}[r.IntN(4)]
	}
	var b strings.Builder
	obj := r.IntN(2) == 0
	b.WriteString(map[bool]string{true: "{", false: "["}[obj])
	for i := range r.IntN(4) {
		if i > 0 {
			b.WriteString(ws() + "," + ws())
		}
		if obj {
			b.WriteString(str() + ws() + ":" + ws())
		}
		b.WriteString(hostileValue(r, depth-1))
	}
	b.WriteString(ws() + map[bool]string{true: "}", false: "]"}[obj])
	return b.String()
}

// TestReaderEndsWhereTheDecoderEnds: on hostile but valid messages the
// reader's idea of where a message ends is json.Decoder's (the SDK's
// decoder): a message with its leading whitespace of exactly Max bytes
// passes, one byte less is refused, and the next message starts afresh.
// A message the decoder returns through the reader is never over Max.
func TestReaderEndsWhereTheDecoderEnds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		msg := strings.Repeat("\n ", r.IntN(3)) + "{" + `"m":` + hostileValue(r, 4) + "}"
		if !json.Valid([]byte(msg)) {
			t.Fatalf("generator: invalid %q", msg)
		}
		next := "\n[1]"
		in := msg + next
		max := max(len(msg), len(next))
		rd := &Reader{R: oneByte{strings.NewReader(in)}, Max: max}
		dec := json.NewDecoder(rd)
		var got []json.RawMessage
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%d: %q at Max %d: %v", i, in, max, err)
				}
				break
			}
			if len(v) > max {
				t.Fatalf("%d: the decoder got a %d-byte message through a reader bounded at %d", i, len(v), max)
			}
			got = append(got, v)
		}
		if len(got) != 2 || !bytes.Equal(got[1], []byte("[1]")) {
			t.Fatalf("%d: %q decoded as %q", i, in, got)
		}
		if _, err := io.ReadAll(&Reader{R: strings.NewReader(msg), Max: len(msg) - 1}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d: %q passed at Max %d: %v", i, msg, len(msg)-1, err)
		}
	}
}
