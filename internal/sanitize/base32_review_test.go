package sanitize

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// These tests attack the base32 decoding of commit 5643bef (each case with
// its own alphabet, and a 40-byte UTF-8 probe before the whole run is
// decoded): a secret in base32 must be decoded and scanned exactly when it
// was before. The reference is the earlier decoding, written out below.

// refBase32Text is base32 decoding as it was before the probe: upper-case
// the run, decode it whole, keep it when it is text.
func refBase32Text(src []byte, upper bool) ([]byte, bool) {
	for len(src)%8 == 1 || len(src)%8 == 3 || len(src)%8 == 6 {
		src = src[:len(src)-1]
	}
	if !upper {
		src = bytes.ToUpper(src)
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	buf := make([]byte, enc.DecodedLen(len(src)))
	n, err := enc.Decode(buf, src)
	if err != nil || !textLike(buf[:n]) {
		return nil, false
	}
	return buf[:n], true
}

// reviewPayloads are payloads whose base32 runs test the probe: text with
// a multi-byte character across the probe's end (byte 40) in every
// position, invalid UTF-8 just inside and just outside the probe, control
// characters, and random bytes.
func reviewPayloads(r *rand.Rand) [][]byte {
	var out [][]byte
	secret := []byte(" and the value is Operator-Canary-7781 ok")
	for _, ch := range []string{"\u00e9", "\u20ac", "\U0001F600", "\u2028"} {
		for at := 30; at <= 44; at++ {
			p := slices.Concat(bytes.Repeat([]byte{'a'}, at), []byte(ch), secret)
			out = append(out, p, p[:40], p[:41], p[:39])
		}
	}
	for _, bad := range [][]byte{{0xff}, {0xc0, 0x80}, {0xed, 0xa0, 0x80}, {0xe2, 0x82}, {0xf4, 0x90, 0x80, 0x80}, {0x80}} {
		for at := 0; at <= 48; at += 3 {
			out = append(out, slices.Concat(bytes.Repeat([]byte{'b'}, at), bad, secret))
		}
		// A truncated character at the very end of the probe, completed or not.
		out = append(out, slices.Concat(bytes.Repeat([]byte{'c'}, 40-len(bad)), bad, secret))
	}
	for n := range 12 {
		out = append(out, slices.Concat(bytes.Repeat([]byte{1}, n), secret)) // control characters: textLike's ratio
	}
	for range 3000 {
		p := make([]byte, r.IntN(120))
		for i := range p {
			switch r.IntN(4) {
			case 0:
				p[i] = byte(r.UintN(256))
			default:
				p[i] = byte(0x20 + r.UintN(0x5f))
			}
		}
		if r.IntN(2) == 0 && len(p) > 0 { // a multi-byte character somewhere
			at := r.IntN(len(p))
			p = slices.Concat(p[:at], []byte("\u00e9\u20ac\U0001F600")[r.IntN(3):r.IntN(3)+6], p[at:])
		}
		out = append(out, p)
	}
	return out
}

// The new decoding keeps exactly the runs the whole-run decoding kept, with
// the same text, in upper and lower case, with every undecodable tail.
func TestBase32ReviewMatchesWholeDecode(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(21, 22))
	s := newTest(t)
	sc := &scanner{s: s}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	kept, probed := 0, 0
	for _, p := range reviewPayloads(r) {
		up := b32.EncodeToString(p)
		for _, tail := range []string{"", "A", "AB2", "AB2345"} {
			for _, upper := range []bool{true, false} {
				src := up + tail
				if !upper {
					src = strings.ToLower(src)
				}
				want, wok := refBase32Text([]byte(src), upper)
				got, gok := sc.base32Text([]byte(src), upper)
				if wok != gok || !bytes.Equal(got, want) {
					t.Fatalf("run %q (upper %v): decoded %q, %v; whole-run decoding gives %q, %v", src, upper, got, gok, want, wok)
				}
				if wok {
					kept++
				}
				if len(src) > 64 {
					probed++
				}
			}
		}
	}
	if kept == 0 || probed == 0 {
		t.Fatalf("kept %d, probed %d: the test proves nothing", kept, probed)
	}
}

