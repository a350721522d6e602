package sanitize

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/treaty-dev/treaty/internal/lookalike"
)

// CategoryCanary is a value the node must never send, whatever the peer's
// policy: its own identity key and the values an operator lists
// (sanitize.canaries). A canary finding always blocks.
const CategoryCanary Category = "canary"

// minCanary is the shortest canary accepted: shorter values would match
// ordinary text.
const minCanary = 8

// canaryForms lists the forms in which v is looked for: as is, hex, base64
// (standard and URL alphabets, padded or not, at each of the three byte
// alignments a value can have inside a longer base64 payload), base32 (at
// each of the five alignments inside a longer base32 payload: a binary
// value there, such as the node's key, is never decoded as text), URL
// percent-encoding and JSON string escapes. Matching is ASCII
// case-insensitive, which also covers upper-case hex and lower-case base32.
func canaryForms(v []byte) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if len(s) >= minCanary && !seen[strings.ToLower(s)] {
			seen[strings.ToLower(s)] = true
			out = append(out, s)
		}
	}
	add(string(v))
	add(hex.EncodeToString(v))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		add(enc.EncodeToString(v))
		for shift := range 3 {
			add(b64Core(enc, v, shift))
		}
	}
	for shift := range 5 {
		add(b32Core(v, shift))
	}
	add(url.QueryEscape(string(v)))
	add(url.PathEscape(string(v)))
	add(string(escapeJSON(v)))
	return out
}

// b64Core is the part of the base64 encoding of v that does not depend on
// the bytes around it when v starts shift bytes into a 3-byte group: the
// characters whose 6 bits all come from v.
func b64Core(enc *base64.Encoding, v []byte, shift int) string {
	buf := make([]byte, shift+len(v))
	copy(buf[shift:], v)
	s := enc.WithPadding(base64.NoPadding).EncodeToString(buf)
	first := (8*shift + 5) / 6 // first character starting at or after bit 8*shift
	last := 8 * len(buf) / 6   // characters [first, last) end within v
	if first >= last {
		return ""
	}
	return s[first:last]
}

// b32Core is b64Core for RFC 4648 base32: the characters whose 5 bits all
// come from v when v starts shift bytes into a 5-byte group.
func b32Core(v []byte, shift int) string {
	buf := make([]byte, shift+len(v))
	copy(buf[shift:], v)
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(buf)
	first := (8*shift + 4) / 5 // first character starting at or after bit 8*shift
	last := 8 * len(buf) / 5   // characters [first, last) end within v
	if first >= last {
		return ""
	}
	return s[first:last]
}

// canaryIndex finds canaries in any of their forms in one pass.
type canaryIndex struct {
	ac    *acMatcher
	forms []string
	// A filter in front of ac, which walks a large table (raw key bytes
	// use most byte values): every occurrence of a form of at least
	// minLen bytes covers a whole gram (canaryGram bytes) starting at a
	// multiple of stride = minLen-canaryGram+1, and that gram is one of
	// the form's first stride grams. Data where no such sampled gram is
	// one of those holds no form.
	stride int
	bits   [1 << gramHashBits / 64]uint64 // the grams' hashes: most misses stop here
	grams  map[uint32]bool
}

const (
	canaryGram   = 4
	gramHashBits = 16
)

func newCanaryIndex(values [][]byte) (*canaryIndex, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var forms []string
	for i, v := range values {
		if len(v) < minCanary {
			return nil, fmt.Errorf("sanitize: Config.Canaries[%d] is %d bytes, want at least %d", i, len(v), minCanary)
		}
		forms = append(forms, canaryForms(v)...)
	}
	ci := &canaryIndex{ac: newACMatcher(forms), forms: forms, grams: map[uint32]bool{}}
	minLen := len(forms[0])
	for _, f := range forms {
		minLen = min(minLen, len(f))
	}
	ci.stride = minLen - canaryGram + 1 // minLen >= minCanary > canaryGram
	for _, f := range forms {
		for off := range ci.stride {
			g := gramAt([]byte(f), off)
			h := gramHash(g)
			ci.bits[h/64] |= 1 << (h % 64)
			ci.grams[g] = true
		}
	}
	return ci, nil
}

