package sanitize

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// These tests attack the sampled 4-gram filter in front of the canary
// matcher (canaryIndex.mayHold): a false negative there lets a canary leave
// unscrubbed. The reference is the matcher itself (acMatcher.hits), which
// the filter must never contradict: scanCanaries is its only caller, and it
// runs on every layer the scanner decodes, so "the matcher finds a form in
// d" implying "mayHold(d)" for every d is exactly "the filter changes no
// finding".

// reviewCanarySets are canary sets whose shortest form sets every stride
// the filter can have in practice, with raw bytes across the whole byte
// range, upper-case letters, and characters that URL and JSON escape.
func reviewCanarySets() [][][]byte {
	r := rand.New(rand.NewPCG(11, 12))
	bin := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	return [][][]byte{
		{[]byte("hunter22")},                      // the shortest canary: stride 5
		{bin(8)},                                  // binary, shortest
		{[]byte("ABCDEFGHIJ")},                    // upper case only
		{[]byte(`pa"ss\wo/rd <&> 100%`)},          // escapes in every form
		{bin(32), bin(64)},                        // the node's key forms
		{[]byte("operator-canary-9f3e"), bin(32)}, // mixed lengths
		{[]byte("caf\u00e9-\u2028-canary")},       // non-ASCII text
		{bin(9), bin(10), bin(11)},                // base64 cores of every alignment
	}
}

// caseVariants are the ways a form can be cased in data the matcher still
// matches (it folds ASCII case).
func caseVariants(f []byte) [][]byte {
	alt := bytes.Clone(f)
	for i := range alt {
		if i%2 == 0 {
			alt[i] = upperASCII(alt[i])
		} else {
			alt[i] = lowerASCII(alt[i])
		}
	}
	up, low := bytes.Clone(f), bytes.Clone(f)
	for i := range up {
		up[i], low[i] = upperASCII(up[i]), lowerASCII(low[i])
	}
	return [][]byte{f, up, low, alt}
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// Every form of every canary, in every ASCII casing, at every offset
// relative to the sampling grid (prefixes up to two strides and more),
// with every short tail, between fillers that hold no gram of any form,
// and between fillers made of the form's own pieces, passes the filter.
func TestCanaryFilterReviewEveryAlignment(t *testing.T) {
	t.Parallel()
	for si, values := range reviewCanarySets() {
		ci, err := newCanaryIndex(values)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, form := range ci.forms {
			for _, f := range caseVariants([]byte(form)) {
				fillers := []func(n int) []byte{
					func(n int) []byte { return bytes.Repeat([]byte{0}, n) },
					func(n int) []byte { return bytes.Repeat([]byte{'~'}, n) },
					func(n int) []byte { // the form's own tail, cut: grams of the form, in the wrong place
						src := bytes.Repeat(f[1:], n/(len(f)-1)+1)
						return src[:n]
					},
				}
				for _, fill := range fillers {
					for pre := 0; pre <= 2*ci.stride+canaryGram+1; pre++ {
						for _, post := range []int{0, 1, 2, 3, canaryGram, ci.stride, ci.stride + canaryGram} {
							d := slices.Concat(fill(pre), f, fill(post))
							if len(ci.ac.hits(d, nil)) == 0 {
								t.Fatalf("set %d: the matcher misses form %q in %q: the test is wrong", si, f, d)
							}
							if !ci.mayHold(d) {
								t.Fatalf("set %d: the filter (stride %d) hides form %q at %d of %d bytes: %q", si, ci.stride, f, pre, len(d), d)
							}
							checked++
						}
					}
				}
			}
		}
		if checked == 0 {
			t.Fatalf("set %d: nothing checked", si)
		}
	}
}

// The filter's own edges: data shorter than a gram, data exactly as long
// as the shortest form, and a form at the very start and the very end.
func TestCanaryFilterReviewEdges(t *testing.T) {
	t.Parallel()
	ci, err := newCanaryIndex([][]byte{[]byte("hunter22")})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "h", "hu", "hun", "hunt", "hunte", "hunter2"} {
		if len(ci.ac.hits([]byte(d), nil)) != 0 {
			t.Fatalf("%q: the matcher finds a form in a prefix", d)
		}
		ci.mayHold([]byte(d)) // must not read past d
	}
	minLen := len(ci.forms[0])
	for _, f := range ci.forms {
		minLen = min(minLen, len(f))
		for _, d := range []string{f, f + "x", "x" + f, f + f, strings.Repeat("x", 97) + f, f + strings.Repeat("x", 97)} {
			if !ci.mayHold([]byte(d)) {
				t.Fatalf("form %q hidden in %q", f, d)
			}
		}
	}
	if ci.stride != minLen-canaryGram+1 {
		t.Fatalf("stride %d, want %d", ci.stride, minLen-canaryGram+1)
	}
}

