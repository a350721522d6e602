package node

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/identity"
)

// These tests attack the hand-written request evidence JSON (commit
// 0075e0b): every string in it can come from a peer (the signature base,
// its path and nonce, the signature), and the audit log must hold exactly
// what json.Marshal wrote before: valid JSON, HTML characters and U+2028/9
// escaped, invalid UTF-8 replaced, no raw control byte.

// reviewEvidenceStrings are the strings a peer could put in a field: every
// single byte, invalid and overlong UTF-8, surrogates encoded in UTF-8, the
// line and paragraph separators, markup, and escapes that try to close the
// string early.
func reviewEvidenceStrings() []string {
	out := []string{"", "\u2028", "\u2029", "a\u2028b\u2029c", "</script><script>", "&amp;", `"},"signature":"forged`,
		`\"`, `\\`, `\u0000`, "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
		"\xe2\x80", "\xe2\x80\xa8\xe2\x80", "\ufeff", "\ufffd", "\U0010FFFF", "é\xff<é>", strings.Repeat("\x1f<", 100)}
	for b := range 256 {
		out = append(out, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	return out
}

func TestEvidenceReviewAdversarialStrings(t *testing.T) {
	t.Parallel()
	strs := reviewEvidenceStrings()
	nums := []int64{0, 1, -1, math.MaxInt64, math.MinInt64}
	n := 0
	for i, s := range strs {
		// Each string in each field, the others drawn from the rest.
		o := strs[(i*7+3)%len(strs)]
		for f := range 5 {
			re := requestEvidence{Base: o, Path: o, Digest: o, Nonce: o, Signature: o,
				Created: nums[i%len(nums)], Expires: nums[(i+f)%len(nums)]}
			switch f {
			case 0:
				re.Base = s
			case 1:
				re.Path = s
			case 2:
				re.Digest = s
			case 3:
				re.Nonce = s
			case 4:
				re.Signature = s
			}
			checkEvidenceJSON(t, re)
			n++
		}
	}
	if n == 0 {
		t.Fatal("nothing checked")
	}
}

// checkEvidenceJSON asserts that re's hand-written JSON is json.Marshal's,
// valid, free of raw bytes an HTML or JavaScript reader would misread, and
// that it reads back as the same fields (invalid UTF-8 as U+FFFD).
func checkEvidenceJSON(t *testing.T, re requestEvidence) {
	t.Helper()
	got := re.appendJSON(nil)
	want, err := json.Marshal(re)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendJSON(%+v)\n got %s\nwant %s", re, got, want)
	}
	if !json.Valid(got) {
		t.Fatalf("appendJSON(%+v) = %s: not JSON", re, got)
	}
	if !utf8.Valid(got) {
		t.Fatalf("appendJSON(%+v) = %q: not UTF-8", re, got)
	}
	for _, bad := range []string{"<", ">", "&", "\u2028", "\u2029"} {
		if strings.Contains(string(got), bad) {
			t.Fatalf("appendJSON(%+v) = %s holds a raw %q", re, got, bad)
		}
	}
	for _, c := range got {
		if c < 0x20 {
			t.Fatalf("appendJSON(%+v) = %q holds a raw control byte", re, got)
		}
	}
	var back requestEvidence
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("appendJSON(%+v) = %s does not read back: %v", re, got, err)
	}
	if allValidUTF8(re) && back != re {
		t.Fatalf("appendJSON(%+v) reads back as %+v", re, back)
	}
}

// allValidUTF8 reports whether every field of re is valid UTF-8, so that it
// reads back unchanged (json replaces invalid bytes with U+FFFD).
func allValidUTF8(re requestEvidence) bool {
	for _, s := range []string{re.Base, re.Path, re.Digest, re.Nonce, re.Signature} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func reviewKey(t *testing.T, b byte) identity.PublicKey {
	t.Helper()
	k, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// The evidence kept for a peer's request, whatever its signature base,
// path, nonce and signature, is json.Marshal's JSON: through the compact
// form when the base is the plain one, and the whole base otherwise.
func TestEvidenceReviewRequestEvidenceJSON(t *testing.T) {
	t.Parallel()
	caller, audience := reviewKey(t, 1), reviewKey(t, 2)
	for _, s := range reviewEvidenceStrings() {
		re := requestEvidence{Path: "/v1/call/echo", Created: 1700000000, Expires: 1700000300, Nonce: "n" + s, Signature: "sig" + s}
		base := plainRequestBase(caller, audience, "echo", nil, re)
		for _, b := range []string{base, base + s, strings.Replace(base, "\"@path\": /v1/call/echo", "\"@path\": /v1/call/echo"+s, 1)} {
			got := requestEvidenceJSON(b, re.Signature, caller, audience, "echo", nil)
			if !json.Valid(got) {
				t.Fatalf("base %q: evidence %s is not JSON", b, got)
			}
			var back requestEvidence
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if utf8.ValidString(b) {
				// What receiptFromLog reads back is the base that was signed.
				if back.Base != "" && back.Base != b {
					t.Fatalf("base %q kept as %q", b, back.Base)
				}
				if back.Base == "" && plainRequestBase(caller, audience, "echo", nil, back) != b {
					t.Fatalf("base %q kept in a compact form %s that does not rebuild it", b, got)
				}
			}
			for _, bad := range []string{"<", ">", "&", "\u2028", "\u2029"} {
				if strings.Contains(string(got), bad) {
					t.Fatalf("base %q: evidence %s holds a raw %q", b, got, bad)
				}
			}
		}
	}
}

// FuzzRequestEvidenceJSON compares the hand-written evidence JSON with
// json.Marshal on any fields.
func FuzzRequestEvidenceJSON(f *testing.F) {
	f.Add("base", "/v1/call/echo", "sha-256=:x:", int64(1), int64(2), "nonce", "sig")
	f.Add("\u2028<", "\xff", "\"", int64(math.MinInt64), int64(0), "\\", "")
	f.Add("", "", "", int64(0), int64(0), "", "\x00&>")
	f.Fuzz(func(t *testing.T, base, path, digest string, created, expires int64, nonce, sig string) {
		re := requestEvidence{Base: base, Path: path, Digest: digest, Created: created, Expires: expires, Nonce: nonce, Signature: sig}
		got := re.appendJSON(nil)
		want, err := json.Marshal(re)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendJSON(%+v)\n got %s\nwant %s", re, got, want)
		}
	})
}
