package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/localapi"
)

// Values, keys and motion texts come from other members, verbatim: printed
// to a terminal, an escape sequence in one could rewrite the screen or hide
// text. The plain output shows control, bidi and invalid bytes escaped; what
// an honest value holds (text, newlines, tabs) prints as it is.
func TestPlainOutputEscapesControls(t *testing.T) {
	for _, in := range []string{"alice", "line one\n\tline two", "héllo wörld ✓"} {
		if got := escapeText(in, true); got != in {
			t.Errorf("escapeText(%q) = %q, want it as it is", in, got)
		}
	}
	for _, in := range []string{"\x1b[2J\x1b]0;owned\x07", "safe\rEVIL", "abc\u202Eevil\u2066", "\u009b31m", "bad\xffutf8", "zero\u200Bwidth\uFEFFbom"} {
		got := escapeText(in, true)
		if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r != '\n' && r != '\t' && unsafeRune(r) }) {
			t.Errorf("escapeText(%q) = %q: a control, format or invalid byte is left", in, got)
		}
	}

	var b bytes.Buffer
	printMotion(&b, localapi.MotionInfo{Name: "m", Text: "ok\x1b[8mhidden", Reason: "r\x1b[1A"})
	if strings.ContainsRune(b.String(), 0x1b) || !utf8.Valid(b.Bytes()) {
		t.Fatalf("motion show printed an escape: %q", b.String())
	}
}

// An answer of kv ls the node cut at its limit says so, on stderr, so a
// script that walks the keys does not take a cut list for all of them; an
// answer that holds every key, even exactly the limit's number, does not.
func TestKVListSaysWhenCut(t *testing.T) {
	var out, errOut bytes.Buffer
	printKeys(&out, &errOut, localapi.KVList{Keys: []string{"a", "b"}, Limit: 2})
	if out.String() != "a\nb\n" || errOut.Len() != 0 {
		t.Fatalf("whole list: %q %q", out.String(), errOut.String())
	}
	out.Reset()
	printKeys(&out, &errOut, localapi.KVList{Keys: []string{"a", "b"}, Truncated: true, Limit: 2})
	if out.String() != "a\nb\n" || !strings.Contains(errOut.String(), "first 2 (its limit)") {
		t.Fatalf("cut list: %q, stderr %q", out.String(), errOut.String())
	}
}

// A vote that passed this node's own removal is reported as a success that
// says the node is no longer a member.
func TestVoteThatRemovedThisNodeSaysSo(t *testing.T) {
	var b bytes.Buffer
	printVote(&b, "team", localapi.Decision{Index: 9, Motion: "#4", Outcome: "passed", Removed: true})
	if b.String() != "motion #4 passed at index 9\nremoved: this node is no longer a member of group team\n" {
		t.Fatalf("output %q", b.String())
	}
	b.Reset()
	printVote(&b, "team", localapi.Decision{Index: 9, Motion: "#4", Outcome: "passed"})
	if strings.Contains(b.String(), "removed") {
		t.Fatalf("output %q", b.String())
	}
}

func TestGroupNonceFlags(t *testing.T) {
	if n, err := groupNonce("", false, false); err != nil || !n.IsZero() {
		t.Fatalf("no nonce: %v %v", n, err)
	}
	n, err := groupNonce("", true, false)
	if err != nil || n.IsZero() {
		t.Fatalf("new nonce: %v", err)
	}
	if got, err := groupNonce(n.String(), false, true); err != nil || got != n {
		t.Fatalf("given nonce: %v %v", got, err)
	}
	for _, c := range []struct {
		given      string
		draw, join bool
	}{{n.String(), true, false}, {"", true, true}, {"xyz", false, false}} {
		var u usageError
		if _, err := groupNonce(c.given, c.draw, c.join); !errors.As(err, &u) {
			t.Errorf("%+v: %v, want a usage error (exit 2)", c, err)
		}
	}
}