// gramAt is the canaryGram bytes at d[i:], ASCII lowercased (the matcher's
// case folding).
func gramAt(d []byte, i int) uint32 {
	return uint32(lowerASCII(d[i])) | uint32(lowerASCII(d[i+1]))<<8 | uint32(lowerASCII(d[i+2]))<<16 | uint32(lowerASCII(d[i+3]))<<24
}

func gramHash(g uint32) uint32 { return (g * 0x9E3779B1) >> (32 - gramHashBits) }

// mayHold reports whether d may hold a form; false means it holds none.
func (ci *canaryIndex) mayHold(d []byte) bool {
	for j := 0; j+canaryGram <= len(d); j += ci.stride {
		g := gramAt(d, j)
		if h := gramHash(g); ci.bits[h/64]&(1<<(h%64)) != 0 && ci.grams[g] {
			return true
		}
	}
	return false
}

// scanCanaries reports every form of every canary in the scanned data,
// also where line breaks split it or lookalike letters spell it.
func (sc *scanner) scanCanaries() {
	ci := sc.s.canaries
	if ci == nil {
		return
	}
	if ci.mayHold(sc.data) {
		for _, h := range ci.ac.hits(sc.data, nil) {
			s := int(h.start)
			sc.add(s, s+int(ci.ac.patLens[h.pat]), CategoryCanary, "canary")
		}
	}
	sc.scanCanaryView()
}

// scanCanaryView looks for canaries in a view of the data with every line
// break (and the indentation after it) taken out and every lookalike letter
// of another script read as the Latin letter it renders as. The joins the
// other detectors see need value-like pieces either side of a break; a
// canary is an exact value of at least minCanary bytes, so a wrap anywhere
// inside one, or a Cyrillic о for an o, cannot make it ordinary text.
func (sc *scanner) scanCanaryView() {
	d, ci := sc.data, sc.s.canaries
	i := nextCanaryViewByte(d, 0)
	if i == len(d) {
		return
	}
	var view []byte
	var at, end []int32 // the data span of each view byte
	last := 0
	for ; i < len(d); i = nextCanaryViewByte(d, i+1) {
		var skip, n int
		var c byte
		if d[i] < utf8.RuneSelf {
			b, ok := breakAt(d, i)
			if !ok {
				continue
			}
			skip, n = b.s, b.e-b.s
		} else {
			r, size := utf8.DecodeRune(d[i:])
			l, ok := lookalike.Letter(r)
			if !ok {
				continue
			}
			skip, n, c = i, size, byte(l)
		}
		if view == nil {
			view, at, end = make([]byte, 0, len(d)), make([]int32, 0, len(d)), make([]int32, 0, len(d))
		}
		for k := last; k < skip; k++ {
			view, at, end = append(view, d[k]), append(at, int32(k)), append(end, int32(k+1))
		}
		if c != 0 {
			view, at, end = append(view, c), append(at, int32(skip)), append(end, int32(skip+n))
		}
		last = skip + n
		i = last - 1
	}
	if view == nil {
		return
	}
	for k := last; k < len(d); k++ {
		view, at, end = append(view, d[k]), append(at, int32(k)), append(end, int32(k+1))
	}
	if !ci.mayHold(view) {
		return
	}
	for _, h := range ci.ac.hits(view, nil) {
		s, e := int(h.start), int(h.start)+int(ci.ac.patLens[h.pat])
		if int(end[e-1]-at[s]) == e-s {
			continue // the data holds it as it is: found above
		}
		sc.add(int(at[s]), int(end[e-1]), CategoryCanary, "canary:view")
	}
}

// nextCanaryViewByte is the first index from i of a byte that may start a
// line break or a non-ASCII letter, or len(d).
func nextCanaryViewByte(d []byte, i int) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(d) { // skip eight ASCII bytes at a time, as nextBreakByte
		x := binary.LittleEndian.Uint64(d[i:])
		nl, bs := x^(ones*'\n'), x^(ones*'\\')
		if ((nl-ones)&^nl|(bs-ones)&^bs|x)&high != 0 {
			break
		}
		i += 8
	}
	for i < len(d) && d[i] != '\n' && d[i] != '\\' && d[i] < 0xC0 {
		i++
	}
	return i
}

