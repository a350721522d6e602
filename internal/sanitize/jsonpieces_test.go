package sanitize

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// jsonPiecesByByte is jsonPieces with its escape walk one byte at a time:
// the reference the faster walk must agree with.
func jsonPiecesByByte(d []byte, toks []jsonTok, fs, fe int, cur *jsonCursor, out []piece) []piece {
	i, _ := slices.BinarySearchFunc(toks, fs, func(t jsonTok, pos int) int {
		if t.e <= pos {
			return -1
		}
		if t.s > pos {
			return 1
		}
		return 0
	})
	for ; i < len(toks) && toks[i].s < fe; i++ {
		t := toks[i]
		if t.e <= fs {
			continue
		}
		if !t.str {
			out = append(out, piece{t.s, t.e, 'n'})
			continue
		}
		cs, ce := t.s+1, t.e-1
		s, e := max(fs, cs), min(fe, ce)
		if s >= e {
			continue
		}
		j := cs
		if cur.tok == i && cur.pos > cs && cur.pos <= s {
			j = cur.pos
		}
		for j < ce {
			n := 1
			if d[j] == '\\' {
				n = 2
				if j+1 < ce && d[j+1] == 'u' {
					n = 6
				}
			}
			if j < s && s < j+n {
				s = j
			}
			if j < e && e < j+n {
				e = j + n
			}
			if j >= e {
				break
			}
			if j+n <= fe {
				cur.tok, cur.pos = i, j+n
			}
			j += n
		}
		out = append(out, piece{s, e, 's'})
	}
	return out
}

func TestJSONPiecesSkipsPlainBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	parts := []string{`a`, `b`, ` `, `\n`, `\"`, `\\`, `\u00e9`, `\u003c`, `x1`, `é`}
	for iter := 0; iter < 3000; iter++ {
		var b strings.Builder
		b.WriteString(`{"k":"`)
		for range r.IntN(40) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		b.WriteString(`","n":12345,"s":[`)
		for k := range r.IntN(4) {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			for range r.IntN(20) {
				b.WriteString(parts[r.IntN(len(parts))])
			}
			b.WriteByte('"')
		}
		b.WriteString(`]}`)
		d := []byte(b.String())
		var toks []jsonTok
		if !validJSON(d, &toks) {
			t.Fatalf("test document is not JSON: %s", d)
		}
		// Sorted, disjoint findings.
		var fsList [][2]int
		for p := 0; p < len(d); {
			p += r.IntN(12)
			e := p + 1 + r.IntN(15)
			if e > len(d) {
				break
			}
			fsList = append(fsList, [2]int{p, e})
			p = e
		}
		c1, c2 := jsonCursor{tok: -1}, jsonCursor{tok: -1}
		for _, f := range fsList {
			got := jsonPieces(d, toks, f[0], f[1], &c1, nil)
			want := jsonPiecesByByte(d, toks, f[0], f[1], &c2, nil)
			if !reflect.DeepEqual(got, want) || c1 != c2 {
				t.Fatalf("%s [%d,%d): pieces %v cursor %v, byte walk %v cursor %v", d, f[0], f[1], got, c1, want, c2)
			}
		}
	}
}