// utf8Prefix is true exactly for the byte strings that some continuation
// makes valid UTF-8: every prefix of valid text is, and a string it refuses
// stays invalid whatever follows.
func TestBase32ReviewUTF8Prefix(t *testing.T) {
	t.Parallel()
	text := []byte("a\u00e9\u20ac\U0001F600\u2028z\U0010FFFF\u0800")
	for i := range text {
		for k := i; k <= len(text) && utf8.RuneStart(text[i]); k++ {
			if !utf8Prefix(text[i:k]) {
				t.Fatalf("utf8Prefix(%q) = false for a prefix of valid text", text[i:k])
			}
		}
	}
	// Every string of up to three bytes from bytes that matter, with a
	// valid head: refused ones stay invalid with any of the tails.
	interesting := []byte{'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff}
	tails := [][]byte{nil, {0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0xa0, 0x80}, {0x90, 0x80, 0x80}, {0xbf}, {0xbf, 0xbf}, {0x8f, 0xbf, 0xbf}, {'a'}}
	var strs [][]byte
	for _, a := range interesting {
		strs = append(strs, []byte{a})
		for _, b := range interesting {
			strs = append(strs, []byte{a, b})
			for _, c := range interesting {
				strs = append(strs, []byte{a, b, c})
			}
		}
	}
	for _, s := range strs {
		p := slices.Concat([]byte("head"), s)
		completable := false
		for _, tl := range tails {
			if utf8.Valid(slices.Concat(p, tl)) {
				completable = true
			}
		}
		if completable && !utf8Prefix(p) {
			t.Fatalf("utf8Prefix(%q) = false, but it completes to valid UTF-8", p)
		}
		if !completable && utf8Prefix(p) && utf8.Valid(p) {
			t.Fatalf("utf8Prefix(%q): valid text not completable: the tails are wrong", p)
		}
	}
}

// End to end: a text canary inside base32 (either case, padded or not, a
// multi-byte character across the probe's end before it, at the start or
// the end of the input, after a JSON \n) blocks.
func TestBase32ReviewSecretBlocks(t *testing.T) {
	t.Parallel()
	canary := "Operator-Canary-7781"
	s, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{[]byte(canary)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allow := Policy{Secrets: ActionAllow, PII: ActionAllow, Categories: map[Category]Action{CategoryCanary: ActionAllow}}
	n := 0
	for _, ch := range []string{"", "\u00e9", "\u20ac", "\U0001F600"} {
		for at := 34; at <= 42; at++ {
			payload := strings.Repeat("x", at) + ch + " value " + canary + " end"
			for _, enc := range []*base32.Encoding{base32.StdEncoding, base32.StdEncoding.WithPadding(base32.NoPadding)} {
				for _, run := range []string{enc.EncodeToString([]byte(payload)), strings.ToLower(enc.EncodeToString([]byte(payload)))} {
					for _, in := range []string{run, "data: " + run, run + " ok", `{"v":"line\n` + run + `"}`} {
						n++
						if res := s.DryRun(peerA, allow, []byte(in)); res.Action != ActionBlock {
							t.Errorf("%q (payload %q): action %s, want block; findings %v", in, payload, res.Action, found([]byte(in), res.Findings))
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing checked")
	}
}

// FuzzBase32Text compares the decoding with the whole-run decoding on the
// base32 of any payload, in either case, with any undecodable tail.
func FuzzBase32Text(f *testing.F) {
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u20ac value Operator-Canary-7781"), true, uint8(0))
	f.Add([]byte("\xffhello there, this is a long enough text to be probed at all"), false, uint8(1))
	f.Add([]byte("\x01\x02\x03"), true, uint8(3))
	s, err := New(Config{PseudonymKey: testKey})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	f.Fuzz(func(t *testing.T, payload []byte, upper bool, tail uint8) {
		src := b32.EncodeToString(payload) + "AB2345"[:tail%7]
		if !upper {
			src = strings.ToLower(src)
		}
		sc := &scanner{s: s}
		want, wok := refBase32Text([]byte(src), upper)
		got, gok := sc.base32Text([]byte(src), upper)
		if wok != gok || !bytes.Equal(got, want) {
			t.Fatalf("run %q (upper %v): decoded %q, %v; whole-run decoding gives %q, %v", src, upper, got, gok, want, wok)
		}
	})
}

// An encoded secret glued to a path or a name (/api/..., x-..., token_...)
// is decoded from after the separator: before, the name's bytes garbled
// the whole run's decoding and the secret passed, in base64 and base32
// alike. Binary payloads and ordinary paths in the same places still pass.
func TestEncodedRunGluedToANameBlocks(t *testing.T) {
	t.Parallel()
	s := newTest(t)
	secret := "token: ghp_" + fake(3, alnum, 36) + " end"
	if res := s.DryRun(peerA, DefaultPolicy(), []byte(secret)); res.Action != ActionBlock {
		t.Fatalf("the plain secret: action %s, want block", res.Action)
	}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	payloads := map[string]string{
		"base64":     base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64 raw": base64.RawStdEncoding.EncodeToString([]byte(secret)),
		"base64url":  base64.RawURLEncoding.EncodeToString([]byte(secret)),
		"base32":     b32.EncodeToString([]byte(secret)),
		"base32 low": strings.ToLower(b32.EncodeToString([]byte(secret))),
		"hex":        hex.EncodeToString([]byte(secret)),
	}
	prefixes := []string{"/", "/api/", "api/", "x-", "token_", "a+", "/v1/files/", "dl/abc-", "some_name-", "/a/b/c/d/e/"}
	for name, p := range payloads {
		for _, pre := range prefixes {
			for _, in := range []string{pre + p, "GET " + pre + p + " HTTP/1.1", `{"url":"https://x.example` + pre + p + `"}`} {
				if res := s.DryRun(peerA, DefaultPolicy(), []byte(in)); res.Action != ActionBlock {
					t.Errorf("%s after %q in %q: action %s, want block", name, pre, in, res.Action)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(41, 42))
	for range 200 {
		bin := make([]byte, 16+r.IntN(64))
		for i := range bin {
			bin[i] = byte(r.UintN(256))
		}
		for _, pre := range prefixes {
			if pre == "token_" {
				continue // a key name: the generic assignment rule reads any long value after it
			}
			for _, p := range []string{base64.StdEncoding.EncodeToString(bin), base64.RawURLEncoding.EncodeToString(bin), hex.EncodeToString(bin), b32.EncodeToString(bin)} {
				if res := s.DryRun(peerA, DefaultPolicy(), []byte(pre+p)); res.Action != ActionPass {
					t.Fatalf("binary payload %q: action %s, want pass; findings %v", pre+p, res.Action, found([]byte(pre+p), res.Findings))
				}
			}
		}
	}
	for _, in := range []string{"/assets/app-3f2a9c1b7d8e4f60a1b2c3d4e5f6a7b8.js", "https://example.com/some-long-article-title-about-base64-and-paths",
		"/users/alice_smith-johnson/repositories/treaty-federation-layer", "x-request-id-0f8e7d6c5b4a39281706f5e4d3c2b1a0"} {
		if res := s.DryRun(peerA, DefaultPolicy(), []byte(in)); res.Action != ActionPass {
			t.Errorf("%q: action %s, want pass; findings %v", in, res.Action, found([]byte(in), res.Findings))
		}
	}
}