// vaultForms are the forms of a pseudonymized value looked up as a whole
// word: a value pseudonymized for one peer is caught in these forms in what
// is sent to any peer, even where the detector that first found it would
// not see it.
func vaultForms(v []byte) []string {
	if len(v) < minVaultWord {
		return nil
	}
	fs := []string{string(v), hex.EncodeToString(v),
		base64.RawStdEncoding.EncodeToString(v), base64.RawURLEncoding.EncodeToString(v),
		url.QueryEscape(string(v))}
	for i, f := range fs {
		fs[i] = strings.ToLower(f)
	}
	return fs
}

// wordSep marks the bytes that end a word for the vault lookup: blanks,
// quotes, brackets and the separators of lists, query strings and escapes.
var wordSep = func() (t [256]bool) {
	for _, c := range []byte(" \t\n\r\"'`<>()[]{},;\\&?#|=") {
		t[c] = true
	}
	return t
}()

// scanVaultValues reports words that are, in one of vaultForms, a value
// the vault holds for any peer, with that value's category. It holds the
// vault's lock for one pass and looks up only words whose length and edge
// bytes some stored form has (vaultKey).
func (sc *scanner) scanVaultValues() {
	v := sc.s.vault
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.values) == 0 {
		return
	}
	d := sc.data
	var lb []byte
	// Only words of at least minVaultWord bytes can be a form. A word
	// starts at i (after a separator, or at 0); if one that long does, it
	// holds d[i+minVaultWord-1]: when that byte is a separator, or one sits
	// between, i jumps past it, so short words cost about one load.
	for i := 0; i+minVaultWord <= len(d); {
		j := i + minVaultWord - 1
		if wordSep[d[j]] {
			i = j + 1
			continue
		}
		k := j
		for k > i && !wordSep[d[k-1]] {
			k--
		}
		if k > i {
			i = k
			continue
		}
		j++
		for j < len(d) && !wordSep[d[j]] {
			j++
		}
		// Trim the punctuation a word picks up in prose.
		s, e := i, j
		for e > s && (d[e-1] == '.' || d[e-1] == ':' || d[e-1] == '!') {
			e--
		}
		if n := e - s; n >= minVaultWord && n <= maxVaultWord && v.formLens[n] > 0 && v.hasKey(vaultKey(d[s:e])) {
			lb = append(lb[:0], d[s:e]...)
			for k, c := range lb {
				lb[k] = lowerASCII(c)
			}
			if r, ok := v.values[string(lb)]; ok {
				sc.add(s, e, r.cat, "vault-value")
			}
		}
		i = j + 1
	}
}

// hasKey reports whether some stored form has key k.
func (v *vault) hasKey(k uint32) bool { return v.keySet[k/64]&(1<<(k%64)) != 0 }

// vaultKeyBits sizes the vault's word filter (vault.keys).
const vaultKeyBits = 15

// vaultKey hashes a word's length and its first and last two bytes, ASCII
// lowercased, into the vault's word filter. w has at least 2 bytes.
func vaultKey(w []byte) uint32 {
	n := len(w)
	h := uint32(n) ^ uint32(lowerASCII(w[0]))<<8 ^ uint32(lowerASCII(w[1]))<<16 ^
		uint32(lowerASCII(w[n-2]))<<24 ^ uint32(lowerASCII(w[n-1]))*0x01000193
	return (h * 0x9E3779B1) >> (32 - vaultKeyBits)
}

// minVaultWord and maxVaultWord bound the words looked up in the vault:
// shorter values have no forms, longer forms are not indexed.
const (
	minVaultWord = 6
	maxVaultWord = 512
)

// tokenCategory is the category named in a pseudonym "<category:hex>".
func tokenCategory(tok string) Category {
	t := strings.TrimPrefix(tok, "<")
	c, _, _ := strings.Cut(t, ":")
	return Category(c)
}