// Random data with a random form (randomly cased, possibly cut) at a random
// place: the filter never says no where the matcher finds a form, over
// every canary set.
func TestCanaryFilterReviewRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 14))
	for _, values := range reviewCanarySets() {
		ci, err := newCanaryIndex(values)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for range 5000 {
			d := make([]byte, r.IntN(200))
			for i := range d {
				d[i] = byte(r.UintN(256))
			}
			for range r.IntN(3) {
				f := []byte(ci.forms[r.IntN(len(ci.forms))])
				f = caseVariants(f)[r.IntN(4)]
				if r.IntN(4) == 0 {
					f = f[:r.IntN(len(f))]
				}
				at := r.IntN(len(d) + 1)
				d = slices.Concat(d[:at], f, d[at:])
			}
			if len(ci.ac.hits(d, nil)) > 0 {
				found++
				if !ci.mayHold(d) {
					t.Fatalf("filter (stride %d) hides a form in %q", ci.stride, d)
				}
			}
		}
		if found == 0 {
			t.Fatal("no form placed: the test proves nothing")
		}
	}
}

// FuzzCanaryFilter compares the filter with the matcher on any data, and
// on that data with a form of a canary inserted anywhere in any casing.
func FuzzCanaryFilter(f *testing.F) {
	sets := reviewCanarySets()
	var cis []*canaryIndex
	for _, values := range sets {
		ci, err := newCanaryIndex(values)
		if err != nil {
			f.Fatal(err)
		}
		cis = append(cis, ci)
	}
	f.Add([]byte("see hunter22 ok"), uint8(0), uint8(0), uint16(0), uint64(0))
	f.Add([]byte("xxxx"), uint8(4), uint8(3), uint16(1), uint64(0xaaaaaaaaaaaaaaaa))
	f.Add([]byte{}, uint8(7), uint8(200), uint16(0), uint64(1))
	f.Add(bytes.Repeat([]byte{0}, 41), uint8(3), uint8(5), uint16(17), uint64(0xffffffffffffffff))
	f.Fuzz(func(t *testing.T, d []byte, set, form uint8, at uint16, caseMask uint64) {
		ci := cis[int(set)%len(cis)]
		check := func(d []byte) {
			if len(ci.ac.hits(d, nil)) > 0 && !ci.mayHold(d) {
				t.Fatalf("filter (stride %d) hides a form in %q", ci.stride, d)
			}
		}
		check(d)
		fm := []byte(ci.forms[int(form)%len(ci.forms)])
		for i := range fm {
			if caseMask>>(i%64)&1 == 1 && 'a' <= fm[i] && fm[i] <= 'z' {
				fm[i] -= 'a' - 'A'
			}
		}
		k := int(at) % (len(d) + 1)
		check(slices.Concat(d[:k], fm, d[k:]))
	})
}

