package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestLeafRoundTrip: any valid entry encodes to a leaf that ParseLeaf decodes
// back to the same fields, and the leaf is one line of valid JSON.
func TestLeafRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		str := rapid.StringN(0, 40, 200)
		e := Entry{
			Index:      rapid.Uint64().Draw(rt, "index"),
			Time:       time.Unix(rapid.Int64Range(0, 253402300799).Draw(rt, "sec"), rapid.Int64Range(0, 999999999).Draw(rt, "ns")).UTC(),
			Kind:       rapid.StringN(1, 40, 200).Draw(rt, "kind"),
			Peer:       str.Draw(rt, "peer"),
			Direction:  rapid.SampledFrom([]string{"in", "out", ""}).Draw(rt, "dir"),
			Capability: str.Draw(rt, "cap"),
			Outcome:    str.Draw(rt, "outcome"),
			Stage:      str.Draw(rt, "stage"),
		}
		if b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(rt, "req"); len(b) > 0 {
			e.RequestDigest = b
		}
		if rapid.Bool().Draw(rt, "hasContent") {
			e.Content = rapid.SliceOfN(rapid.Byte(), 0, 100).Draw(rt, "content")
		}
		if rapid.Bool().Draw(rt, "hasReport") {
			r, _ := json.Marshal(map[string]string{"k": str.Draw(rt, "reportv")})
			e.Report = r
		}
		p, err := prepare(e)
		if err != nil {
			rt.Fatal(err)
		}
		ts, _ := formatTime(e.Time)
		leaf := leafBytes(nil, e.Index, ts, p.body)
		if bytes.ContainsAny(leaf, "\n\r") || !json.Valid(leaf) {
			rt.Fatalf("leaf not one line of JSON: %q", leaf)
		}
		got, err := ParseLeaf(leaf)
		if err != nil {
			rt.Fatalf("ParseLeaf(%q): %v", leaf, err)
		}
		want := e
		want.Content = nil
		if got.Index != want.Index || !got.Time.Equal(want.Time) || got.Kind != want.Kind || got.Peer != want.Peer ||
			got.Direction != want.Direction || got.Capability != want.Capability || got.Outcome != want.Outcome ||
			got.Stage != want.Stage || !bytes.Equal(got.RequestDigest, want.RequestDigest) || !bytes.Equal(got.Report, want.Report) {
			rt.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestParseLeafRejectsNonCanonical(t *testing.T) {
	e := sampleEntry(1)
	p, err := prepare(e)
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafBytes(nil, 7, "2025-11-28T09:00:00.000000000Z", p.body)
	if _, err := ParseLeaf(leaf); err != nil {
		t.Fatalf("canonical leaf rejected: %v", err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"escaped letter", `"kind":"call.served"`, `"kind":"call\u002eserved"`},
		{"whitespace", `"kind":"call.served"`, `"kind": "call.served"`},
		{"short time", `.000000000Z`, `Z`},
		{"uppercase hex", `"request_digest":"01010203"`, `"request_digest":"0101020A"`},
		{"trailing data", `}}`, `}} `},
		{"version", `{"v":2,`, `{"v":3,`},
		{"version 1 with content_kept", `{"v":2,`, `{"v":1,`},
		{"content_kept", `"content_kept":true`, `"content_kept":1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := []byte(strings.Replace(string(leaf), tc.from, tc.to, 1))
			if bytes.Equal(bad, leaf) {
				t.Fatalf("replacement %q not found in %s", tc.from, leaf)
			}
			if _, err := ParseLeaf(bad); err == nil {
				t.Fatalf("accepted %s", bad)
			}
		})
	}
}

func TestPrepareRejects(t *testing.T) {
	long := strings.Repeat("x", maxShort+1)
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no kind", Entry{}},
		{"long capability", Entry{Kind: "k", Capability: long}},
		{"invalid utf8 peer", Entry{Kind: "k", Peer: "\xff"}},
		{"bad direction", Entry{Kind: "k", Direction: "sideways"}},
		{"long digest", Entry{Kind: "k", RequestDigest: make([]byte, 65)}},
		{"digest mismatch", Entry{Kind: "k", Content: []byte("a"), ContentDigest: make([]byte, 32)}},
		{"digest wrong size", Entry{Kind: "k", ContentDigest: make([]byte, 20)}},
		{"report not json", Entry{Kind: "k", Report: []byte("{")}},
		{"evidence not utf8", Entry{Kind: "k", Evidence: []byte("\"\xff\"")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := prepare(tc.e); !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("got %v, want ErrInvalidEntry", err)
			}
		})
	}
}

func TestEntryJSONRoundTrip(t *testing.T) {
	e := sampleEntry(2)
	e.Index, e.Time = 9, time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	e.ContentDigest = make([]byte, 32)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(got)
	if !bytes.Equal(b, b2) {
		t.Fatalf("\n%s\n%s", b, b2)
	}
}