// End to end: a text canary and a binary one block in every form the
// sanitizer decodes (each through the layer that decodes it), at the start,
// in the middle and at the end of the input, under a policy that allows
// everything else.
func TestCanaryReviewEveryEncodingBlocks(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(15, 16))
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(r.UintN(256))
	}
	text := []byte("Operator-Canary-7781")
	s, err := New(Config{PseudonymKey: testKey, Canaries: [][]byte{key, text}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allow := Policy{Secrets: ActionAllow, PII: ActionAllow, Categories: map[Category]Action{CategoryCanary: ActionAllow}}
	each := func(v []byte, sep string, enc func(c byte) string) string {
		var b strings.Builder
		for i, c := range v {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(enc(c))
		}
		return b.String()
	}
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding)
	forms := map[string]string{}
	for name, v := range map[string][]byte{"key": key, "text": text} {
		forms[name+" hex"] = hex.EncodeToString(v)
		forms[name+" HEX"] = strings.ToUpper(hex.EncodeToString(v))
		for ename, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "raw std": base64.RawStdEncoding, "url": base64.URLEncoding, "raw url": base64.RawURLEncoding} {
			forms[name+" base64 "+ename] = enc.EncodeToString(v)
			for shift := range 3 {
				// Inside a longer binary payload, at each alignment.
				p := slices.Concat(bytes.Repeat([]byte{0xF0}, shift+3), v, []byte{0x0F, 0xAA, 0x55})
				forms[fmt.Sprintf("%s base64 %s in binary, shift %d", name, ename, shift)] = enc.EncodeToString(p)
			}
		}
		for _, enc := range []*base32.Encoding{base32.StdEncoding, b32} {
			forms[name+" base32"] = enc.EncodeToString(v)
			forms[name+" base32 lower"] = strings.ToLower(enc.EncodeToString(v))
			for shift := range 5 {
				// Inside a longer binary payload, at each alignment.
				p := slices.Concat(bytes.Repeat([]byte{0xF0}, shift+5), v, []byte{0x0F, 0xAA, 0x55})
				forms[fmt.Sprintf("%s base32 in binary, shift %d", name, shift)] = enc.EncodeToString(p)
			}
		}
		forms[name+" query"] = url.QueryEscape(string(v))
		forms[name+" path"] = url.PathEscape(string(v))
		forms[name+" json"] = `{"v":"` + string(escapeJSON(v)) + `"}`
	}
	// The text canary through the layers that decode text.
	forms["raw"] = string(text)
	forms["raw upper"] = strings.ToUpper(string(text))
	forms["base64 of text"] = base64.StdEncoding.EncodeToString([]byte("the value is " + string(text) + " ok"))
	forms["base32 of text"] = b32.EncodeToString([]byte("the value is " + string(text) + " ok"))
	forms["base32 lower of text"] = strings.ToLower(b32.EncodeToString([]byte("the value is " + string(text) + " ok")))
	forms["hex of text"] = hex.EncodeToString([]byte("the value is " + string(text) + " ok"))
	forms["every char \\u00XX"] = `{"v":"` + each(text, "", func(c byte) string { return fmt.Sprintf(`\u%04x`, c) }) + `"}`
	forms["every char %XX"] = "q=" + each(text, "", func(c byte) string { return fmt.Sprintf("%%%02X", c) })
	forms["every char &#NN;"] = each(text, "", func(c byte) string { return fmt.Sprintf("&#%d;", c) })
	forms["fullwidth"] = each(text, "", func(c byte) string {
		if c > 0x20 && c < 0x7f {
			return string(rune(0xFF01 + int(c) - 0x21))
		}
		return string(c)
	})
	forms["zero-width"] = each(text, "\u200b", func(c byte) string { return string(c) })
	forms["soft hyphen"] = each(text, "\u00ad", func(c byte) string { return string(c) })
	forms["word joiner"] = each(text, "\u2060", func(c byte) string { return string(c) })
	forms["BOM"] = each(text, "\ufeff", func(c byte) string { return string(c) })
	for name, form := range forms {
		for _, in := range []string{form, "see " + form + " ok", "x\n" + form} {
			res := s.DryRun(peerA, allow, []byte(in))
			if res.Action != ActionBlock {
				t.Errorf("%s in %q: action %s, want block; findings %v", name, in, res.Action, found([]byte(in), res.Findings))
			}
		}
	}
}

// b32Core and b64Core are found in the encoding of any payload that holds
// the value at the matching alignment, whatever the bytes around it.
func TestCanaryReviewCoresInEveryPayload(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(17, 18))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	for range 300 {
		v := rnd(minCanary + r.IntN(40))
		for pre := range 13 {
			for post := range 7 {
				p := slices.Concat(rnd(pre), v, rnd(post))
				c32 := b32Core(v, pre%5)
				if len(c32) < 8*len(v)/5-2 {
					t.Fatalf("b32Core of %d bytes at %d: %d characters", len(v), pre%5, len(c32))
				}
				for _, enc := range []*base32.Encoding{base32.StdEncoding, base32.StdEncoding.WithPadding(base32.NoPadding)} {
					if !strings.Contains(enc.EncodeToString(p), c32) {
						t.Fatalf("b32Core(%x, %d) = %s not in %s", v, pre%5, c32, enc.EncodeToString(p))
					}
				}
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
					c64 := b64Core(enc, v, pre%3)
					if !strings.Contains(enc.EncodeToString(p), c64) {
						t.Fatalf("b64Core(%x, %d) = %s not in %s", v, pre%3, c64, enc.EncodeToString(p))
					}
				}
			}
		}
	}
}
